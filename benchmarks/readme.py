"""Puts a benchmark's output into README.md, so the README shows exactly what a script printed;
formats its numbers, names the machine they were measured on, and times pipeline stages."""

import json
import os
import pathlib
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def splice(name: str, text: str) -> None:
  """Replaces what stands between the `<!-- {name} table: begin/end -->` markers with `text`."""
  begin, end = f"<!-- {name} table: begin -->", f"<!-- {name} table: end -->"
  head, rest = README.read_text().split(begin)
  _, tail = rest.split(end)
  README.write_text(f"{head}{begin}\n{text}{end}{tail}")


def publish(
    out: str, name: str, title: str, text: str, report: dict, readme_table: str | None = None
) -> None:
  """OUT/{name}.md (`# title` over the text) and OUT/{name}.json (the report); the text also
  between README's `readme_table` markers when one is named; then printed."""
  directory = pathlib.Path(out)
  directory.mkdir(parents=True, exist_ok=True)
  (directory / f"{name}.md").write_text(f"# {title}\n\n{text}")
  (directory / f"{name}.json").write_text(json.dumps(report, indent=1))
  if readme_table is not None:
    splice(readme_table, text)
  print(text)


def mean_std(values) -> str:
  """Fractions as 'mean ± sample std' in percent (std 0 for one value)."""
  values = 100 * np.asarray(values, np.float64)
  return f"{values.mean():.2f} ± {values.std(ddof=1) if len(values) > 1 else 0:.2f}"


def machine() -> str:
  cpu = platform.processor() or platform.machine()
  if os.path.exists("/proc/cpuinfo"):
    names = [
        l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")
    ]
    cpu = names[0] if names else cpu
  device = jax.devices()[0]
  return (
      f"{device.platform} backend ({device.device_kind}), {jax.device_count()} device(s); "
      f"CPU {cpu}, {os.cpu_count()} cores; jax {jax.__version__}"
  )


def matmul_flops_per_second(n: int, repeats: int = 10) -> float:
  """FLOP/s of a jitted f32 (n, n) @ (n, n) matmul, best of `repeats`."""
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  matmul = jax.jit(lambda x: x @ x)
  matmul(a).block_until_ready()
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    matmul(a).block_until_ready()
    best = min(best, time.perf_counter() - start)
  return 2 * n**3 / best


def random_training_data(num_examples: int, shape, num_classes: int) -> dict:
  """Random uint8 images and labels on the device: speed does not depend on pixel values."""
  rng = np.random.default_rng(0)
  return jax.device_put(
      {
          "image": rng.integers(0, 256, (num_examples, *shape), dtype=np.uint8),
          "label": rng.integers(0, num_classes, num_examples).astype(np.int32),
      }
  )


def timed(times: dict[str, float], stage: str, fn):
  """fn(), its wall time added to times[stage]."""
  start = time.perf_counter()
  result = fn()
  times[stage] = times.get(stage, 0.0) + time.perf_counter() - start
  return result


def stage_times(times: dict[str, float]) -> list[str]:
  """Report lines: the wall time of each stage (stages reused from earlier runs count ~0 s)."""
  lines = ["", "Wall time of each stage this invocation (reused stages count ~0 s):", ""]
  return lines + [f"- {k}: {v:.0f} s" for k, v in times.items()]


def recipe_times(found: dict) -> list[str]:
  """Report lines: each recipe run's total and stage wall times, {(column, ratio): results}:
  each stage's summed over the invocations that trained it (a stage copied from another recipe
  workdir: its time there), or, for a run that predates that record, the times of the
  invocation that finished it."""
  lines = ["", "## Wall time of each recipe run's stages (s)", ""]
  for (column, ratio), results in found.items():
    copied = results.get("stage_seconds_copied")
    if copied and results["stage_seconds_from_nothing"] is not None:
      times = {**results["stage_seconds"], **copied}
      total = results["stage_seconds_from_nothing"]
      how = (
          "each stage summed over the invocations that trained it; copied from another recipe"
          f" workdir, at their time there: {', '.join(copied)}"
      )
    elif copied:
      times = {k: v for k, v in results["stage_seconds"].items() if k not in copied}
      total = results["stage_seconds_total"]
      how = (
          "each stage summed over the invocations that trained it, without those copied from"
          f" another recipe workdir that did not book their time: {', '.join(copied)}"
      )
    elif "stage_seconds" in results:
      times, total = results["stage_seconds"], results["stage_seconds_total"]
      how = "each stage summed over the invocations that trained it"
    else:
      times, total = results["stage_seconds_this_run"], results["total_seconds_this_run"]
      how = "the invocation that finished it; stages it reused count ~0 s"
    stages = ", ".join(f"{k} {v:.0f}" for k, v in times.items())
    lines.append(f"- {column}, {100 * ratio:g}%: {total:.0f} s ({stages}; {how})")
  return lines
