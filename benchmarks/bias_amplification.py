r"""Synthetic bias amplification on Colored MNIST: a loop over the recipe's config, and tables.

  python -m benchmarks.bias_amplification                        # 4 ratios, 5 seeds, 2 columns
  python -m benchmarks.bias_amplification --ratios=0.01 --priors=none
  python -m benchmarks.bias_amplification --ratios=0.005 --priors=none --noplain --update

For each conflicting ratio and each column, one run of the recipe (configs/bias_amplification.py:
data=colored_mnist,ratio=R,seeds=N[,tinted]) in workdirs/bias_amplification/PRIOR_rR_sN
(finished stages are reused, interrupted ones resume): every knob is chosen inside the recipe on
a held-out part of the training split without bias labels (its selection criterion), N seeds
side by side in every classifier stage, one generator per run. Columns: `none` (the default: no
knowledge of the bias) and `tinted` (the opt-in colour prior gan.tinted, which knows that the
bias is the colour of the strokes). ERM and LfF beside them are benchmarks/colored_mnist.py's
runs on the whole training split with the same seeds (workdirs/colored_mnist, reused or
trained): the LfF protocol, fixed knobs. Bias labels are read by evaluation and diagnostics
only. With --update the table grows cell by cell (a cell takes longer than a working session
on a 2-core CPU): this invocation's cells join those of OUT/bias_amplification.json (a recipe
cell, its seeds one run with one selection, is replaced whole, never by one of fewer seeds; ERM
and LfF grow seed by seed, a seed held there or in OUT/baselines.json, the same runs, is not
run again), and --noplain leaves ERM and LfF to another invocation. Writes
results/bias_amplification.{md,json} and puts the first table into README.md.
"""

import json
import pathlib

from absl import app
from absl import flags
import numpy as np

from benchmarks import readme
from benchmarks.readme import machine
from benchmarks.references import (
    EARLY_HOLDOUT_NOTE,
    cell_text,
    early_holdout,
    member_tests,
    merge_seeds,
    recipe_run,
    run_one,
    seeds_of,
    stored_recipe,
)
from jaxdebias.recipes.bias_amplification import SELECTION_CRITERION, candidate_name
from jaxdebias.runs import quiet_library_logs


def define_flags() -> None:
  """This script's flags, defined only when it runs (absl flags are process-wide: the tests
  import this module beside benchmarks.baselines, which defines flags of the same names)."""
  flags.DEFINE_list("ratios", ["0.005", "0.01", "0.02", "0.05"], "Conflicting ratios.")
  flags.DEFINE_integer("seeds", 5, "Seeds 0..N-1, side by side in every classifier stage.")
  flags.DEFINE_list("priors", ["none", "tinted"], "Columns: none, tinted.")
  flags.DEFINE_string("out", "results", "Where the table and JSON go.")
  flags.DEFINE_bool("readme", True, "Also put the first table into README.md.")
  flags.DEFINE_bool("plain", True, "Also run (or reuse) ERM and LfF, seeds 0..N-1.")
  flags.DEFINE_bool(
      "update", False, "Add this invocation's cells to those of OUT/bias_amplification.json."
  )


PLAIN = ("erm", "lff")  # Beside the recipe columns: the LfF protocol's fixed knobs.
PAIR_QUALITY = ("protected_moved_as_requested", "target_kept", "moved_and_kept")
PRIORS = {
    "none": "no prior (the default)",
    "tinted": "prior: tinted (gan.tinted: the bias is the colour of the strokes)",
}


def recipe_runs(ratios, num_seeds: int, priors) -> dict:
  """{(prior, ratio): the recipe's results.json} on Colored MNIST, each run or reused."""
  return {
      (prior, ratio): recipe_run("colored_mnist", ratio, num_seeds, prior)
      for ratio in ratios
      for prior in priors
  }


def recipe_cell(results: dict) -> list[dict]:
  """A recipe run's final classifier as a table cell, seed by seed (its seeds are 0..N-1)."""
  tests = member_tests(results["final"])
  held_out = {"generators_held_out": results["generators_held_out"]}
  return [{"seed": seed, "test": {"classifier": t}, **held_out} for seed, t in enumerate(tests)]


def previous(path: pathlib.Path) -> tuple[dict, dict]:
  """(recipe runs, ERM and LfF cells) of an earlier bias_amplification.json at `path`, or none."""
  if not path.exists():
    return {}, {}
  stored = json.loads(path.read_text())
  split = lambda key: (key.split("/")[0], float(key.split("/")[1]))
  return (
      {split(k): stored_recipe(v) for k, v in stored["recipes"].items()},
      {split(k): v for k, v in stored["plain"].items()},
  )


