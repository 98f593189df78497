"""Exceptions whose message is meant for the user: one sentence that says what to do.

`jaxdebias.main` prints the message and exits with status 2 instead of showing a traceback.
"""


class UserFacingError(Exception):
  """Base class: the run cannot go on, and the message says what the user should do."""


class InputError(UserFacingError, ValueError):
  """Bad user input: config value, data, workdir or checkpoint."""


class NonFiniteLossError(UserFacingError, FloatingPointError):
  """The training loss became NaN or Inf; the last good checkpoint is kept."""
