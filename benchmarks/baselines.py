r"""The baselines on both kinds of bias: Colored MNIST (the colour of the strokes) and Biased
MNIST (the colour of the background), ERM, LfF, DisEnt, JTT, the bias amplification recipe and
the GroupDRO oracle.

  python -m benchmarks.baselines                                # both datasets, 3 seeds
  python -m benchmarks.baselines --ratios= --rhos=0.997,0.999   # Biased MNIST, two columns
  python -m benchmarks.baselines --methods=disent --seeds=0
  python -m benchmarks.baselines --methods=recipe --ratios= --rhos=0.997 --seeds=0 --update

Every (method, dataset, column, seed) is an ordinary `jaxdebias.main` run of
configs/colored_mnist.py or configs/biased_mnist.py in workdirs/DATASET/... (finished runs are
reused, unfinished ones resume; Colored MNIST's ERM and LfF runs are benchmarks/colored_mnist.py's).
The recipe row is one run of configs/bias_amplification.py per column, its seeds (0..N-1) side
by side (benchmarks/bias_amplification.py's runs, reused), its knobs chosen inside it on
held-out training data without bias labels.
Final models; every knob fixed in advance or chosen without bias labels, as each row's `knobs`
says.
Bias labels are read by evaluation only, but by the GroupDRO oracle, which trains with them and
is marked so. With --update the table grows seed by seed: the runs of this invocation join the
cells of OUT/baselines.json (a seed run again replaces its earlier result; a recipe cell, its
seeds one run with one selection, is replaced whole, never by one of fewer seeds), and a cell of
other seeds than most says which it has. A recipe cell of seeds 0..4 on Colored MNIST is
benchmarks/bias_amplification.py's default column, reused. The MLP protocol throughout (a 2-core
CPU runs it); the published Biased MNIST numbers used the SimpleConvNet protocol and are not
comparable, only listed. Writes results/baselines.{md,json,png} and puts the table into
README.md.
"""

import collections
import json
import pathlib

from absl import app
from absl import flags
from etils import epath
import numpy as np

from benchmarks import readme
from benchmarks.readme import machine
from benchmarks.references import (
    EARLY_HOLDOUT_NOTE,
    JTT_STEPS,
    PUBLISHED_RATIOS,
    cell_text,
    early_holdout,
    jtt_identifier_dir,
    member_tests,
    merge_seeds,
    recipe_run,
    run_one,
    seeds_of,
    stored_recipe,
    unbiased,
    workdir_of,
)
from benchmarks.references import PUBLISHED as COLORED_MNIST_PUBLISHED
from jaxdebias import runs
from jaxdebias.runs import quiet_library_logs

METHODS = ["erm", "lff", "disent", "jtt", "recipe", "group_dro_oracle"]  # The table's order.
_METHODS = flags.DEFINE_list("methods", METHODS, "Methods to run.")
_RATIOS = flags.DEFINE_list(
    "ratios", ["0.005", "0.01", "0.02", "0.05"], "Colored MNIST conflicting ratios."
)
_RHOS = flags.DEFINE_list("rhos", ["0.999", "0.997", "0.995", "0.99"], "Biased MNIST rho values.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")
_OUT = flags.DEFINE_string("out", "results", "Where the table, JSON and plot go.")
_README = flags.DEFINE_bool("readme", True, "Also put the table into README.md.")
_UPDATE = flags.DEFINE_bool(
    "update", False, "Add this run's seeds and cells to those of OUT/baselines.json."
)

KNOBS = {
    "erm": "LfF protocol (MLP 3 x 100, Adam 1e-3, 23,500 steps)",
    "lff": "LfF protocol; q 0.7, EMA 0.7 (LfF paper)",
    "disent": "DisEnt paper's Colored MNIST schedule and lambdas (50,000 steps)",
    "jtt": f"LfF protocol; T = 1 epoch ({JTT_STEPS} steps), lambda = 50 (JTT paper, CelebA)",
    "recipe": (
        "bias amplification recipe, no prior; LfF protocol; chosen on held-out training data"
        " without bias labels (which candidate: results/baselines.json)"
    ),
    "group_dro_oracle": (
        "LfF protocol; step size 0.01 (GroupDRO paper); **trains with bias labels**"
    ),
}
# Published unbiased test accuracy (%), and how a model was selected where its source says so:
# ../shared/reference/lff.md, synthetic-bias-amplification.md, biased-mnist.md.
SELECTION_OF = {"DisEnt (NeurIPS 2021)": "published; best test-set checkpoint (its code)"}
PUBLISHED = {
    "colored_mnist": [
        (name, dict(zip(PUBLISHED_RATIOS, numbers)), SELECTION_OF.get(name, "published"))
        for _, name, numbers in COLORED_MNIST_PUBLISHED
        + ((None, "DisEnt re-run (DeNetDM paper)", (59.12, 71.04, 82.86, 88.29)),)
    ],
    "biased_mnist": [
        (f"{name} (SimpleConvNet protocol)", dict(zip((0.999, 0.997, 0.995, 0.99), numbers)),
         "published")
        for name, numbers in (
            ("Vanilla (ReBias paper)", (10.4, 33.4, 72.1, 89.1)),
            ("ReBias (ReBias paper)", (22.7, 64.2, 76.0, 88.1)),
            ("LfF (Voronoi paper)", (15.3, 63.7, 90.3, 95.1)),
        )
    ],
}
FLAG_OF = {"colored_mnist": "ratios", "biased_mnist": "rhos"}
TITLES = {
    "colored_mnist": "Colored MNIST (conflicting ratio)",
    "biased_mnist": "Biased MNIST (rho)",
}


