"""Command line: `python -m jaxdebias.main --config=configs/colored_mnist.py:method=lff --workdir=DIR`.

Flags and logging only; the work is `train.train_and_evaluate(config, workdir)`.
"""

import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from jaxdebias import train
from jaxdebias.errors import UserFacingError

_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for config, metrics, checkpoints.")
config_flags.DEFINE_config_file("config", None, "Config file (configs/*.py[:key=value,...]).",
                                lock_config=True)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments {argv[1:]}; settings go in --config.KEY=VALUE.")
  config = flags.FLAGS.config
  logging.info("Config:\n%s", config)
  try:
    train.train_and_evaluate(config, _WORKDIR.value)
  except UserFacingError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  app.run(main)