def with_baselines(plain: dict, path: pathlib.Path) -> dict:
  """`plain` ({(method, ratio): ERM / LfF cell}) with the seeds it lacks taken from the
  baselines table's JSON at `path`, if any: the same runs (benchmarks.references.run_one)."""
  if not path.exists():
    return plain
  tag = {"measured_on": f"{path}'s runs (its table names the machine)"}
  merged = dict(plain)
  for key, cell in json.loads(path.read_text()).items():
    dataset, method, value = key.split("/")
    if dataset == "colored_mnist" and method in PLAIN:
      ours = plain.get((method, float(value)), [])
      merged[method, float(value)] = merge_seeds([r | tag for r in cell], ours)
  return merged


def check_recipe_seeds(found: dict, ratios, num_seeds: int, priors) -> None:
  """Refuses, before any run, a recipe run that would replace a cell of more seeds."""
  for key in ((prior, ratio) for ratio in ratios for prior in priors):
    held = len(recipe_cell(found[key])) if key in found else 0
    if held > num_seeds:
      raise app.UsageError(
          f"{key[0]}/{key[1]:g} already holds seeds 0-{held - 1}; a run of --seeds={num_seeds}"
          f" would replace them: pass --seeds={held} or more, or another --out."
      )


def in_order(found: dict) -> list[tuple]:
  """The recipe cells' keys, by column (the order of PRIORS), then ratio."""
  return sorted(found, key=lambda key: (list(PRIORS).index(key[0]), key[1]))


def report(found: dict, plain: dict) -> str:
  """The tables of every cell in `found` ({(prior, ratio): recipe results}) and `plain`
  ({(method, ratio): ERM / LfF cell})."""
  ratios = sorted({r for _, r in found} | {r for _, r in plain})
  priors = [p for p in PRIORS if any(k[0] == p for k in found)]
  cells = {(p, r): recipe_cell(v) for (p, r), v in found.items()} | plain
  seeds = max((seeds_of(c) for c in cells.values()), key=len, default=[0])
  machines = sorted({r["measured_on"] for r in [*found.values(), *sum(plain.values(), [])]})
  cols = " | ".join(f"{100 * r:g}%" for r in ratios)
  lines = [
      "# Synthetic bias amplification on Colored MNIST, as one command per cell",
      "",
      f"Regenerate with `python -m benchmarks.bias_amplification --seeds={len(seeds)}"
      f" --ratios={','.join(map(str, ratios))} --priors={','.join(priors)}` (or cell by cell"
      " with --update). Unbiased test accuracy in % (the mean over the 10 x 10 (digit, colour)"
      " groups), mean ± sample std over seeds"
      f" {','.join(map(str, seeds))} (a cell of other seeds names them; -: not run yet); final"
      " models (23,500 steps, no checkpoint selection). Recipe columns: every knob fixed in"
      " advance (gan.pseudo_conflicting_share 0.3: once, on this data at 1%, without bias labels"
      " or test examples; README) or chosen inside the recipe without bias labels and without"
      f" test examples ({SELECTION_CRITERION}); one generator per cell, the seeds side by side in"
      " every classifier stage. ERM and LfF: benchmarks/colored_mnist.py's runs on the whole"
      " training split, the LfF protocol's fixed knobs. Measured on: " + "; and ".join(machines)
      + "." + (f" {EARLY_HOLDOUT_NOTE}" if any(map(early_holdout, cells.values())) else ""),
      "",
      f"| column | {cols} |",
      "|---|" + "---|" * len(ratios),
  ]
  for method in PLAIN:
    row = [cell_text(plain.get((method, r)), seeds) for r in ratios]
    lines.append(f"| {method} (fixed knobs) | {' | '.join(row)} |")
  for prior in priors:
    row = [cell_text(cells.get((prior, r)), seeds) for r in ratios]
    lines.append(f"| recipe, {PRIORS[prior]} | {' | '.join(row)} |")
  lines += [
      "",
      "## What each recipe run chose, and how its held-out score compares with the test",
      "",
      "Held-out: the selection criterion on the held-out tenth of the training split (no bias"
      " label). Test: unbiased test accuracy of the same candidate (trained without the held-out"
      " part), for diagnosis only. Both means over seeds, in %.",
      "",
      "| column | ratio | chosen | fell back | candidate: held-out / test |",
      "|---|---|---|---|---|",
  ]
  for prior, ratio in in_order(found):
    results = found[prior, ratio]
    selection = results["selection"]
    tests = _candidate_tests(results)
    pairs = " ; ".join(
        f"{name}: {100 * s['mean']:.2f} / {100 * tests[name]:.2f}"
        for name, s in selection["scores"].items()
    )
    lines.append(
        f"| {prior} | {100 * ratio:g}% | {selection['chosen']['name']} |"
        f" {'yes' if selection['fell_back'] else 'no'} | {pairs} |"
    )
  lines += [
      "",
      "## Diagnostics (they read the bias labels)",
      "",
      "Amplifier: AUROC of its per-example loss for 'is bias-conflicting' on the real training"
      " images; pseudo-groups at each min_loss: flagged / precision / recall / right group"
      " (definitions in results/bias_amplification.json); pairs: as the recipe's labellers see"
      " them (the amplifier for the bias, the chosen candidate for the class).",
      "",
      "| column | ratio | amplifier AUROC | pseudo-groups | pairs |",
      "|---|---|---|---|---|",
  ]
  for prior, ratio in in_order(found):
    diagnostics = found[prior, ratio]["diagnostics"]
    groups = " ; ".join(
        f"{name}: {100 * q['flagged']:.2f}% / {100 * q['precision']:.1f}% /"
        f" {100 * q['recall']:.1f}% / {100 * q['right_group']:.1f}%"
        for name, q in diagnostics.get("pseudo_groups", {}).items()
    )
    pairs = diagnostics["pairs"]
    pairs_text = pairs.get("skipped") or ", ".join(
        f"{k.replace('_', ' ')} {100 * pairs[k]:.1f}%" for k in PAIR_QUALITY if k in pairs
    )
    auroc = diagnostics.get("amplifier_finds_conflicting", {}).get("auroc", float("nan"))
    lines.append(f"| {prior} | {100 * ratio:g}% | {auroc:.3f} | {groups} | {pairs_text} |")
  times = readme.recipe_times({key: found[key] for key in in_order(found)})
  return "\n".join(lines + times) + "\n"


