"""Command line:
`python -m jaxdebias.main --config=configs/colored_mnist.py:method=lff --workdir=DIR`.

Flags, logging and multi-process start-up only; the work is what `config.trainer` names
(`recipes.run`: a recipe, or the classifier or GAN trainer of a single run).
"""

import os
import re
import sys

from absl import app
from absl import flags
from absl import logging
from etils import epath
import jax
import ml_collections
from ml_collections import config_flags

from jaxdebias import recipes, runs
from jaxdebias.errors import InputError, exit_on_user_error, where_user_code_failed

DEFAULT_COMPILATION_CACHE = "~/.cache/jaxdebias/xla"
# The size limit of a cache directory set here (LRU eviction). With one, JAX locks the cache on
# every read and write, so the processes of a sweep on one machine can share it; entries written
# without one (no access-time file) would make its writes fail: hence a directory of its own.
COMPILATION_CACHE_BYTES = 4 << 30

_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for config, metrics, checkpoints.")
config_flags.DEFINE_config_file(
    "config", None, "Config file (configs/*.py[:key=value,...]).", lock_config=True
)
_DISTRIBUTED = flags.DEFINE_enum(
    "distributed",
    "auto",
    ["auto", "on", "off"],
    "Multi-process start-up (jax.distributed.initialize): auto = when --coordinator_address is "
    "given or SLURM runs several tasks; on = always (Cloud TPU pods: JAX finds the hosts).",
)
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "HOST:PORT of process 0, for processes started by hand."
)
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "With --coordinator_address.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "With --coordinator_address: 0..n-1.")
_COMPILATION_CACHE = flags.DEFINE_string(
    "compilation_cache",
    None,
    "A directory of its own for JAX's persistent compilation cache: later runs of the same "
    "programs (a sweep's other seeds and values, a resume, a rerun) load them instead of "
    "compiling; '' = off. Default: $JAX_COMPILATION_CACHE_DIR as JAX's own settings say, else "
    f"{DEFAULT_COMPILATION_CACHE}.",
)
_REUSE_STAGES_FROM = flags.DEFINE_string(
    "reuse_stages_from",
    None,
    "A recipe only: the workdir of another run of a recipe; each of its finished stages whose"
    " config this run's stage has too is copied instead of trained (the same recipe with more"
    " seeds or another candidate grid reuses its generators).",
)
flags.mark_flags_as_required(["config", "workdir"])


def parse_flags(argv: list[str]) -> list[str]:
  """Parses flags; a bad flag or config prints one line (not a traceback) and exits with 2."""
  try:
    argv = flags.FLAGS(argv)
    if not isinstance(flags.FLAGS.config, ml_collections.ConfigDict):
      flags.FLAGS.config.lock()  # A config file that failed to load: raises its error.
    return argv
  except (AttributeError, KeyError) as e:  # What ml_collections raises for --config.NOPE=...
    reason = (
        f"the config has no field {str(e).strip(chr(34))}; check the spelling of the "
        "--config.KEY override against the config file"
    )
  except (flags.Error, OSError) as e:
    reason = str(e.__cause__ or e).strip().splitlines()[-1].strip()  # The cause comes last.
    reason = re.sub(r"^\w+Error: ", "", reason)
  except Exception as e:  # pylint: disable=broad-except  # The config file's own code failed.
    reason = f"the config file failed: {where_user_code_failed(e)}; fix it"
  print(f"error: {reason} (see --helpshort).", file=sys.stderr)
  sys.exit(2)


def main(argv):
  if len(argv) > 1:
    print(
        f"error: unexpected arguments {argv[1:]}; settings go in --config.KEY=VALUE.",
        file=sys.stderr,
    )
    sys.exit(2)
  runs.quiet_library_logs()
  start_processes()
  config = flags.FLAGS.config
  with exit_on_user_error(), runs.held_until_work_starts():
    use_compilation_cache(_COMPILATION_CACHE.value)
    logging.info("Config:\n%s", config)
    recipes.run(config, _WORKDIR.value, _REUSE_STAGES_FROM.value)


def use_compilation_cache(directory: str | None) -> None:
  """Points JAX's persistent compilation cache at `directory`, size-limited ('' = off; None:
  $JAX_COMPILATION_CACHE_DIR as JAX's own settings say, else DEFAULT_COMPILATION_CACHE)."""
  if directory is None:
    if "JAX_COMPILATION_CACHE_DIR" in os.environ:
      return  # JAX follows it by itself.
    directory = DEFAULT_COMPILATION_CACHE
  if not directory:
    jax.config.update("jax_compilation_cache_dir", None)
  else:
    directory = os.path.expanduser(directory)
    try:
      epath.Path(directory).mkdir(parents=True, exist_ok=True)
    except OSError as e:
      raise InputError(
          f"--compilation_cache={directory} cannot be made a directory ({e.strerror or e}); "
          "give a writable directory, or --compilation_cache= to compile without a cache."
      ) from e
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_compilation_cache_max_size", COMPILATION_CACHE_BYTES)


def start_processes() -> None:
  """Joins the other processes of a multi-process run, if this is one (see --distributed)."""
  manual = _COORDINATOR.value is not None
  slurm_tasks = int(os.environ.get("SLURM_NTASKS", "1"))
  if _DISTRIBUTED.value == "off" or (
      _DISTRIBUTED.value == "auto" and not manual and slurm_tasks < 2
  ):
    return
  if manual and (_NUM_PROCESSES.value is None or _PROCESS_ID.value is None):
    print(
        "error: --coordinator_address needs --num_processes and --process_id too.", file=sys.stderr
    )
    sys.exit(2)
  # Collectives between CPU processes (tests, CPU clusters); accelerators bring their own.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  logging.info(
      "Process %d of %d; %d local of %d devices.",
      jax.process_index(),
      jax.process_count(),
      jax.local_device_count(),
      jax.device_count(),
  )


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
