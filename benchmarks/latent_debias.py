r"""Latent de-biasing on Colored MNIST: a loop over the recipe's config, and tables.

  python -m benchmarks.latent_debias                      # 0.5% and 1%, 3 seeds, 3 columns
  python -m benchmarks.latent_debias --ratios=0.01 --seeds=1 --columns=default

For each conflicting ratio and column, one run of the latent de-biasing recipe
(configs/latent_debiasing.py:data=colored_mnist,ratio=R,seeds=N[,ARGS]) in
workdirs/latent_debias/COLUMN_rR_sN (finished stages are reused, interrupted ones resume): a
generator, a protected labeller, the baseline (ERM, which also reads the digit of the generated
images), 2 pair images per real one, the classifier trained again with them; every knob fixed in
advance (the recipe's defaults), N seeds side by side in every classifier stage, one generator
per run. COLUMNS name what each column knows of the bias. LfF beside them is
benchmarks/colored_mnist.py's run on the whole training split with the same seeds (reused or
trained). Bias labels are read by evaluation only, except in the column that says it trains on
them. Writes results/latent_debias.{md,json}.
"""

import json
import pathlib

from absl import app
from absl import flags

from benchmarks import readme
from benchmarks.readme import machine, mean_std
from benchmarks.references import member_tests, plain_runs
from configs import latent_debiasing as recipe_config
from jaxdebias import recipes
from jaxdebias.runs import quiet_library_logs

# Column -> (its recipe arguments, what it knows of the bias).
COLUMNS = {
    "default": ("", "no prior; protected labeller: the bias amplifier (no bias label)"),
    "tinted": (
        ",tinted",
        "prior: tinted (gan.tinted: the bias is the colour of the strokes); protected labeller:"
        " the bias amplifier",
    ),
    "bias_labels": (
        ",bias_labels",
        "the paper's protocol: protected labeller trained on the bias labels; no prior",
    ),
}
PAIR_QUALITY = ("protected_moved_as_requested", "target_kept", "moved_and_kept")

_RATIOS = flags.DEFINE_list("ratios", ["0.005", "0.01"], "Conflicting ratios.")
_SEEDS = flags.DEFINE_integer("seeds", 3, "Seeds 0..N-1, side by side in every classifier stage.")
_COLUMNS = flags.DEFINE_list("columns", list(COLUMNS), f"Columns: {', '.join(COLUMNS)}.")
_OUT = flags.DEFINE_string("out", "results", "Where the table and JSON go.")

ROOT = pathlib.Path("workdirs/latent_debias")


def recipe_runs(ratios, num_seeds: int, columns) -> dict:
  """{(column, ratio): the recipe's results.json}, each run or reused."""
  found = {}
  for ratio in ratios:
    for column in columns:
      config = recipe_config.get_config(
          f"data=colored_mnist,ratio={ratio},seeds={num_seeds}{COLUMNS[column][0]}"
      )
      found[column, ratio] = recipes.run(config, str(ROOT / f"{column}_r{ratio}_s{num_seeds}"))
  return found


def unbiased(results: dict) -> str:
  return mean_std([t["unbiased_accuracy"] for t in member_tests(results)])


def report(found: dict, plain: dict, ratios, num_seeds: int, columns) -> str:
  cols = " | ".join(f"{100 * r:g}%" for r in ratios)
  lines = [
      "# Latent de-biasing on Colored MNIST, as one command per cell",
      "",
      f"Regenerate with `python -m benchmarks.latent_debias --seeds={num_seeds}"
      f" --ratios={','.join(map(str, ratios))} --columns={','.join(columns)}`. Unbiased test"
      " accuracy in % (the mean over the 10 x 10 (digit, colour) groups), mean ± sample std over"
      f" seeds 0-{num_seeds - 1}; final models (23,500 steps, no checkpoint selection). Recipe:"
      " ERM on the real images (baseline) and on the real images plus 2 pair images per real"
      " one (+ pairs); every knob fixed in advance; one generator per cell, the seeds side by"
      " side in every classifier stage. LfF: benchmarks/colored_mnist.py's runs, the LfF"
      " protocol's fixed knobs. Columns:",
      "",
      *[f"- {column}: {COLUMNS[column][1]}" for column in columns],
      "",
      f"Measured on: {machine()}.",
      "",
      f"| run | {cols} |",
      "|---|" + "---|" * len(ratios),
  ]
  cells = [mean_std([member_tests(r)[0]["unbiased_accuracy"] for r in plain["lff", ratio]])
           for ratio in ratios]
  lines.append(f"| lff (fixed knobs) | {' | '.join(cells)} |")
  for column in columns:
    for name, key in (("ERM (baseline)", "baseline"), ("ERM + pairs", "final")):
      cells = [unbiased(found[column, r][key]) for r in ratios]
      lines.append(f"| {column}: {name} | {' | '.join(cells)} |")
  lines += [
      "",
      "## The pairs, as the recipe's labellers read them",
      "",
      "The protected labeller (the column's) reads the bias of x(z'), the baseline the digit;"
      " definitions in results/latent_debias.json.",
      "",
      "| column | ratio | pairs | " + " | ".join(k.replace("_", " ") for k in PAIR_QUALITY) + " |",
      "|---|---|---|" + "---|" * len(PAIR_QUALITY),
  ]
  for column in columns:
    for ratio in ratios:
      pairs = found[column, ratio]["pairs"]
      if "skipped" in pairs:
        lines.append(f"| {column} | {100 * ratio:g}% | none: {pairs['skipped']} |")
        continue
      quality = " | ".join(f"{100 * pairs[k]:.1f}%" for k in PAIR_QUALITY)
      lines.append(f"| {column} | {100 * ratio:g}% | {pairs['num_pairs']} | {quality} |")
  return "\n".join(lines + readme.recipe_times(found)) + "\n"


def main(argv):
  del argv
  quiet_library_logs()
  ratios = [float(r) for r in _RATIOS.value]
  columns = _COLUMNS.value
  unknown = set(columns) - set(COLUMNS)
  if unknown:
    raise app.UsageError(f"Unknown columns {sorted(unknown)}; use {sorted(COLUMNS)}.")
  plain = plain_runs(ratios, range(_SEEDS.value))
  found = recipe_runs(ratios, _SEEDS.value, columns)
  out = pathlib.Path(_OUT.value)
  out.mkdir(parents=True, exist_ok=True)
  text = report(found, plain, ratios, _SEEDS.value, columns)
  (out / "latent_debias.md").write_text(text)
  (out / "latent_debias.json").write_text(
      json.dumps(
          {
              "recipes": {f"{c}/{r}": v for (c, r), v in found.items()},
              "lff": {str(r): plain["lff", r] for r in ratios},
          },
          indent=1,
      )
  )
  print(text)


if __name__ == "__main__":
  app.run(main)
