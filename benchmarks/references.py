"""The single runs the benchmarks share (`run_one`: one method on Colored or Biased MNIST, one
seed, in one workdir per run, reused when finished; `recipe_run`: one run of the bias
amplification recipe), the ERM and LfF reference runs beside the recipe benchmarks' columns,
the published Colored MNIST numbers, and the table cells that grow seed by seed (a cell: one
results dict per seed, each with its "seed")."""

import json
import math
import pathlib

from benchmarks.readme import mean_std
from configs import bias_amplification, biased_mnist, colored_mnist
from jaxdebias import recipes, trainers

RECIPE_ROOT = pathlib.Path("workdirs/bias_amplification")

# Unbiased test accuracy (%) from ../shared/reference/lff.md (recalled there, approximate).
PUBLISHED = (
    ("erm", "Vanilla (LfF paper)", (35.34, 50.34, 62.29, 77.63)),
    ("lff", "LfF (LfF paper)", (63.39, 74.01, 80.48, 85.39)),
    ("erm", "Vanilla (DisEnt paper)", (35.19, 52.09, 65.86, 82.17)),
    ("lff", "LfF (DisEnt paper)", (52.50, 61.89, 71.03, 84.79)),
    (None, "DisEnt (NeurIPS 2021)", (65.22, 81.73, 84.79, 89.66)),
)
PUBLISHED_RATIOS = (0.005, 0.01, 0.02, 0.05)

# A recipe cell's "generators_held_out": False marks a run from before the recipe kept its
# held-out part out of the GAN stages too (`stored_recipe`: a record stored without the field is
# one).
EARLY_HOLDOUT_NOTE = (
    "†: run before 2026-12-07, when the recipe's GANs trained on the whole training split, its"
    " held-out tenth included (with the pseudo-conflicting examples the held-out scores rest"
    " on); since then no stage before the selection sees the held-out part."
)


def plain_runs(ratios, seeds) -> dict:
  """{(method, ratio): [results.json per seed]} of ERM and LfF on Colored MNIST (the LfF
  protocol's fixed knobs, the whole training split)."""
  return {
      (method, ratio): [run_one("colored_mnist", method, ratio, seed) for seed in seeds]
      for method in ("erm", "lff")
      for ratio in ratios
  }


# JTT's identification run: one epoch of ERM (T, the paper's CelebA setting) at batch 256.
JTT_STEPS = math.ceil(60_000 / 256)


def config_of(dataset: str, method: str, value: float):
  if dataset == "colored_mnist":
    return colored_mnist.get_config(f"method={method},ratio={value}")
  return biased_mnist.get_config(f"method={method},rho={value}")


def workdir_of(dataset: str, method: str, value: float, seed: int) -> pathlib.Path:
  """benchmarks/colored_mnist.py's naming for Colored MNIST, so its runs are reused."""
  column = f"ratio{value}_severity4" if dataset == "colored_mnist" else f"rho{value}"
  return pathlib.Path("workdirs") / dataset / f"{method}_{column}_seed{seed}"


def jtt_identifier_dir(dataset: str, value: float, seed: int) -> pathlib.Path:
  return workdir_of(dataset, f"jtt_identifier_T{JTT_STEPS}", value, seed)


def run_one(dataset: str, method: str, value: float, seed: int) -> dict:
  """One run (reused when finished); JTT's first trains its identification run."""
  config = config_of(dataset, method, value)
  config.seed = seed
  if method == "jtt":
    identifier = config_of(dataset, "erm", value)
    identifier.update(
        seed=seed, num_steps=JTT_STEPS, eval_every=JTT_STEPS, checkpoint_every=JTT_STEPS
    )
    identifier_dir = jtt_identifier_dir(dataset, value, seed)
    trainers.train_and_evaluate(identifier, str(identifier_dir))
    config.jtt.identifier = str(identifier_dir.resolve())
  return trainers.train_and_evaluate(config, str(workdir_of(dataset, method, value, seed)))


def recipe_run(dataset: str, value: float, num_seeds: int, prior: str = "none") -> dict:
  """The recipe's results.json on Colored MNIST (value: the ratio) or Biased MNIST (rho), run
  or reused from workdirs/bias_amplification/PRIOR_rR_sN or biased_rhoR_sN; the same cell's
  run with another number of seeds lends it the stages they share (its GANs)."""
  if dataset == "colored_mnist":
    arg, name = f"data=colored_mnist,ratio={value}", f"{prior}_r{value}"
  else:
    arg, name = f"data=biased_mnist,rho={value}", f"biased_rho{value}"
  arg += f",seeds={num_seeds}" + (",tinted" if prior == "tinted" else "")
  workdir = RECIPE_ROOT / f"{name}_s{num_seeds}"
  # A lender: a finished GAN of the same recipe (one of before the GANs kept the held-out part
  # out shares no stage).
  lends = lambda p: (p / "generator" / "results.json").exists() and generators_held_out(p)
  others = sorted(str(p) for p in RECIPE_ROOT.glob(f"{name}_s*") if p != workdir and lends(p))
  lender = others[0] if others else None
  results = recipes.run(bias_amplification.get_config(arg), str(workdir), lender)
  return results | {"generators_held_out": generators_held_out(workdir)}


def generators_held_out(workdir: pathlib.Path) -> bool:
  """Whether a recipe run's first GAN trained without the held-out part (the datasets here
  have no validation split of their own: it is `data.valid_fraction` of the training split)."""
  config = json.loads((workdir / "generator" / "config.json").read_text())
  return config["data"]["valid_fraction"] > 0


def stored_recipe(record: dict) -> dict:
  """A recipe record (a seed's cell entry, or a run's results) as read back from a table's
  JSON: one stored before `generators_held_out` existed ran before the GANs held out."""
  return {"generators_held_out": False} | record


def early_holdout(cell: list[dict] | None) -> bool:
  """Whether a cell holds a recipe run whose GANs saw the held-out part (EARLY_HOLDOUT_NOTE)."""
  return any(r.get("generators_held_out") is False for r in cell or [])


def member_tests(results: dict) -> list[dict]:
  """The test metrics of the classifier of each member (seed) of a run's results."""
  if "members" in results:
    return [m["test"]["classifier"] for m in results["members"]]
  return [results["test"]["classifier"]]


def unbiased(cell: list[dict]) -> list[float]:
  """A cell's unbiased test accuracy of the classifier, seed by seed."""
  return [r["test"]["classifier"]["unbiased_accuracy"] for r in cell]


def seeds_of(cell: list[dict]) -> list[int]:
  return [r["seed"] for r in cell]


def merge_seeds(earlier: list[dict] | None, new: list[dict]) -> list[dict]:
  """A cell after a run of `new` seeds: each joins, or replaces the earlier result of its seed."""
  by_seed = {r["seed"]: r for r in earlier or []} | {r["seed"]: r for r in new}
  return [by_seed[seed] for seed in sorted(by_seed)]


def cell_text(cell: list[dict] | None, seeds: list[int]) -> str:
  """A table cell: '-' (not run), mean ± std, and the seeds it has if not the table's `seeds`."""
  if not cell:
    return "-"
  text = mean_std(unbiased(cell))
  if seeds_of(cell) != seeds:
    text += f" (seed{'s' if len(cell) > 1 else ''} {','.join(map(str, seeds_of(cell)))})"
  return text + (" †" if early_holdout(cell) else "")