def recipe_seeds(dataset: str, value: float, seeds: list[int]) -> list[dict]:
  """The recipe's final classifier seed by seed (its seeds train side by side in one run, so
  `seeds` must be 0..N-1), with the candidate it chose."""
  if seeds != list(range(len(seeds))):
    raise app.UsageError(
        f"The recipe row trains seeds 0..N-1 side by side; --seeds={','.join(map(str, seeds))} is"
        " not of that form: pass --seeds=0,1,2 (say) or leave recipe out of --methods."
    )
  results = recipe_run(dataset, value, len(seeds))
  selection = results["selection"]
  how = {"chosen": selection["chosen"]["name"]}
  how["generators_held_out"] = results["generators_held_out"]
  how |= {k: selection[k] for k in ("held_out_flagged", "standard_error") if k in selection}
  return [
      {"seed": seed, "test": {"classifier": t}, **how}
      for seed, t in zip(seeds, member_tests(results["final"]))
  ]


def jtt_error_set(dataset: str, value: float, seed: int) -> dict:
  """JTT's error set (the training examples its identification run misclassifies) against the
  bias-conflicting ones: a diagnosis that reads bias labels, never used for training."""
  workdir = jtt_identifier_dir(dataset, value, seed)
  train = runs.load_dataset(runs.read_config(runs.absolute(str(workdir))).data).train
  errors = runs.load_classifier(str(workdir))(train.images).argmax(-1) != train.label
  conflicting = train.bias_label != train.label
  found = int((errors & conflicting).sum())
  return {
      "seed": seed,
      "error_set": int(errors.sum()),
      "conflicting": int(conflicting.sum()),
      "precision": found / max(int(errors.sum()), 1),
      "recall": found / max(int(conflicting.sum()), 1),
  }


# Methods whose paper reports the best evaluation on the test set (its code keeps it): their
# cells also record that peak, to explain the gap to the published numbers.
PEAK_REPORTED = ("disent",)


def best_test_evaluation(dataset: str, method: str, value: float, seed: int) -> dict:
  """A run's highest unbiased test accuracy over its evaluations, and its step: what a paper
  selecting the checkpoint on the test set reports. A diagnosis, never a result."""
  log = runs.MetricsLog(epath.Path(workdir_of(dataset, method, value, seed)) / "metrics.jsonl")
  key = "test/classifier/unbiased_accuracy"
  best = max((r for r in log.records if key in r), key=lambda r: r[key])
  return {"unbiased_accuracy": best[key], "step": best["step"]}


def peak_lines(found: dict, columns: dict) -> list[str]:
  lines = []
  for method in PEAK_REPORTED:
    for dataset, value in ((d, v) for d, values in columns.items() for v in values):
      per_seed = found.get((dataset, method, value), [])
      if per_seed and all("best_test_evaluation" in r for r in per_seed):
        cells = "; ".join(
            f"seed {r['seed']}: {100 * r['test']['classifier']['unbiased_accuracy']:.2f} final,"
            f" {100 * r['best_test_evaluation']['unbiased_accuracy']:.2f} at step"
            f" {r['best_test_evaluation']['step']:,}"
            for r in per_seed
        )
        lines.append(f"- {method}, {TITLES[dataset]} {value:g}: {cells}")
  if not lines:
    return []
  return [
      "",
      "The best evaluation on the test set over training, which a paper that keeps the best"
      " test-set checkpoint reports (for this diagnosis only; the table shows final models):",
      "",
  ] + lines


def error_set_lines(error_sets: dict) -> list[str]:
  lines = []
  for (dataset, value), per_seed in error_sets.items():
    cells = "; ".join(
        f"seed {e['seed']}: {e['error_set']} examples, precision {e['precision']:.2f}, recall"
        f" {e['recall']:.2f}"
        for e in per_seed
    )
    lines.append(f"- {TITLES[dataset]} {value:g}: {cells}")
  if not lines:
    return []
  return [
      "",
      "JTT's error set (what its identification run misclassifies) against the bias-conflicting"
      " training examples, read with bias labels for this diagnosis only:",
      "",
  ] + lines