def _candidate_tests(results: dict) -> dict[str, float]:
  """Selection candidate name -> its unbiased test accuracy, mean over seeds."""
  tests = {}
  for run_name, run in results["diagnostics"]["candidates_test"].items():
    members = run if isinstance(run, list) else [{"hparams": {}, "test": run}]
    for m in members:
      name = candidate_name(run_name, m["hparams"])
      tests.setdefault(name, []).append(m["test"]["classifier"]["unbiased_accuracy"])
  return {name: float(np.mean(v)) for name, v in tests.items()}


def main(argv):
  del argv
  quiet_library_logs()
  args = flags.FLAGS
  ratios, priors, num_seeds = [float(r) for r in args.ratios], args.priors, args.seeds
  unknown = set(priors) - set(PRIORS)
  if unknown:
    raise app.UsageError(f"Unknown priors {sorted(unknown)}; use {sorted(PRIORS)}.")
  out = pathlib.Path(args.out)
  found, plain = previous(out / "bias_amplification.json") if args.update else ({}, {})
  check_recipe_seeds(found, ratios, num_seeds, priors)
  here = {"measured_on": machine()}  # Cells of other invocations may come from other machines.
  if args.update:
    plain = with_baselines(plain, out / "baselines.json")
  for key in [(m, r) for m in PLAIN for r in ratios] if args.plain else []:
    held = seeds_of(plain.get(key, []))
    new = [run_one("colored_mnist", *key, s) | here for s in range(num_seeds) if s not in held]
    plain[key] = merge_seeds(plain.get(key), new)
  found |= {key: r | here for key, r in recipe_runs(ratios, num_seeds, priors).items()}
  out.mkdir(parents=True, exist_ok=True)
  text = report(found, plain)
  (out / "bias_amplification.md").write_text(text)
  if args.readme:  # The first table, without the page title.
    readme.splice("bias_amplification", text.split("\n## ")[0].split("\n", 2)[2].lstrip())
  (out / "bias_amplification.json").write_text(
      json.dumps(
          {
              "recipes": {f"{p}/{r}": found[p, r] for p, r in in_order(found)},
              "plain": {f"{m}/{r}": v for (m, r), v in sorted(plain.items())},
          },
          indent=1,
      )
  )
  print(text)


if __name__ == "__main__":
  define_flags()
  app.run(main)
