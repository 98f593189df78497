r"""A packed sweep against the same sweep run by run: the same numbers, and the wall time of each.

  python -m benchmarks.packed_sweep                      # the full table: 24 runs x 23,500 steps
  python -m benchmarks.packed_sweep --num_steps=2350     # a tenth of each run

The sweep: ERM and LfF on Colored MNIST at the four ratios, `--seeds` seeds each, the default
config otherwise (`launch/sweeps/colored_mnist.py`'s runs with more seeds). It is launched twice,
as a user would, through `python -m launch.run`: run by run (one process each, one after
another) into ROOT/unpacked, and with `--pack` into ROOT/packed (one process; on an
accelerator ERM's runs as one program and LfF's as another, on CPU packs of at most 3 runs:
trainers/pack.py). Each launch starts from an empty compilation cache of its own (the
unpacked runs share theirs, as a sweep on one machine does). Reported: the wall time of each
launch, the per-run difference of the final unbiased test accuracy between the two, and the
table (mean ± sample std over seeds) of each. Finished runs are skipped by launch.run:
remove ROOT to measure again. The datasets are built before the first launch.
"""

import json
import os
import pathlib
import re
import subprocess
import sys
import time

from absl import app
from absl import flags
import numpy as np

from benchmarks import readme
from configs import colored_mnist
from jaxdebias.data import load_dataset
from launch import sweep

_ROOT = flags.DEFINE_string("root", "workdirs/bench_packed", "Where both sweeps' runs go.")
_SEEDS = flags.DEFINE_integer("seeds", 3, "Seeds per (method, ratio).")
_NUM_STEPS = flags.DEFINE_integer("num_steps", None, "Steps per run; default the config's.")
_README = flags.DEFINE_bool("readme", True, "Also put the table into README.md.")
_OUT = flags.DEFINE_string("out", "results", "Where packed_sweep.md and .json go.")

METHODS, RATIOS = ("erm", "lff"), (0.005, 0.01, 0.02, 0.05)


def write_sweep(root: pathlib.Path, seeds: int, num_steps: int | None) -> str:
  """ROOT/sweep.py: the benchmark's sweep file."""
  fixed = {} if num_steps is None else {"num_steps": num_steps}
  path = root / "sweep.py"
  path.write_text(
      "from launch.sweep import product, values\n"
      'CONFIG = "configs/colored_mnist.py"\n'
      "def runs():\n"
      f"  return product(values('method', {list(METHODS)}), values('data.ratio', "
      f"{list(RATIOS)}), values('seed', list(range({seeds}))), [{fixed!r}])\n"
  )
  return str(path)


def launch(sweep_path: str, root: pathlib.Path, pack: bool) -> float:
  """Wall seconds of `python -m launch.run` of the sweep into `root` (a fresh compile cache)."""
  command = [sys.executable, "-m", "launch.run", sweep_path, f"--root={root}"]
  env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(root / "compilation_cache")}
  started = time.perf_counter()
  done = subprocess.run(command + ["--pack"] * pack, env=env, check=False)
  seconds = time.perf_counter() - started
  if done.returncode:
    raise SystemExit(
        f"{' '.join(command)} failed (exit {done.returncode}); see its logs in {root}."
    )
  return seconds


def unbiased(root: pathlib.Path, run: sweep.Run) -> float:
  results = json.loads((pathlib.Path(run.workdir(str(root))) / "results.json").read_text())
  return results["test"]["classifier"]["unbiased_accuracy"]


def main(argv):
  del argv
  root = pathlib.Path(_ROOT.value)
  root.mkdir(parents=True, exist_ok=True)
  path = write_sweep(root, _SEEDS.value, _NUM_STEPS.value)
  every = sweep.load(path)
  for ratio in RATIOS:  # Build the datasets first (once per machine): not part of a run.
    load_dataset(colored_mnist.get_config(f"ratio={ratio}").data)
  seconds = {
      "unpacked": launch(path, root / "unpacked", pack=False),
      "packed": launch(path, root / "packed", pack=True),
  }
  pack_log = "".join(p.read_text() for p in (root / "packed").glob("pack-*.log"))
  packs = re.findall(r"Training (\d+) run\(s\) as one program", pack_log)
  accuracy = {
      mode: {run.name: unbiased(root / mode, run) for run in every} for mode in seconds
  }
  differences = [abs(accuracy["packed"][n] - accuracy["unpacked"][n]) for n in accuracy["packed"]]
  rows = []
  for method in METHODS:
    for ratio in RATIOS:
      names = [
          r.name
          for r in every
          if r.overrides["method"] == method and r.overrides["data.ratio"] == ratio
      ]
      cells = [readme.mean_std([accuracy[mode][n] for n in names]) for mode in seconds]
      rows.append(f"| {method} | {100 * ratio:g}% | {' | '.join(cells)} |")
  num_steps = _NUM_STEPS.value or "the config's 23,500"
  text = (
      f"Machine: {readme.machine()}. Regenerate: `python -m benchmarks.packed_sweep"
      f"{'' if _NUM_STEPS.value is None else f' --num_steps={_NUM_STEPS.value}'}` "
      f"(remove {root} first). ERM and LfF on Colored MNIST, 4 ratios x {_SEEDS.value} seeds = "
      f"{len(every)} runs of {num_steps} steps, launched by `python -m launch.run` run by run "
      f"and with `--pack`, each from an empty compilation cache.\n\n"
      f"| | wall time |\n|---|---|\n"
      f"| run by run ({len(every)} processes) | {seconds['unpacked']:.0f} s |\n"
      f"| packed (one process, {len(packs)} packs of {'/'.join(sorted(set(packs)))} runs) |"
      f" {seconds['packed']:.0f} s |\n"
      f"| packed / run by run | {seconds['packed'] / seconds['unpacked']:.2f} |\n\n"
      f"Final unbiased test accuracy, largest difference of a run between the two: "
      f"{100 * max(differences):.4f} points (mean {100 * np.mean(differences):.4f}).\n\n"
      "| method | ratio | unbiased, run by run | unbiased, packed |\n|---|---|---|---|\n"
      + "\n".join(rows)
      + "\n"
  )
  report = {
      "machine": readme.machine(),
      "num_steps": _NUM_STEPS.value,
      "seeds": _SEEDS.value,
      "seconds": seconds,
      "runs_per_pack": [int(n) for n in packs],
      "unbiased_accuracy": accuracy,
      "max_abs_difference": max(differences),
  }
  readme.publish(
      _OUT.value,
      "packed_sweep",
      "A packed sweep against the same runs one by one",
      text,
      report,
      "packed sweep" if _README.value else None,
  )


if __name__ == "__main__":
  app.run(main)