def recipe_lines(found: dict, columns: dict) -> list[str]:
  """What each recipe cell chose, with the label-free signals of how far to trust it."""
  lines = []
  for dataset, value in ((d, v) for d, values in columns.items() for v in values):
    if (dataset, "recipe", value) not in found:
      continue
    first = found[dataset, "recipe", value][0]  # One selection for all of a run's seeds.
    if "standard_error" in first:
      how = (
          f"one-standard-error rule; {first['held_out_flagged']} held-out examples read as"
          f" conflicting by the amplifier; standard error {100 * first['standard_error']:.2f}"
          " points"
      )
    else:
      how = "the best held-out score, made before the one-standard-error rule"
    lines.append(f"- {TITLES[dataset]} {value:g}: {first['chosen']} ({how})")
  if not lines:
    return []
  return ["", "The recipe's choice in each cell, made without bias labels:", ""] + lines


def methods_in(found: dict, dataset: str | None = None) -> list[str]:
  """The methods with a cell in `found` (of `dataset`, if given), in the table's order."""
  return [m for m in METHODS if any(k[1] == m and dataset in (None, k[0]) for k in found)]


def previous(path: pathlib.Path) -> tuple[dict, dict]:
  """(cells, JTT error sets) of an earlier baselines.json at `path`, or none. (A file written
  before error sets named their seeds lists them in the order of its JTT cell's seeds.)"""
  if not path.exists():
    return {}, {}
  found, error_sets = {}, {}
  for key, per_seed in json.loads(path.read_text()).items():
    dataset, method, value = key.split("/")
    if method == "jtt_error_set":
      error_sets[dataset, float(value)] = per_seed
    elif method == "recipe":
      found[dataset, method, float(value)] = [stored_recipe(r) for r in per_seed]
    else:
      found[dataset, method, float(value)] = per_seed
  for (dataset, value), per_seed in error_sets.items():
    seeds = seeds_of(found.get((dataset, "jtt", value), []))
    if any("seed" not in e for e in per_seed) and len(seeds) == len(per_seed):
      error_sets[dataset, value] = [{"seed": s, **e} for s, e in zip(seeds, per_seed)]
  return found, error_sets


def merged(key: tuple, earlier: list[dict] | None, new: list[dict]) -> list[dict]:
  """A cell's per-seed results after a run of `new` seeds: each joins or replaces the earlier
  result of its seed; a recipe cell (its seeds one run, one selection) is replaced whole
  (`main` has refused, before any run, one of fewer seeds: `check_recipe_seeds`)."""
  return new if key[1] == "recipe" else merge_seeds(earlier, new)


def check_recipe_seeds(key: tuple, earlier: list[dict] | None, seeds: list[int]) -> None:
  """Refuses a recipe run of `seeds` that would replace a cell of more seeds."""
  if earlier and len(seeds) < len(earlier):
    raise app.UsageError(
        f"{'/'.join(map(str, key))} already holds seeds {seeds_of(earlier)}; a recipe run of"
        f" seeds {seeds} would replace them: pass"
        f" --seeds={','.join(map(str, seeds_of(earlier)))} or more, or another --out."
    )


def common_seeds(found: dict) -> list[int]:
  """The seeds most cells hold (of two sets as common, the larger): the table's, named once in
  its header; a cell of other seeds names its own."""
  counts = collections.Counter(tuple(seeds_of(cell)) for cell in found.values())
  return list(max(counts, key=lambda seeds: (counts[seeds], len(seeds))))


