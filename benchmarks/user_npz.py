r"""The bias amplification recipe on a user's own .npz, one command from nothing, timed.

  python -m benchmarks.user_npz                                    # Biased MNIST rho 0.997
  python -m benchmarks.user_npz --source=colored_mnist:ratio=0.01

A user's data arrives as an .npz with no bias label for training (jaxdebias/data/npz.py). This
benchmark writes one: the training and test split of a dataset the library builds (`--source`,
a config in configs/ and its arguments), the training split's bias labels left out (a user has
none), the test split's kept for the group metrics only. It then runs, in a fresh process and a
fresh workdir with a compilation cache of its own, the command the README gives a user:

  python -m jaxdebias.main --config=configs/bias_amplification.py:data=npz,path=FILE \
      --workdir=WORKDIR

and reports its wall time, where the time went (each stage), what the recipe chose without bias
labels and how far it says to trust that (held-out examples read as conflicting, standard
error, fall-back), and the final classifier's test metrics. It refuses a ROOT that holds a
recipe already (its time would not be from nothing): remove ROOT to measure again. Writes
results/user_npz.{md,json} and puts the table into README.md.
"""

import importlib
import json
import pathlib
import subprocess
import sys
import time

from absl import app
from absl import flags
import numpy as np

from benchmarks import readme
from benchmarks.references import member_tests
from jaxdebias import data

_SOURCE = flags.DEFINE_string(
    "source", "biased_mnist:rho=0.997", "The dataset written as the .npz: CONFIG[:ARGS]."
)
_ROOT = flags.DEFINE_string("root", "workdirs/user_npz", "Where the .npz and the recipe go.")
_OUT = flags.DEFINE_string("out", "results", "Where user_npz.md and .json go.")
_README = flags.DEFINE_bool("readme", True, "Also put the table into README.md.")
_QUICK = flags.DEFINE_bool("quick", False, "The recipe's smoke-test schedule (`quick`).")


def write_npz(source: str, path: pathlib.Path) -> None:
  """`source`'s splits as a user's .npz: images, labels, and the test split's bias labels."""
  name, _, arg = source.partition(":")
  config = importlib.import_module(f"configs.{name}").get_config(arg or None)
  dataset = data.load_dataset(config.data)
  path.parent.mkdir(parents=True, exist_ok=True)
  np.savez(
      path,
      train_images=np.asarray(dataset.train.images),
      train_label=dataset.train.label,
      test_images=np.asarray(dataset.test.images),
      test_label=dataset.test.label,
      test_bias_label=dataset.test.bias_label,
  )


def recipe_arg(npz: pathlib.Path, quick: bool) -> str:
  return f"configs/bias_amplification.py:data=npz,path={npz}" + (",quick" if quick else "")


def run_recipe(npz: pathlib.Path, workdir: pathlib.Path, quick: bool) -> float:
  """Wall seconds of the user's one command, in a fresh process with its own compile cache."""
  command = [
      sys.executable, "-m", "jaxdebias.main",
      f"--config={recipe_arg(npz, quick)}", f"--workdir={workdir}",
      f"--compilation_cache={workdir.parent / 'compilation_cache'}",
  ]
  started = time.perf_counter()
  done = subprocess.run(command, check=False)
  seconds = time.perf_counter() - started
  if done.returncode:
    raise SystemExit(f"{' '.join(command)} failed (exit {done.returncode}); its log is above.")
  return seconds


def report(source: str, command: str, results: dict, wall: float, npz_seconds: float) -> str:
  """The table: the final classifier's test metrics, the label-free choice, the times."""
  test = member_tests(results["final"])[0]
  selection = results["selection"]
  rows = [f"| accuracy | {100 * test['accuracy']:.2f}% |"]
  for key in ("unbiased_accuracy", "worst_group_accuracy"):
    if key in test:
      rows.append(f"| {key.replace('_', ' ')} | {100 * test[key]:.2f}% |")
  rows += [
      f"| chosen (no bias label) | {selection['chosen']['name']} |",
      f"| fell back to ERM or LfF | {'yes' if selection['fell_back'] else 'no'} |",
      f"| held-out examples read as conflicting | {selection['held_out_flagged']} of"
      f" {selection['held_out_examples']} |",
      f"| standard error of the best held-out score | {100 * selection['standard_error']:.2f}"
      " points |",
  ]
  stages = ", ".join(f"{k} {v:.0f}" for k, v in results["stage_seconds_this_run"].items())
  lines = [
      f"`python -m benchmarks.user_npz --source={source}`: the .npz holds {source}'s splits"
      f" without the training split's bias labels (written in {npz_seconds:.0f} s); one command,"
      f" `python -m jaxdebias.main --config={command} --workdir=W`, from an empty"
      f" workdir and compilation cache: wall time {wall:.0f} s (the recipe's own"
      f" {results['total_seconds_this_run']:.0f} s: {stages}). Test metrics of the final"
      " classifier (the group metrics read the test split's bias labels; nothing else does)."
      f" Machine: {readme.machine()}.",
      "",
      "| | |",
      "|---|---|",
  ]
  return "\n".join(lines + rows) + "\n"


def main(argv):
  del argv
  root = pathlib.Path(_ROOT.value)
  npz, workdir = root / "data.npz", root / "recipe"
  if workdir.exists():
    raise SystemExit(f"{workdir} exists: its time would not be from nothing. Remove {root}.")
  started = time.perf_counter()
  write_npz(_SOURCE.value, npz)
  npz_seconds = time.perf_counter() - started
  wall = run_recipe(npz, workdir, _QUICK.value)
  results = json.loads((workdir / "results.json").read_text())
  text = report(_SOURCE.value, recipe_arg(npz, _QUICK.value), results, wall, npz_seconds)
  readme.publish(
      _OUT.value,
      "user_npz",
      "The bias amplification recipe on a user's .npz",
      text,
      {"source": _SOURCE.value, "wall_seconds": wall, "npz_seconds": npz_seconds, **results},
      readme_table="user_npz" if _README.value else None,
  )


if __name__ == "__main__":
  app.run(main)
