"""Trains runs of a sweep packed: in this one process, the compatible classifier runs side by side
as the members of one program (jaxdebias/trainers/pack.py says which runs pack).

  python -m launch.pack launch/sweeps/colored_mnist.py [--root=workdirs/sweeps] [--runs=N1,N2]

What `python -m launch.run SWEEP --pack` starts. Each run writes ROOT/NAME exactly as its own
`python -m jaxdebias.main` command would (same config.json, metrics, checkpoints, results.json);
finished runs are kept as they are and unfinished ones resume. Runs that do not pack (another
trainer, a recipe, a method that reads its own training split) train one after another, alone.
One process on one machine: a multi-host run is launched run by run (launch.tpu_vm, slurm).
A run refused (a config that does not parse, a workdir holding another run) or a pack that
fails does not stop the others; the exit status is 1 if any run failed.
"""

import os
import sys

from absl import flags
from absl import logging
from ml_collections import config_flags

from jaxdebias import recipes, runs
from jaxdebias.errors import UserFacingError
from jaxdebias.main import use_compilation_cache
from jaxdebias.trainers import pack
from launch import sweep


def config_of(run: sweep.Run, root: str):
  """The config `python -m jaxdebias.main` makes of `run`'s command line (same parser)."""
  argv = ["launch.pack", *run.argv(root)[3:]]
  values = flags.FlagValues()
  config_flags.DEFINE_config_file(
      "config", flag_values=values, lock_config=True, sys_argv=argv
  )
  flags.DEFINE_string("workdir", None, "", flag_values=values)
  try:
    values(argv)
    return values.config
  except Exception as e:  # pylint: disable=broad-except  # What the flags say of a bad override.
    cause = str(e.__cause__ or e).strip().splitlines()[-1]
    raise sweep.SweepError(f"its config does not parse ({cause}); fix its overrides.") from e


def _main(args, every_run: list[sweep.Run]) -> int:
  if args.pack_size is not None and args.pack_size < 1:
    raise sweep.SweepError(f"--pack_size must be at least 1, got {args.pack_size}.")
  chosen = every_run
  if args.runs:
    names = args.runs.split(",")
    by_name = {run.name: run for run in every_run}
    if unknown := [n for n in names if n not in by_name]:
      raise sweep.SweepError(
          f"{unknown} are not runs of {args.sweep}; launch.run's --dry-run lists its runs."
      )
    chosen = [by_name[n] for n in names]
  runs.quiet_library_logs()
  logging.use_absl_handler()
  logging.set_verbosity(logging.INFO)
  use_compilation_cache(None)
  failed = []

  def fail(name: str, error: Exception) -> None:
    failed.append(name)
    print(f"failed {name}: error: {error}", flush=True)

  configs = {}
  for k, run in enumerate(chosen):
    try:
      configs[k] = config_of(run, args.root)
    except sweep.SweepError as e:  # That run fails; the others still train.
      fail(run.name, e)

  def report(workdirs: list[str], error: UserFacingError) -> None:
    for workdir in workdirs:
      fail(os.path.basename(workdir), error)

  packed = [k for k, c in configs.items() if c.trainer == "classifier"]
  pack.train_packed(
      [configs[k] for k in packed],
      [chosen[k].workdir(args.root) for k in packed],
      report,
      args.pack_size,
  )
  for k in sorted(set(configs) - set(packed)):  # Recipes, GANs: alone.
    try:
      recipes.run(configs[k], chosen[k].workdir(args.root))
    except UserFacingError as e:
      fail(chosen[k].name, e)
  print(f"{len(chosen) - len(failed)} trained or finished before, {len(failed)} failed.")
  return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
  parser = sweep.arg_parser(__doc__)
  parser.add_argument("--runs", default="", help="comma-separated run names (default: all)")
  parser.add_argument(
      "--pack_size",
      type=int,
      default=None,
      help="the most runs per pack (default: 3 on CPU, else as many as fit the device)",
  )
  flags.FLAGS.mark_as_parsed()  # absl logging without absl's app.
  return sweep.cli(parser, _main, argv)


if __name__ == "__main__":
  sys.exit(main())