def table(found: dict, columns: dict, error_sets: dict) -> str:
  seeds = common_seeds(found)
  seeds_text = ",".join(map(str, seeds))
  missing = any(
      (d, m, v) not in found for d, values in columns.items() for m in methods_in(found, d)
      for v in values
  )
  flags_text = " ".join(
      [f"--seeds={seeds_text}", f"--methods={','.join(methods_in(found))}"]
      + [f"--{name}={','.join(f'{v:g}' for v in columns[d])}" for d, name in FLAG_OF.items()]
  )
  more_seeds = {  # A recipe cell's seeds are one run: one of more seeds is not rerun as fewer.
      ",".join(map(str, seeds_of(c)))
      for (_, method, _), c in found.items()
      if method == "recipe" and len(c) > len(seeds)
  }
  recipe_text = "".join(
      f" (a recipe cell of seeds {s}: its run with `--methods=recipe --seeds={s}`)"
      for s in sorted(more_seeds)
  )
  lines = [
      f"Unbiased test accuracy (%: the mean over the (label, bias colour) groups), mean ± sample"
      f" std over seeds {seeds_text} (a cell of other seeds names them; fewer: not all run yet);"
      " final models, the MLP protocol; knobs fixed in advance or"
      " chosen on held-out training data without bias labels, as listed; bias labels read by"
      " evaluation only (but by the oracle)."
      f" Machine: {machine()}. Regenerate with `python -m benchmarks.baselines {flags_text}`"
      f"{recipe_text}." + (" -: not run yet." if missing else "")
      + (f" {EARLY_HOLDOUT_NOTE}" if any(map(early_holdout, found.values())) else ""),
  ]
  for dataset, values in columns.items():
    if not values:
      continue
    head = " | ".join(f"{100 * v:g}%" if dataset == "colored_mnist" else f"{v:g}" for v in values)
    lines += ["", f"**{TITLES[dataset]}**", "", f"| method | {head} | knobs |",
              "|---|" + "---|" * (len(values) + 1)]
    for method in methods_in(found, dataset):
      cells = [cell_text(found.get((dataset, method, v)), seeds) for v in values]
      lines.append(f"| {method} | {' | '.join(cells)} | {KNOBS[method]} |")
    for name, published, how in PUBLISHED[dataset]:
      cells = [f"{published[v]:.2f}" if v in published else "-" for v in values]
      lines.append(f"| {name} | {' | '.join(cells)} | {how} |")
  diagnoses = recipe_lines(found, columns) + peak_lines(found, columns)
  return "\n".join(lines + diagnoses + error_set_lines(error_sets)) + "\n"


def write_plot(found: dict, columns: dict, path: pathlib.Path) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  shown = {d: v for d, v in columns.items() if v}
  fig, axes = plt.subplots(1, len(shown), figsize=(5 * len(shown), 3.5), squeeze=False)
  for ax, (dataset, values) in zip(axes[0], shown.items()):
    positions = np.arange(len(values))
    for method in methods_in(found, dataset):
      shown_at = [k for k, v in enumerate(values) if (dataset, method, v) in found]
      acc = [100 * np.array(unbiased(found[dataset, method, values[k]])) for k in shown_at]
      ax.errorbar(
          positions[shown_at],
          [a.mean() for a in acc],
          yerr=[a.std(ddof=1) if len(a) > 1 else 0 for a in acc],
          marker="o",
          capsize=3,
          label=method,
      )
    labels = [f"{100 * v:g}%" if dataset == "colored_mnist" else f"{v:g}" for v in values]
    ax.set_xticks(positions, labels)
    ax.set(title=TITLES[dataset], ylabel="unbiased test accuracy (%)")
    ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=150)


def main(argv):
  del argv
  quiet_library_logs()
  seeds = [int(s) for s in _SEEDS.value]
  columns = {
      "colored_mnist": [float(r) for r in _RATIOS.value],
      "biased_mnist": [float(r) for r in _RHOS.value],
  }
  out = pathlib.Path(_OUT.value)
  found, error_sets = previous(out / "baselines.json") if _UPDATE.value else ({}, {})
  for dataset, values in columns.items():  # Before any run: refused cells cost nothing.
    for value in values if "recipe" in _METHODS.value else []:
      check_recipe_seeds((dataset, "recipe", value), found.get((dataset, "recipe", value)), seeds)
  for dataset, values in columns.items():
    for method in _METHODS.value:
      for value in values:
        key = dataset, method, value
        if method == "recipe":
          cell = recipe_seeds(dataset, value, seeds)
        else:
          cell = [run_one(dataset, method, value, s) for s in seeds]
        if method in PEAK_REPORTED:
          cell = [
              r | {"best_test_evaluation": best_test_evaluation(dataset, method, value, s)}
              for r, s in zip(cell, seeds)
          ]
        found[key] = merged(key, found.get(key), cell)
        if method == "jtt":
          new = [jtt_error_set(dataset, value, s) for s in seeds]
          error_sets[dataset, value] = merged(key, error_sets.get((dataset, value)), new)
  for dataset in columns:  # With the kept cells' columns; ratios up, rhos down (hardest first).
    values = {v for d, _, v in found if d == dataset} | set(columns[dataset])
    columns[dataset] = sorted(values, reverse=dataset == "biased_mnist")
  out.mkdir(parents=True, exist_ok=True)
  (out / "baselines.json").write_text(
      json.dumps(
          {f"{d}/{m}/{v}": r for (d, m, v), r in found.items()}
          | {f"{d}/jtt_error_set/{v}": e for (d, v), e in error_sets.items()},
          indent=1,
      )
  )
  text = table(found, columns, error_sets)
  (out / "baselines.md").write_text(f"# Baselines on two kinds of colour bias\n\n{text}")
  write_plot(found, columns, out / "baselines.png")
  if _README.value:
    readme.splice("baselines", text)
  print(text)


if __name__ == "__main__":
  app.run(main)
