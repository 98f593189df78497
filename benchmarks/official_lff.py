r"""The official LfF code (github.com/alinlab/LfF, PyTorch) against `make demo`'s run, side by side.

  python -m benchmarks.official_lff --official_dir=PATH --official_python=PYTHON

Nothing is downloaded: PATH is a checkout of the official code and PYTHON an interpreter with its
dependencies (torch, torchvision built for that torch, sacred with setuptools < 81, tensorboard,
tqdm). The script writes the Colored MNIST our run trains on (ratio 1%, severity 4) in the
official code's layout (`ColoredMNIST-Skewed0.01-Severity4/{train,valid}/images.npy, attrs.npy`,
our unbiased test split as its `valid`), then runs, alternating, `--repeats` times each: the
official `train.py with server_user colored_mnist skewed3 severity4 device=cpu`, its data and log
paths replaced (23,500 steps of 256, both models evaluated every 235 steps; its code as it is: 16
loader workers, a progress bar, TensorBoard summaries every 10 steps), and
`end_to_end.timed_run` (our full LfF run in a fresh workdir, an empty compilation cache). Both
are timed from process start to exit. Each run's final unbiased test accuracy (the mean over the
(digit, colour) groups; the official code's is its last evaluation, at step 23,265) checks that
both ran the same protocol. The f32 matmul rate is taken before and after. Writes
results/official_lff.{md,json} and README's table; until it ends, each finished run in
results/official_lff.partial.json.
"""

import json
import pathlib
import pickle
import subprocess
import tempfile
import time

from absl import app
from absl import flags
import numpy as np

from benchmarks import end_to_end, readme
from jaxdebias.data import BiasedDataset


def define_flags() -> None:
  """This script's flags, defined only when it runs (absl flags are process-wide: the tests
  import this module beside benchmarks.baselines, which defines flags of the same names)."""
  flags.DEFINE_string("official_dir", None, "A checkout of alinlab/LfF.")
  flags.DEFINE_string("official_python", None, "A Python with the official code's dependencies.")
  flags.DEFINE_integer("repeats", 1, "Runs of each, alternating.")
  flags.DEFINE_bool("readme", True, "Also put the table into README.md.")
  flags.DEFINE_string("out", "results", "Where official_lff.md and .json go.")


FLAGS = flags.FLAGS
OFFICIAL_TAG = "ColoredMNIST-Skewed0.01-Severity4"
OFFICIAL_ARGS = ("with", "server_user", "colored_mnist", "skewed3", "severity4", "device=cpu")
# The official result file's last unbiased accuracy (mean over its (digit, colour) cells).
READ_OFFICIAL_RESULT = (
    "import sys, torch; print(float(torch.load(sys.argv[1])['valid/attrwise_accs'][-1].mean()))"
)


def write_official_data(dataset: BiasedDataset, data_dir: pathlib.Path) -> None:
  """`dataset` (its training and test splits) in the official code's Colored MNIST layout."""
  root = data_dir / OFFICIAL_TAG
  for name, split in (("train", dataset.train), ("valid", dataset.test)):
    (root / name).mkdir(parents=True)
    np.save(root / name / "images.npy", np.asarray(split.images, np.uint8))
    attrs = np.stack([split.label, split.bias_label], axis=1).astype(np.uint8)
    np.save(root / name / "attrs.npy", attrs)
  with open(root / "attr_names.pkl", "wb") as f:
    pickle.dump(["digit", "color"], f)


def official_run(scratch: pathlib.Path, repeat: int) -> dict[str, float]:
  """One official run: its wall time and final unbiased test accuracy."""
  log_dir = scratch / f"official_log{repeat}"
  command = [
      FLAGS.official_python,
      "train.py",
      *OFFICIAL_ARGS,
      f"data_dir={scratch / 'data'}",
      f"log_dir={log_dir}",
  ]
  start = time.perf_counter()
  with open(scratch / f"official{repeat}.log", "w") as log:
    subprocess.run(command, cwd=FLAGS.official_dir, check=True, stdout=log, stderr=log)
  wall = time.perf_counter() - start
  (result,) = log_dir.glob(f"**/{OFFICIAL_TAG}/result.th")
  read = [FLAGS.official_python, "-c", READ_OFFICIAL_RESULT, str(result)]
  accuracy = float(subprocess.run(read, check=True, capture_output=True, text=True).stdout)
  return {"wall": wall, "unbiased_accuracy": accuracy}


