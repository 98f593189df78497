"""Puts a benchmark's output into README.md, so the README shows exactly what a script printed;
formats its numbers, and names the machine they were measured on."""

import os
import pathlib
import platform

import jax
import numpy as np

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def splice(name: str, text: str) -> None:
  """Replaces what stands between the `<!-- {name} table: begin/end -->` markers with `text`."""
  begin, end = f"<!-- {name} table: begin -->", f"<!-- {name} table: end -->"
  head, rest = README.read_text().split(begin)
  _, tail = rest.split(end)
  README.write_text(f"{head}{begin}\n{text}{end}{tail}")


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
