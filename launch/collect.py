r"""Tabulates a sweep's results: the classifier's test accuracies, mean ± std over seeds.

  python -m launch.collect launch/sweeps/colored_mnist.py [--root=workdirs/sweeps] \
      [--csv=PATH] [--markdown=PATH]

Reads ROOT/NAME/results.json of every run (ROOT may be gs://...). Runs that differ only in
`seed` form one row; so do the members of a multi-member run (--config.num_seeds,
tuple-valued lff.q / lff.ema_alpha) that share their hyperparameters, which become columns
(lff.q, lff.ema_alpha). Prints a Markdown table and lists the runs without results.json.
"""

import csv
import dataclasses
import json
import statistics
import sys

from etils import epath

from launch import sweep

# Column name: key of the classifier's entry in results.json "test".
METRICS = {
    "unbiased": "unbiased_accuracy",
    "aligned": "aligned_accuracy",
    "conflicting": "conflicting_accuracy",
    "worst_group": "worst_group_accuracy",
}


@dataclasses.dataclass
class Group:
  """Models that differ only in their seed: their overrides and accuracies (%) per metric."""

  overrides: dict[str, str]
  seeds: list[int] = dataclasses.field(default_factory=list)
  accuracies: dict[str, list[float]] = dataclasses.field(
      default_factory=lambda: {m: [] for m in METRICS}
  )

  def stats(self, metric: str) -> tuple[float, float | None]:
    """Mean and sample std (None for one seed)."""
    values = self.accuracies[metric]
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def _models(run: sweep.Run, results: dict) -> list[tuple[sweep.Overrides, int, dict]]:
  """(overrides but seed, seed, classifier test metrics) of each model a results.json holds
  (a recipe's: of its final classifier)."""
  results = results.get("final", results)
  fixed = {k: v for k, v in run.overrides.items() if k != "seed"}
  if "members" not in results:
    return [(fixed, results["seed"], results["test"]["classifier"])]
  return [
      (
          {**fixed, **{f"{results['method']}.{k}": v for k, v in member["hparams"].items()}},
          member["seed"],
          member["test"]["classifier"],
      )
      for member in results["members"]
  ]


def collect(runs: list[sweep.Run], root: str) -> tuple[list[Group], list[sweep.Run]]:
  """The groups, in sweep order, and the runs that have not finished."""
  groups: dict[tuple, Group] = {}
  unfinished = []
  for run in runs:
    path = epath.Path(run.results_path(root))
    if not path.exists():
      unfinished.append(run)
      continue
    try:
      models = _models(run, json.loads(path.read_text()))
      for overrides, seed, test in models:
        rendered = {k: sweep.render(v) for k, v in overrides.items()}
        group = groups.setdefault(tuple(sorted(rendered.items())), Group(rendered))
        group.seeds.append(seed)
        for metric, key in METRICS.items():
          group.accuracies[metric].append(100 * test[key])
    except (KeyError, TypeError, json.JSONDecodeError) as e:
      raise sweep.SweepError(f"{path} is not a jaxdebias results.json ({e!r}).") from e
  return list(groups.values()), unfinished


def _columns(groups: list[Group]) -> list[str]:
  return list(dict.fromkeys(k for group in groups for k in group.overrides))


def markdown(groups: list[Group], unfinished: list[sweep.Run], total: int, root: str) -> str:
  columns = _columns(groups)
  lines = [
      f"Classifier test accuracy in %, mean ± sample std over seeds (mean only for n = 1); "
      f"{total - len(unfinished)} of {total} runs finished in {root}.",
      "",
      "| " + " | ".join(columns + ["n", "seeds"] + [m.replace("_", " ") for m in METRICS]) + " |",
      "|" + "---|" * (len(columns) + 2 + len(METRICS)),
  ]
  for group in groups:
    cells = [group.overrides.get(c, "") for c in columns]
    cells += [str(len(group.seeds)), ",".join(map(str, group.seeds))]
    for metric in METRICS:
      mean, std = group.stats(metric)
      cells.append(f"{mean:.2f}" if std is None else f"{mean:.2f} ± {std:.2f}")
    lines.append("| " + " | ".join(cells) + " |")
  if unfinished:
    lines += [""] + [f"not finished: {run.name}" for run in unfinished]
  return "\n".join(lines)


def write_csv(groups: list[Group], path: str) -> None:
  """The table as CSV, accuracies in %, mean and std (empty for one seed) in separate columns."""
  columns = _columns(groups)
  with open(path, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(
        columns + ["n", "seeds"] + [f"{m}_{s}_pct" for m in METRICS for s in ("mean", "std")]
    )
    for group in groups:
      row = [group.overrides.get(c, "") for c in columns]
      row += [len(group.seeds), ",".join(map(str, group.seeds))]
      for metric in METRICS:
        mean, std = group.stats(metric)
        row += [mean, "" if std is None else std]
      writer.writerow(row)


def _main(args, runs: list[sweep.Run]) -> int:
  groups, unfinished = collect(runs, args.root)
  if not groups:
    raise sweep.SweepError(
        f"none of the {len(runs)} runs has finished in {args.root}; train them with "
        f"`python -m launch.run {args.sweep} --root={args.root}`."
    )
  text = markdown(groups, unfinished, len(runs), args.root)
  print(text)
  if args.markdown:
    with open(args.markdown, "w") as f:
      f.write(text + "\n")
  if args.csv:
    write_csv(groups, args.csv)
  return 0


def main(argv: list[str] | None = None) -> int:
  parser = sweep.arg_parser(__doc__)
  parser.add_argument("--csv", help="also write the table as CSV to this path")
  parser.add_argument("--markdown", help="also write the printed table to this path")
  return sweep.cli(parser, _main, argv)


if __name__ == "__main__":
  sys.exit(main())
