r"""Training speed of ERM and LfF on Colored-MNIST-shaped data, against the machine's matmul rate.

  python -m benchmarks.speed                      # writes results/speed.md and results/speed.json

For each method: compile time of one 235-step chunk (lower + compile), then steady-state steps/s
and examples/s over `--chunks` further chunks (the trainer's own jitted scan, batches gathered on
device, state donated). FLOPs per step come from XLA's cost analysis of one jitted train step;
achieved FLOP/s = FLOPs per step x steps/s. The practical roofline is the FLOP/s of a large f32
matmul measured in the same process. Peak memory: the device's peak_bytes_in_use where the
backend reports it (GPU/TPU), else the process's peak resident set size (CPU). Random uint8
images stand in for Colored MNIST: speed does not depend on pixel values.
"""

import pathlib
import resource
import tempfile
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import end_to_end, readme
from benchmarks.readme import matmul_flops_per_second, random_training_data
from jaxdebias import methods, models, sharding
from jaxdebias.config import base_config
from jaxdebias.trainers import members

_CHUNKS = flags.DEFINE_integer("chunks", 10, "Timed chunks of 235 steps per method.")
_MATMUL = flags.DEFINE_integer("matmul_size", 2048, "n of the n x n @ n x n roofline matmul.")
_SEEDS = flags.DEFINE_integer("seeds", 3, "Seeds trained side by side in the vmapped rows.")
_END_TO_END = flags.DEFINE_list(
    "end_to_end_seeds",
    ["1", "3"],
    "One full LfF run timed end to end per entry, with that many vmapped seeds; empty: none.",
)
_DTYPES = flags.DEFINE_list(
    "compute_dtypes",
    ["float32"],
    "config.compute_dtype of the step rows: float32 and/or bfloat16 (f32 parameters).",
)
_README = flags.DEFINE_bool("readme", True, "Also put the table into README.md.")
_OUT = flags.DEFINE_string("out", "results", "Where speed.md and speed.json go.")

NUM_EXAMPLES, SHAPE, NUM_CLASSES, CHUNK = 60_000, (28, 28, 3), 10, 235


def measure(
    method_name: str, data: dict, num_chunks: int, num_seeds: int, compute_dtype: str = "float32"
) -> dict:
  """Compile time, steps/s, examples/s and FLOPs per step of one method's training chunks.

  With num_seeds > 1 the seeds train side by side (vmap) as in the trainer; steps/s counts steps
  of the whole group, examples/s and FLOP/s count every seed's examples and FLOPs.
  """
  config = base_config()
  config.method, config.compute_dtype = method_name, compute_dtype
  model = models.create(config.model, NUM_CLASSES, compute_dtype)
  labels = np.asarray(data["label"])
  train = methods.TrainSet(labels, NUM_CLASSES, SHAPE)
  method = methods.build(config, model, train)
  config.num_seeds = num_seeds
  mesh = sharding.make_mesh(config.mesh)
  seeds, state = members.init_members(config, method, mesh)
  run_chunk = members.chunk_runner(method, num_seeds, mesh, state, config.num_steps)
  indices = lambda chunk: members.place_indices(
      members.chunk_indices(seeds, chunk * CHUNK, CHUNK, config.batch_size, NUM_EXAMPLES), mesh
  )
  start = time.perf_counter()
  compiled = run_chunk.lower(state, data, indices(0)).compile()
  compile_seconds = time.perf_counter() - start
  state, metrics = compiled(state, data, indices(0))  # Warm-up.
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for i in range(num_chunks):  # Drawing the indices (host) counts: the trainer does it too.
    state, metrics = compiled(state, data, indices(i + 1))
  jax.block_until_ready(metrics)
  seconds = time.perf_counter() - start
  steps_per_second = num_chunks * CHUNK / seconds

  index = jnp.arange(config.batch_size, dtype=jnp.int32)
  batch = {"image": data["image"][index], "label": data["label"][index], "index": index}
  one_state = jax.tree.map(lambda x: x[0], state) if num_seeds > 1 else state
  cost = jax.jit(method.train_step).lower(one_state, batch).compile().cost_analysis()
  flops = float(cost["flops"]) * num_seeds
  return {
      "num_seeds": num_seeds,
      "compile_seconds": compile_seconds,
      "steps_per_second": steps_per_second,
      "seconds_per_23500_steps_per_seed": 23_500 / steps_per_second / num_seeds,
      "examples_per_second": steps_per_second * config.batch_size * num_seeds,
      "flops_per_step": flops,
      "flops_per_second": flops * steps_per_second,
  }


