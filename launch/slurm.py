r"""Writes one SLURM batch script per run of a sweep (several nodes, one process per GPU).

  python -m launch.slurm launch/sweeps/colored_mnist.py --nodes=2 --gpus_per_node=8 \
      [--partition=P] [--time=HH:MM:SS] [--cpus_per_task=8] [--out=DIR] [--root=workdirs/sweeps] \
      [--submit]

Writes OUT/NAME.sbatch (OUT defaults to ROOT) and prints `sbatch OUT/NAME.sbatch` for every run
not finished yet, or submits them with --submit. A job's output is appended to ROOT/NAME.log.
One script per run rather than one array job: each file shows its run's full command, and a
failed or preempted run is resubmitted alone with its own `sbatch` line (the trainer resumes).
The scripts run the Python that wrote them, in this directory: both must be on a filesystem
that the nodes share.
"""

import os
import shlex
import subprocess
import sys

from launch import sweep

_TEMPLATE = """\
#!/bin/bash
#SBATCH --job-name={name}
#SBATCH --nodes={nodes}
#SBATCH --ntasks-per-node={gpus_per_node}
#SBATCH --gpus-per-task=1
#SBATCH --cpus-per-task={cpus_per_task}
#SBATCH --output={log}
#SBATCH --open-mode=append
#SBATCH --chdir={repo}
{options}# srun starts one trainer per GPU. Its jax.distributed.initialize() reads SLURM_*
# (coordinator: the first node, port from SLURM_JOB_ID; process id: SLURM_PROCID; count:
# SLURM_NTASKS) and would drive GPU number SLURM_LOCALID, but --gpus-per-task=1 shows each task
# its own GPU alone, as device 0 (github.com/jax-ml/jax/issues/28194): JAX_LOCAL_DEVICE_IDS=0.
export JAX_LOCAL_DEVICE_IDS=0
srun {command}
"""


def script(run: sweep.Run, args) -> str:
  """The batch script of `run`."""
  options = "".join(
      f"#SBATCH --{name}={value}\n"
      for name, value in (("partition", args.partition), ("time", args.time))
      if value
  )
  return _TEMPLATE.format(
      name=run.name,
      nodes=args.nodes,
      gpus_per_node=args.gpus_per_node,
      cpus_per_task=args.cpus_per_task,
      log=os.path.abspath(os.path.join(args.root, f"{run.name}.log")),
      repo=os.getcwd(),
      options=options,
      command=shlex.join(run.argv(args.root)),
  )


def _main(args, runs: list[sweep.Run]) -> int:
  out = args.out or args.root
  os.makedirs(out, exist_ok=True)
  os.makedirs(args.root, exist_ok=True)  # SLURM opens ROOT/NAME.log before the job runs.
  for run in runs:
    path = os.path.join(out, f"{run.name}.sbatch")
    with open(path, "w") as f:
      f.write(script(run, args))
    if os.path.exists(run.results_path(args.root)):
      print(f"skip {run.name} (finished)")
      continue
    print(shlex.join(["sbatch", path]), flush=True)
    if args.submit and (code := subprocess.run(["sbatch", path], check=False).returncode):
      raise sweep.SweepError(f"sbatch {path} exited with status {code}.")
  return 0


def main(argv: list[str] | None = None) -> int:
  parser = sweep.arg_parser(__doc__)
  parser.add_argument("--nodes", type=int, required=True, help="nodes per run")
  parser.add_argument(
      "--gpus_per_node", type=int, required=True, help="GPUs (= processes) per node"
  )
  parser.add_argument("--cpus_per_task", type=int, default=8, help="CPU cores per process")
  parser.add_argument("--partition", help="SLURM partition")
  parser.add_argument("--time", help="time limit per run, HH:MM:SS")
  parser.add_argument("--out", help="where the .sbatch files go (default: ROOT)")
  parser.add_argument("--submit", action="store_true", help="submit them with sbatch")
  return sweep.cli(parser, _main, argv)


if __name__ == "__main__":
  sys.exit(main())
