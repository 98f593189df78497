"""Trains every run of a sweep on this machine; finished runs are skipped, unfinished ones resume.

  python -m launch.run launch/sweeps/colored_mnist.py [--root=workdirs/sweeps] [--parallel=N]
  python -m launch.run launch/sweeps/colored_mnist.py --dry-run   # print the commands only
  python -m launch.run launch/sweeps/colored_mnist.py --pack      # runs side by side

Each run is its `python -m jaxdebias.main ... --workdir=ROOT/NAME` command (launch/sweep.py) in a
subprocess, with stdout and stderr appended to ROOT/NAME.log. A run whose workdir holds
results.json is skipped; any other is started, and the trainer resumes it from its last
checkpoint. A failed run does not stop the others; the exit status is 1 if any run failed.

--pack: the unfinished runs go to one `python -m launch.pack` process (log ROOT/pack-HASH.log),
which trains the compatible ones side by side as one program (jaxdebias/trainers/pack.py), each
writing ROOT/NAME as its own command would.
"""

import concurrent.futures
import hashlib
import os
import shlex
import subprocess
import sys
import time

from launch import sweep


def _last_line(path: str, prefix: str = "") -> str:
  """The log's last line that starts with `prefix`, less it (the last line if none does)."""
  with open(path, errors="replace") as f:
    lines = [line.strip() for line in f if line.strip()]
  mine = [line[len(prefix) :] for line in lines if prefix and line.startswith(prefix)]
  return (mine or lines or ["(empty log)"])[-1][:200]


def _train(run: sweep.Run, root: str) -> int:
  """Trains `run` in a subprocess, printing its status; returns the exit code."""
  log = os.path.join(root, f"{run.name}.log")
  print(f"start {run.name} (log: {log})", flush=True)
  started = time.monotonic()
  with open(log, "a") as f:
    code = subprocess.run(
        run.argv(root), stdout=f, stderr=subprocess.STDOUT, check=False
    ).returncode
  if code:
    print(f"failed {run.name} (exit {code}): {_last_line(log)} (log: {log})", flush=True)
  else:
    print(f"finished {run.name} in {time.monotonic() - started:.0f} s", flush=True)
  return code


def _pack_argv(args, todo: list[sweep.Run]) -> list[str]:
  names = ",".join(run.name for run in todo)
  size = [] if args.pack_size is None else [f"--pack_size={args.pack_size}"]
  return [
      sys.executable, "-m", "launch.pack", args.sweep, f"--root={args.root}", f"--runs={names}"
  ] + size


def _train_packed(args, todo: list[sweep.Run]) -> int:
  """Trains `todo` in one launch.pack process; returns how many failed."""
  digest = hashlib.sha256(",".join(run.name for run in todo).encode()).hexdigest()[:8]
  log = os.path.join(args.root, f"pack-{digest}.log")
  print(f"start {len(todo)} runs packed (log: {log})", flush=True)
  started = time.monotonic()
  with open(log, "a") as f:
    subprocess.run(_pack_argv(args, todo), stdout=f, stderr=subprocess.STDOUT, check=False)
  failed = [run for run in todo if not os.path.exists(run.results_path(args.root))]
  for run in todo:
    if run in failed:
      error = _last_line(log, prefix=f"failed {run.name}: ")  # launch.pack's line for it.
      print(f"failed {run.name}: {error} (log: {log})", flush=True)
    else:
      print(f"finished {run.name} in {time.monotonic() - started:.0f} s (packed)", flush=True)
  return len(failed)


def _main(args, runs: list[sweep.Run]) -> int:
  if args.parallel < 1:
    raise sweep.SweepError(f"--parallel must be at least 1, got {args.parallel}.")
  if args.pack and args.parallel > 1:
    raise sweep.SweepError("--pack trains in one process; drop --parallel.")
  todo = [run for run in runs if not os.path.exists(run.results_path(args.root))]
  if args.dry_run:
    commands = [_pack_argv(args, todo)] if args.pack and todo else [r.argv(args.root) for r in runs]
    print("\n".join(map(shlex.join, commands)))
    return 0
  os.makedirs(args.root, exist_ok=True)
  for run in runs:
    if run not in todo:
      print(f"skip {run.name} (finished)")
  if args.pack and todo:
    failed = _train_packed(args, todo)
  else:
    with concurrent.futures.ThreadPoolExecutor(args.parallel) as pool:
      failed = sum(code != 0 for code in pool.map(lambda run: _train(run, args.root), todo))
  print(f"{len(todo) - failed} finished, {failed} failed, {len(runs) - len(todo)} skipped.")
  return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
  parser = sweep.arg_parser(__doc__)
  parser.add_argument(
      "--parallel",
      type=int,
      default=1,
      help="runs at a time (each uses all devices JAX sees: for machines with room for several)",
  )
  parser.add_argument(
      "--pack",
      action="store_true",
      help="train the unfinished runs in one process, compatible ones side by side (launch.pack)",
  )
  parser.add_argument(
      "--pack_size",
      type=int,
      default=None,
      help="with --pack: the most runs per pack (default: 3 on CPU, else as many as fit)",
  )
  parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
  return sweep.cli(parser, _main, argv)


if __name__ == "__main__":
  sys.exit(main())