def our_run(scratch: pathlib.Path, repeat: int) -> dict[str, float]:
  """One run of ours (`end_to_end.timed_run`, an empty cache): its times and unbiased accuracy."""
  workdir = scratch / f"ours{repeat}"
  times = end_to_end.timed_run(workdir, f"--compilation_cache={scratch}/cache{repeat}")
  test = json.loads((workdir / "results.json").read_text())["test"]
  return times | {"unbiased_accuracy": test["classifier"]["unbiased_accuracy"]}


def main(argv):
  del argv
  if not (FLAGS.official_dir and FLAGS.official_python):
    raise app.UsageError("Give --official_dir and --official_python (see the module docstring).")
  matmul_before = readme.matmul_flops_per_second(2048)
  runs = {"official": [], "ours": []}
  with tempfile.TemporaryDirectory() as scratch:
    scratch = pathlib.Path(scratch)
    write_official_data(end_to_end.dataset(), scratch / "data")
    progress = pathlib.Path(FLAGS.out) / "official_lff.partial.json"
    progress.parent.mkdir(parents=True, exist_ok=True)
    for repeat in range(FLAGS.repeats):  # Each run kept as it ends: one official run is ~15 min.
      for code, run in (("official", official_run), ("ours", our_run)):
        runs[code].append(run(scratch, repeat))
        progress.write_text(json.dumps(runs, indent=1))
  progress.unlink()
  matmul_after = readme.matmul_flops_per_second(2048)
  official = np.mean([r["wall"] for r in runs["official"]])
  ours = np.mean([r["wall"] for r in runs["ours"]])
  report = {
      "machine": readme.machine(),
      "matmul_flops_per_second": [matmul_before, matmul_after],
      "runs": runs,
      "ratio": official / ours,
  }
  parts = end_to_end.PARTS
  lines = [
      f"Machine: {report['machine']}; f32 2048x2048 matmul {matmul_before / 1e9:.0f} and"
      f" {matmul_after / 1e9:.0f} GFLOP/s (before / after). Regenerate: `python -m"
      " benchmarks.official_lff --official_dir=PATH --official_python=PYTHON`.",
      "",
      "The default LfF run (Colored MNIST 1%, severity 4, 23,500 steps of 256, both models"
      " evaluated every 235 steps on the 10,000 unbiased test images), end to end from process"
      " start to exit, the same data: the official PyTorch code (github.com/alinlab/LfF, `python"
      f" train.py {' '.join(OFFICIAL_ARGS)}`) and ours (`python -m jaxdebias.main"
      f" --config={end_to_end.CONFIG}`, fresh workdir, empty compilation cache; its parts"
      " as in results/speed.md), alternating. Unbiased: final test accuracy, the mean over the"
      " (digit, colour) groups (the official code's last evaluation is at step 23,265).",
      "",
      "| run | code | wall s | unbiased % | " + " | ".join(parts) + " |",
      "|---" * (4 + len(parts)) + "|",
  ]
  no_parts = " | ".join([""] * len(parts))  # The official code does not say where its time went.
  for repeat in range(FLAGS.repeats):
    o, r = runs["official"][repeat], runs["ours"][repeat]
    lines.append(
        f"| {repeat + 1} | official | {o['wall']:.1f} | {100 * o['unbiased_accuracy']:.2f} |"
        f" {no_parts} |"
    )
    cells = " | ".join(f"{r[k]:.1f}" for k in parts)
    lines.append(
        f"| {repeat + 1} | ours | {r['wall']:.1f} | {100 * r['unbiased_accuracy']:.2f} | {cells} |"
    )
  lines += ["", f"Official / ours, mean wall time: {report['ratio']:.2f}x."]
  readme.publish(
      FLAGS.out,
      "official_lff",
      "The official LfF code against ours, end to end",
      "\n".join(lines) + "\n",
      report,
      "official_lff" if FLAGS.readme else None,
  )


if __name__ == "__main__":
  define_flags()
  app.run(main)
