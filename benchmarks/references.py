"""The ERM and LfF reference runs beside the recipe benchmarks' columns: the runs of
benchmarks/colored_mnist.py (the same configs and workdirs: reused where it made them)."""

import pathlib

from configs import colored_mnist
from jaxdebias import trainers

ROOT = pathlib.Path("workdirs/colored_mnist")


def plain_runs(ratios, seeds) -> dict:
  """{(method, ratio): [results.json per seed]} of ERM and LfF on Colored MNIST (the LfF
  protocol's fixed knobs, the whole training split)."""
  found = {}
  for method in ("erm", "lff"):
    for ratio in ratios:
      for seed in seeds:
        config = colored_mnist.get_config(f"method={method},ratio={ratio}")
        config.seed = seed
        workdir = ROOT / f"{method}_ratio{ratio}_severity4_seed{seed}"
        found.setdefault((method, ratio), []).append(
            trainers.train_and_evaluate(config, str(workdir))
        )
  return found


def member_tests(results: dict) -> list[dict]:
  """The test metrics of the classifier of each member (seed) of a run's results."""
  if "members" in results:
    return [m["test"]["classifier"] for m in results["members"]]
  return [results["test"]["classifier"]]
