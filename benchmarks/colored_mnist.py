r"""Colored MNIST table: ERM and LfF at the four conflicting ratios, severity 4, several seeds.

  python -m benchmarks.colored_mnist                        # the reproduction: 3 seeds
  python -m benchmarks.colored_mnist --input_scaling=unit   # pixels in [0, 1] instead
  python -m benchmarks.colored_mnist --ratios=0.01 --seeds=0 # one column

Each (method, ratio, seed) is an ordinary `jaxdebias.main` run of configs/colored_mnist.py in
workdirs/NAME/... (finished runs are reused, unfinished ones resume), NAME being colored_mnist
for that config's input scaling (the LfF reference code's, which the published numbers rest
on), or colored_mnist_SCALING for another one. Writes results/NAME.md (mean +- std over seeds of
the final model's test metrics, no model selection; published numbers beside ours),
results/NAME.json and results/NAME.png, and puts the table into README.md between the NAME markers.
"""

import json
import pathlib

from absl import app
from absl import flags
from absl import logging
import numpy as np

from benchmarks import readme
from benchmarks.readme import mean_std
from benchmarks.references import PUBLISHED, PUBLISHED_RATIOS
from jaxdebias import trainers
from jaxdebias.runs import quiet_library_logs
from configs import colored_mnist

_METHODS = flags.DEFINE_list("methods", ["erm", "lff"], "Methods to run.")
_RATIOS = flags.DEFINE_list("ratios", ["0.005", "0.01", "0.02", "0.05"], "Conflicting ratios.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")
_SCALING = flags.DEFINE_enum(
    "input_scaling",
    colored_mnist.get_config("").input_scaling,
    ["unit", "lff_reference"],
    "Pixel scaling (config.input_scaling).",
)
_OUT = flags.DEFINE_string("out", "results", "Where the table, JSON and plot go.")
_README = flags.DEFINE_bool("readme", True, "Also put the table into README.md.")

METRICS = ("unbiased_accuracy", "aligned_accuracy", "conflicting_accuracy", "worst_group_accuracy")


def run_all(methods, ratios, seeds, scaling: str, root: pathlib.Path) -> dict:
  """Runs (or reuses) every run; returns {(method, ratio): [results.json of each seed]}."""
  runs = {}
  for method in methods:
    for ratio in ratios:
      for seed in seeds:
        config = colored_mnist.get_config(f"method={method},ratio={ratio}")
        config.seed = seed
        config.input_scaling = scaling
        workdir = root / f"{method}_ratio{ratio}_severity4_seed{seed}"
        results = trainers.train_and_evaluate(config, str(workdir))
        logging.info(
            "%s ratio %s seed %d: trained in %.1f s.",
            method,
            ratio,
            seed,
            results["train_seconds_this_run"],
        )
        runs.setdefault((method, ratio), []).append(results)
  return runs


def table(runs: dict, ratios, seeds, scaling: str) -> str:
  """Markdown: our mean ± std per method and metric, then the published unbiased accuracies."""
  seeds_text = ",".join(map(str, seeds))
  lines = [
      f"Input scaling `{scaling}`. Mean ± sample std over seeds {seeds_text} (std 0 for one"
      " seed); final model after 23,500"
      " steps, no model selection; test accuracies in %, group means over the 10 x 10 (digit,"
      " colour) groups: unbiased = all 100, aligned = the 10 diagonal ones, conflicting = the 90"
      " others, worst = the lowest group. Regenerate with"
      f" `python -m benchmarks.colored_mnist --seeds={seeds_text} --input_scaling={scaling}`.",
      "",
      "| method | metric | " + " | ".join(f"{100 * r:g}%" for r in ratios) + " |",
      "|---|---|" + "---|" * len(ratios),
  ]
  for method in dict.fromkeys(m for m, _ in runs):
    for metric in METRICS:
      cells = [
          mean_std([r["test"]["classifier"][metric] for r in runs[method, ratio]])
          for ratio in ratios
      ]
      lines.append(f"| {method} | {metric.removesuffix('_accuracy')} | {' | '.join(cells)} |")
    if "biased" in runs[method, ratios[0]][0]["test"]:  # LfF's f_B, for diagnosis.
      cells = [
          mean_std([r["test"]["biased"]["unbiased_accuracy"] for r in runs[method, ratio]])
          for ratio in ratios
      ]
      lines.append(f"| {method}: its biased model f_B | unbiased | {' | '.join(cells)} |")
  for _, name, numbers in PUBLISHED:
    published = dict(zip(PUBLISHED_RATIOS, numbers))
    lines.append(f"| {name} | unbiased | {' | '.join(f'{published[r]:.2f}' for r in ratios)} |")
  return "\n".join(lines) + "\n"


def write_plot(runs: dict, ratios, scaling: str, path: pathlib.Path) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  fig, ax = plt.subplots(figsize=(5, 3.5))
  colors = {"erm": "tab:blue", "lff": "tab:orange"}
  for method in dict.fromkeys(m for m, _ in runs):
    acc = [
        100 * np.array([r["test"]["classifier"]["unbiased_accuracy"] for r in runs[method, ratio]])
        for ratio in ratios
    ]
    ax.errorbar(
        [100 * r for r in ratios],
        [a.mean() for a in acc],
        yerr=[a.std(ddof=1) if len(a) > 1 else 0 for a in acc],
        marker="o",
        capsize=3,
        color=colors[method],
        label=f"{method} (ours)",
    )
  for method, name, numbers in PUBLISHED[:2]:
    published = dict(zip(PUBLISHED_RATIOS, numbers))
    ax.plot(
        [100 * r for r in ratios],
        [published[r] for r in ratios],
        ":x",
        color=colors[method],
        label=name,
    )
  ax.set(
      xscale="log",
      xlabel="bias-conflicting training examples (%)",
      ylabel="unbiased test accuracy (%)",
      title=f"Colored MNIST, severity 4, input scaling {scaling}",
  )
  ax.minorticks_off()
  ax.set_xticks([100 * r for r in ratios], [f"{100 * r:g}" for r in ratios])
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=150)


def main(argv):
  del argv
  quiet_library_logs()
  ratios = [float(r) for r in _RATIOS.value]
  seeds = [int(s) for s in _SEEDS.value]
  scaling = _SCALING.value
  default = scaling == colored_mnist.get_config("").input_scaling
  name = "colored_mnist" if default else f"colored_mnist_{scaling}"
  out = pathlib.Path(_OUT.value)
  out.mkdir(parents=True, exist_ok=True)
  runs = run_all(_METHODS.value, ratios, seeds, scaling, pathlib.Path("workdirs") / name)
  (out / f"{name}.json").write_text(
      json.dumps({f"{m}/{r}": v for (m, r), v in runs.items()}, indent=1)
  )
  text = table(runs, ratios, seeds, scaling)
  (out / f"{name}.md").write_text(f"# Colored MNIST, severity 4, input scaling {scaling}\n\n{text}")
  write_plot(runs, ratios, scaling, out / f"{name}.png")
  if _README.value:
    readme.splice(name, text)
  print(text)


if __name__ == "__main__":
  app.run(main)
