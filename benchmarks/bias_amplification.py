r"""Synthetic bias amplification on Colored MNIST: a loop over the recipe's config, and tables.

  python -m benchmarks.bias_amplification                        # 4 ratios, 5 seeds, 2 columns
  python -m benchmarks.bias_amplification --ratios=0.01 --priors=none

For each conflicting ratio and each column, one run of the recipe (configs/bias_amplification.py:
data=colored_mnist,ratio=R,seeds=N[,tinted]) in workdirs/bias_amplification/PRIOR_rR_sN
(finished stages are reused, interrupted ones resume): every knob is chosen inside the recipe on
a held-out part of the training split without bias labels (its selection criterion), N seeds
side by side in every classifier stage, one generator per run. Columns: `none` (the default: no
knowledge of the bias) and `tinted` (the opt-in colour prior gan.tinted, which knows that the
bias is the colour of the strokes). ERM and LfF beside them are benchmarks/colored_mnist.py's
runs on the whole training split with the same seeds (workdirs/colored_mnist, reused or
trained): the LfF protocol, fixed knobs. Bias labels are read by evaluation and diagnostics
only. Writes results/bias_amplification.{md,json} and puts the first table into README.md.
"""

import json
import pathlib

from absl import app
from absl import flags
import numpy as np

from benchmarks import readme
from benchmarks.readme import machine, mean_std
from benchmarks.references import member_tests, plain_runs, recipe_run
from jaxdebias.recipes.bias_amplification import SELECTION_CRITERION, candidate_name
from jaxdebias.runs import quiet_library_logs

_RATIOS = flags.DEFINE_list("ratios", ["0.005", "0.01", "0.02", "0.05"], "Conflicting ratios.")
_SEEDS = flags.DEFINE_integer("seeds", 5, "Seeds 0..N-1, side by side in every classifier stage.")
_PRIORS = flags.DEFINE_list("priors", ["none", "tinted"], "Columns: none, tinted.")
_OUT = flags.DEFINE_string("out", "results", "Where the table and JSON go.")
_README = flags.DEFINE_bool("readme", True, "Also put the first table into README.md.")

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


def report(found: dict, plain: dict, ratios, num_seeds: int, priors) -> str:
  cols = " | ".join(f"{100 * r:g}%" for r in ratios)
  lines = [
      "# Synthetic bias amplification on Colored MNIST, as one command per cell",
      "",
      f"Regenerate with `python -m benchmarks.bias_amplification --seeds={num_seeds}"
      f" --ratios={','.join(map(str, ratios))} --priors={','.join(priors)}`. Unbiased test"
      " accuracy in % (the mean over the 10 x 10 (digit, colour) groups), mean ± sample std over"
      f" seeds 0-{num_seeds - 1}; final models (23,500 steps, no checkpoint selection). Recipe"
      " columns: every knob chosen inside the recipe without bias labels and without test"
      f" examples ({SELECTION_CRITERION}); one generator per cell, the seeds side by side in"
      " every classifier stage. ERM and LfF: benchmarks/colored_mnist.py's runs on the whole"
      " training split, the LfF protocol's fixed knobs. Measured on: " + machine() + ".",
      "",
      f"| column | {cols} |",
      "|---|" + "---|" * len(ratios),
  ]
  for method in ("erm", "lff"):
    cells = [mean_std([member_tests(r)[0]["unbiased_accuracy"] for r in plain[method, ratio]])
             for ratio in ratios]
    lines.append(f"| {method} (fixed knobs) | {' | '.join(cells)} |")
  for prior in priors:
    cells = [
        mean_std([t["unbiased_accuracy"] for t in member_tests(found[prior, r]["final"])])
        for r in ratios
    ]
    lines.append(f"| recipe, {PRIORS[prior]} | {' | '.join(cells)} |")
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
  for prior in priors:
    for ratio in ratios:
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
  for prior in priors:
    for ratio in ratios:
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
  return "\n".join(lines + readme.recipe_times(found)) + "\n"


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
  ratios = [float(r) for r in _RATIOS.value]
  priors = _PRIORS.value
  unknown = set(priors) - set(PRIORS)
  if unknown:
    raise app.UsageError(f"Unknown priors {sorted(unknown)}; use {sorted(PRIORS)}.")
  seeds = list(range(_SEEDS.value))
  plain = plain_runs(ratios, seeds)
  found = recipe_runs(ratios, _SEEDS.value, priors)
  out = pathlib.Path(_OUT.value)
  out.mkdir(parents=True, exist_ok=True)
  text = report(found, plain, ratios, _SEEDS.value, priors)
  (out / "bias_amplification.md").write_text(text)
  if _README.value:  # The first table, without the page title.
    readme.splice("bias_amplification", text.split("\n## ")[0].split("\n", 2)[2].lstrip())
  (out / "bias_amplification.json").write_text(
      json.dumps(
          {
              "recipes": {f"{p}/{r}": v for (p, r), v in found.items()},
              "plain": {f"{m}/{r}": v for (m, r), v in plain.items()},
          },
          indent=1,
      )
  )
  print(text)


if __name__ == "__main__":
  app.run(main)