def cold_and_warm(num_seeds: int) -> dict[str, dict[str, float]]:
  """`timed_run` with `num_seeds` vmapped seeds, with an empty compilation cache ("cold") and
  again with the programs the first run cached ("warm": a sweep's later runs, a rerun)."""
  with tempfile.TemporaryDirectory() as scratch:
    return {
        cache: end_to_end.timed_run(
            pathlib.Path(scratch, cache),
            f"--config.num_seeds={num_seeds}",
            f"--compilation_cache={scratch}/cache",
        )
        for cache in ("cold", "warm")
    }


def peak_memory_bytes() -> tuple[int, str]:
  stats = jax.devices()[0].memory_stats()
  if stats and "peak_bytes_in_use" in stats:
    return stats["peak_bytes_in_use"], "device peak_bytes_in_use"
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "process peak RSS"


def main(argv):
  del argv
  data = random_training_data(NUM_EXAMPLES, SHAPE, NUM_CLASSES)
  roofline = matmul_flops_per_second(_MATMUL.value)
  rows = {
      f"{name} x{seeds}" + ("" if dtype == "float32" else f" {dtype}"): measure(
          name, data, _CHUNKS.value, seeds, dtype
      )
      for dtype in _DTYPES.value
      for name in ("erm", "lff")
      for seeds in (1, _SEEDS.value)
  }
  roofline_after = matmul_flops_per_second(_MATMUL.value)  # Bracket the runs: load may vary.
  memory, memory_kind = peak_memory_bytes()
  if _END_TO_END.value:  # Build the dataset first (once per machine): not part of a run.
    end_to_end.dataset()
  end_to_end_runs = {int(s): cold_and_warm(int(s)) for s in _END_TO_END.value}
  report = {
      "machine": readme.machine(),
      "matmul_flops_per_second": [roofline, roofline_after],
      "methods": rows,
      "peak_memory_bytes": memory,
      "peak_memory_kind": memory_kind,
      "end_to_end_seconds": end_to_end_runs,
  }
  best_roofline = max(roofline, roofline_after)
  lines = [
      f"Machine: {report['machine']}. Regenerate: `python -m benchmarks.speed`.",
      f"Practical roofline: f32 {_MATMUL.value}x{_MATMUL.value} matmul, "
      f"{roofline / 1e9:.1f} and {roofline_after / 1e9:.1f} GFLOP/s (before / after the runs).",
      f"Peak memory ({memory_kind}): {memory / 2**20:.0f} MiB.",
      "",
      "`xS`: S seeds trained side by side (vmap, `--config.num_seeds=S`); steps/s counts steps of"
      " the group; s/run/seed = 23,500 steps / steps/s / S (training only, no data load, eval or"
      " checkpoints); examples and FLOPs count every seed; a dtype after the name: computed in it"
      " (`--config.compute_dtype`, float32 parameters), its roofline still the f32 matmul's.",
      "",
      "| method | compile s | steps/s | s/run/seed | examples/s | GFLOP/step (XLA) | GFLOP/s |"
      " of roofline |",
      "|---|---|---|---|---|---|---|---|",
  ]
  for name, r in rows.items():
    lines.append(
        f"| {name} | {r['compile_seconds']:.2f} | {r['steps_per_second']:.0f} |"
        f" {r['seconds_per_23500_steps_per_seed']:.0f} |"
        f" {r['examples_per_second']:.0f} | {r['flops_per_step'] / 1e9:.3f} |"
        f" {r['flops_per_second'] / 1e9:.1f} | {r['flops_per_second'] / best_roofline:.0%} |"
    )
  if end_to_end_runs:
    lines += [
        "",
        f"End to end, the full LfF run (`python -m jaxdebias.main --config={end_to_end.CONFIG}"
        " --config.num_seeds=S`, fresh workdir, dataset already built; 23,500 steps, 100"
        " evaluations, 10 checkpoints), with an empty compilation cache (cold) and with the one"
        " the first run filled (warm). Seconds; the parts are the run's results.json"
        " `seconds_this_run` (first chunk: with compiling it; evaluation: the first one compiles"
        " the evaluator); start-up is the rest of the wall time (process start, imports, building"
        " the state, placing the data on the device, writing results.json).",
        "",
        "| S | cache | wall | per seed | " + " | ".join(end_to_end.PARTS) + " |",
        "|---" * (4 + len(end_to_end.PARTS)) + "|",
    ]
    for n, by_cache in end_to_end_runs.items():
      for cache, t in by_cache.items():
        parts = " | ".join(f"{t[k]:.1f}" for k in end_to_end.PARTS)
        lines.append(f"| {n} | {cache} | {t['wall']:.1f} | {t['wall'] / n:.1f} | {parts} |")
  readme.publish(
      _OUT.value,
      "speed",
      "Training speed (batch 256 per seed, MLP 2352-100-100-100-10)",
      "\n".join(lines) + "\n",
      report,
      "speed" if _README.value else None,
  )


if __name__ == "__main__":
  app.run(main)
