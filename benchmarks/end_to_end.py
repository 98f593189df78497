"""The default LfF run (`make demo`'s command) timed end to end, and where its time went; shared
by benchmarks/speed.py and benchmarks/official_lff.py."""

import json
import pathlib
import subprocess
import sys
import time

from configs import colored_mnist
from jaxdebias.data import BiasedDataset, load_dataset

CONFIG = "configs/colored_mnist.py:method=lff,ratio=0.01"


def dataset() -> BiasedDataset:
  """CONFIG's dataset, built first where it is not yet (once per machine, not part of a run)."""
  return load_dataset(colored_mnist.get_config(CONFIG.split(":")[1]).data)


def timed_run(workdir: pathlib.Path, *flags: str) -> dict[str, float]:
  """One full LfF run, `python -m jaxdebias.main` on CONFIG in `workdir` (fresh) with
  `flags` added: its wall time and where it went.

  The wall time counts everything a user waits for. Its parts are the run's own
  results.json `seconds_this_run` (`loop.SECONDS` defines them), plus "start-up": the rest of
  the wall time: the process start, the imports, building the method and its state, placing the
  data on the device and, after the loop, writing results.json.
  """
  command = [
      sys.executable,
      "-m",
      "jaxdebias.main",
      f"--config={CONFIG}",
      f"--workdir={workdir}",
      *flags,
  ]
  repo = pathlib.Path(__file__).resolve().parents[1]
  start = time.perf_counter()
  subprocess.run(command, cwd=repo, check=True, capture_output=True)
  wall = time.perf_counter() - start
  parts = json.loads((workdir / "results.json").read_text())["seconds_this_run"]
  loop_parts = {k: v for k, v in parts.items() if k != "all"}
  return {"wall": wall, "start-up": wall - parts["all"] - parts["data_read"]} | loop_parts


# The end-to-end table's columns after the wall time: seconds_this_run's parts, in run order.
PARTS = (
    "start-up",
    "data_read",
    "first_chunk",
    "training",
    "evaluation",
    "checkpoints",
    "logs",
    "restore",
)
