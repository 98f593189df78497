r"""bfloat16 compute against float32: the same LfF runs on Colored MNIST, accuracy and wall time.

  python -m benchmarks.bfloat16                    # LfF at 1%, 3 seeds side by side, each dtype

Runs `python -m jaxdebias.main --config=CONFIG --config.num_seeds=S --config.compute_dtype=D`
for D = float32 and bfloat16 (float32 parameters, optimizer states, EMAs and losses:
models.MixedPrecision) into ROOT/D, and reports each member's final unbiased test accuracy, the
mean ± sample std over seeds per dtype, the difference of the means against the seeds' spread,
and each run's wall time. A finished run is read back, not retrained: remove ROOT to measure the
time again.
"""

import json
import pathlib
import subprocess
import sys
import time

from absl import app
from absl import flags
import numpy as np

from benchmarks import readme

_CONFIG = flags.DEFINE_string(
    "config", "configs/colored_mnist.py:method=lff,ratio=0.01", "The run compared."
)
_SEEDS = flags.DEFINE_integer("seeds", 3, "Seeds trained side by side in each run.")
_ROOT = flags.DEFINE_string("root", "workdirs/bench_bfloat16", "Where the two runs go.")
_README = flags.DEFINE_bool("readme", True, "Also put the table into README.md.")
_OUT = flags.DEFINE_string("out", "results", "Where bfloat16.md and .json go.")

DTYPES = ("float32", "bfloat16")


def train(dtype: str) -> tuple[list[float], float | None]:
  """The members' final unbiased accuracies of the run in `dtype`, and its wall seconds (None:
  finished before)."""
  workdir = pathlib.Path(_ROOT.value) / dtype
  wall = None
  if not (workdir / "results.json").exists():
    command = [
        sys.executable,
        "-m",
        "jaxdebias.main",
        f"--config={_CONFIG.value}",
        f"--config.num_seeds={_SEEDS.value}",
        f"--config.compute_dtype={dtype}",
        f"--workdir={workdir}",
    ]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    wall = time.perf_counter() - started
  results = json.loads((workdir / "results.json").read_text())
  members = results.get("members", [results])
  return [m["test"]["classifier"]["unbiased_accuracy"] for m in members], wall


def main(argv):
  del argv
  runs = {dtype: train(dtype) for dtype in DTYPES}
  accuracy = {dtype: np.array(runs[dtype][0]) for dtype in DTYPES}
  spread = max(100 * accuracy[d].std(ddof=1) for d in DTYPES) if _SEEDS.value > 1 else 0.0
  gap = 100 * (accuracy["bfloat16"].mean() - accuracy["float32"].mean())
  rows = [
      f"| {dtype} | {readme.mean_std(accuracy[dtype])} | "
      f"{', '.join(f'{100 * a:.2f}' for a in accuracy[dtype])} | "
      f"{'(finished before)' if runs[dtype][1] is None else f'{runs[dtype][1]:.0f} s'} |"
      for dtype in DTYPES
  ]
  text = (
      f"Machine: {readme.machine()}. Regenerate: `python -m benchmarks.bfloat16` (remove "
      f"{_ROOT.value} first). `python -m jaxdebias.main --config={_CONFIG.value} "
      f"--config.num_seeds={_SEEDS.value} --config.compute_dtype=D`: final models, unbiased test "
      "accuracy in %, mean ± sample std over the seeds (trained side by side in one run).\n\n"
      "| compute dtype | unbiased | per seed | wall time |\n|---|---|---|---|\n"
      + "\n".join(rows)
      + f"\n\nbfloat16 - float32: {gap:+.2f} points; the larger seed std of the two: "
      f"{spread:.2f} points.\n"
  )
  report = {
      "machine": readme.machine(),
      "config": _CONFIG.value,
      "seeds": _SEEDS.value,
      "unbiased_accuracy": {d: accuracy[d].tolist() for d in DTYPES},
      "wall_seconds": {d: runs[d][1] for d in DTYPES},
      "difference_of_means_points": gap,
      "largest_seed_std_points": spread,
  }
  readme.publish(
      _OUT.value,
      "bfloat16",
      "bfloat16 compute against float32",
      text,
      report,
      "bfloat16" if _README.value else None,
  )


if __name__ == "__main__":
  app.run(main)
