"""Exceptions whose message is meant for the user: one sentence that says what to do.

Every command prints the message and exits with status 2 instead of showing a traceback
(`exit_on_user_error`).
"""

import contextlib
import sys


class UserFacingError(Exception):
  """Base class: the run cannot go on, and the message says what the user should do."""


class InputError(UserFacingError, ValueError):
  """Bad user input: config value, data, workdir or checkpoint."""


class NonFiniteLossError(UserFacingError, FloatingPointError):
  """The training loss became NaN or Inf; the last good checkpoint is kept."""


@contextlib.contextmanager
def exit_on_user_error():
  """Inside: a UserFacingError prints `error: <message>` on stderr and exits with status 2, the
  convention of every jaxdebias command."""
  try:
    yield
  except UserFacingError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
