"""Command line: `python -m jaxdebias.main --config=configs/colored_mnist.py:method=lff --workdir=DIR`.

Flags and logging only; the work is `train.train_and_evaluate(config, workdir)`.
"""

import re
import sys

from absl import app
from absl import flags
from absl import logging
import ml_collections
from ml_collections import config_flags

from jaxdebias import train
from jaxdebias.errors import UserFacingError

_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for config, metrics, checkpoints.")
config_flags.DEFINE_config_file(
    "config", None, "Config file (configs/*.py[:key=value,...]).", lock_config=True
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
  print(f"error: {reason} (see --helpshort).", file=sys.stderr)
  sys.exit(2)


def main(argv):
  if len(argv) > 1:
    print(
        f"error: unexpected arguments {argv[1:]}; settings go in --config.KEY=VALUE.",
        file=sys.stderr,
    )
    sys.exit(2)
  train.quiet_library_logs()
  config = flags.FLAGS.config
  logging.info("Config:\n%s", config)
  try:
    train.train_and_evaluate(config, _WORKDIR.value)
  except UserFacingError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
