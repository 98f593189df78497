"""What a command logs: its own INFO lines readable (the libraries' quieted), and none at all
when it stops on a bad input before any work (the error sentence alone is the whole story)."""

import contextlib
import logging as logging_std

from absl import logging

from jaxdebias.errors import UserFacingError


class _QuietLibraryInfo(logging_std.Filter):
  """Drops INFO records of orbax and TFDS (dozens per checkpoint); keeps their warnings."""

  def filter(self, record: logging_std.LogRecord) -> bool:
    noisy = any(f"/{lib}/" in record.pathname for lib in ("orbax", "tensorflow_datasets"))
    return record.levelno >= logging_std.WARNING or not noisy


def quiet_library_logs() -> None:
  """Keeps jaxdebias' own INFO logs readable: call once at program start."""
  logging.get_absl_handler().addFilter(_QuietLibraryInfo())


class _Held(logging_std.Filter):
  """Holds the log records back while `holding`."""

  def __init__(self):
    super().__init__()
    self.holding, self.records = True, []

  def filter(self, record: logging_std.LogRecord) -> bool:
    if self.holding:
      self.records.append(record)
      return False
    return True


_held: _Held | None = None


@contextlib.contextmanager
def held_until_work_starts():
  """Inside: logs wait until `work_starts()` (a run writing its config.json). A bad input found
  before (a UserFacingError) drops them, so the command prints its error sentence alone (what
  Orbax or a reader logged on the way is the same failure); otherwise (work started, the command
  ended, a bug, an interruption) they are printed."""
  global _held
  handler = logging.get_absl_handler()
  _held = _Held()
  handler.addFilter(_held)
  try:
    yield
  except UserFacingError:
    _held.records.clear()
    raise
  finally:
    work_starts()
    handler.removeFilter(_held)
    _held = None


def work_starts() -> None:
  """The inputs are checked and the workdir is about to change: the held logs are printed, and
  the next ones as they come."""
  if _held is None or not _held.holding:
    return
  _held.holding = False
  for record in _held.records:
    logging.get_absl_handler().handle(record)
  _held.records.clear()
