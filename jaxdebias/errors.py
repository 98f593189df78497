"""Exceptions whose message is meant for the user: one sentence that says what to do.

Every command prints the message and exits with status 2 instead of showing a traceback
(`exit_on_user_error`).
"""

import contextlib
import os
import sys
import traceback


class UserFacingError(Exception):
  """Base class: the run cannot go on, and the message says what the user should do."""


class InputError(UserFacingError, ValueError):
  """Bad user input: config value, data, workdir or checkpoint."""


def check_integer(name: str, value, at_least: int, meaning: str = "") -> None:
  """Raises InputError naming --config.{name} unless `value` is an integer (not a bool) of at
  least `at_least`; `meaning` (e.g. " (0: no decay)") follows the requirement."""
  if not isinstance(value, int) or isinstance(value, bool) or value < at_least:
    kind = "a positive integer" if at_least == 1 else f"an integer >= {at_least}"
    raise InputError(f"{name} must be {kind}{meaning}, got {value!r}; set --config.{name}.")


class WriteError(UserFacingError, OSError):
  """A file of the workdir could not be written (disk full, not a directory, permission);
  everything complete before it is kept."""


class NonFiniteLossError(UserFacingError, FloatingPointError):
  """The training loss became NaN or Inf; the last good checkpoint is kept."""


class Interrupted(KeyboardInterrupt):
  """The run was stopped (Ctrl-C, or SIGTERM as a preemption sends); the message says where
  and that the same command resumes. A KeyboardInterrupt, so whatever catches one catches it."""

  def __init__(self, message: str, exit_code: int):
    super().__init__(message)
    self.exit_code = exit_code


def where_user_code_failed(e: Exception) -> str:
  """'what (file, line N)' for an exception raised by a user's Python file (a config file, a
  sweep file): enough to fix it, in one line."""
  if isinstance(e, SyntaxError):
    return f"{e.msg} ({e.filename}, line {e.lineno})"
  where = traceback.extract_tb(e.__traceback__)[-1]
  return f"{type(e).__name__}: {e} ({where.filename}, line {where.lineno})"


@contextlib.contextmanager
def exit_on_user_error():
  """Inside: a UserFacingError prints `error: <message>` on stderr and exits with status 2, the
  convention of every jaxdebias command (after a failed write at once, skipping shutdown); an
  interruption prints one line, not a traceback, and exits with 128 + the signal's number (130
  for Ctrl-C, 143 for SIGTERM)."""
  try:
    yield
  except WriteError as e:
    print(f"error: {e}", file=sys.stderr)
    # Straight out: Orbax's threads and asyncio's tasks of the failed write would print
    # tracebacks of their own as the interpreter shuts down. Every complete file is closed.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(2)  # pylint: disable=protected-access
  except UserFacingError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  except Interrupted as e:
    print(f"stopped: {e}", file=sys.stderr)
    sys.exit(e.exit_code)
  except KeyboardInterrupt:
    print(
        "stopped (Ctrl-C) outside training; finished runs and checkpoints are kept: the same "
        "command goes on from them.",
        file=sys.stderr,
    )
    sys.exit(130)
