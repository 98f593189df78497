"""Orbax checkpoints of the whole training state, with resume and clear errors."""

import contextlib
import logging as logging_std
import os
import re
import sys
import tempfile
import time
from typing import Any

from absl import logging
from etils import epath
import jax
import orbax.checkpoint as ocp

from jaxdebias.errors import InputError, WriteError


class Checkpointer:
  """Saves the training pytree every eval and restores the latest one on rerun.

  The pytree holds everything a run needs to continue exactly: the method state (params of
  every model, optimizer states, EMA buffers, step). The data order needs no saving: it is a
  function of (seed, step) (data/sampler.py).
  """

  def __init__(self, directory: epath.PathLike, keep: int):
    self.directory = epath.Path(directory)
    if self.directory.exists() and not self.directory.is_dir():
      raise InputError(
          f"{self.directory} is a file, where the checkpoints go; move it away to resume."
      )
    # Synchronous saves: when Orbax's background save fails (a full disk), its threads wait out
    # a 5-minute timeout before the process can end. A save of the classifiers here takes
    # milliseconds, once every checkpoint_every steps.
    self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            preservation_policy=ocp.checkpoint_managers.LatestN(keep),
            create=True,
            enable_async_checkpointing=False,
        ),
    )

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, tree: Any) -> None:
    """Saves `tree` as step `step`; a write that fails is a WriteError (the last complete
    checkpoint is kept), said once: what Orbax, tensorstore and asyncio print about the same
    failure is dropped."""
    try:
      with _stderr_held():
        self.manager.save(step, args=ocp.args.StandardSave(tree))
    except Exception as e:  # Orbax raises OSError, or tensorstore's ValueError naming it.
      reason = _os_error(e)
      if reason is None:
        raise
      # Orbax's threads and asyncio log the failure again as they end.
      for handler in {*logging_std.getLogger().handlers, logging.get_absl_handler()}:
        handler.addFilter(_drop_write_failure_echoes)
      raise WriteError(
          f"writing the checkpoint of step {step} in {self.directory} failed ({reason}); the "
          f"last complete one (step {self.latest_step() or 0}) is kept: free space or fix the "
          "permissions, then rerun the same command to resume from it."
      ) from e

  def restore(self, step: int, like: Any) -> Any:
    """Restores `step` into the structure, shapes and dtypes of `like` (abstract or concrete)."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    where = self.directory / str(step)
    try:
      restored = self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
    except Exception as e:  # Orbax/tensorstore raise many types for damaged or foreign files.
      raise InputError(
          f"The checkpoint {where} cannot be restored ({type(e).__name__}: {_first_line(e)}); "
          "it was left untouched: move it away to resume from an earlier one, or use a new "
          "--workdir."
      ) from e
    mismatched = [
        jax.tree_util.keystr(path)
        for path, got, want in _zip_with_path(restored, abstract)
        if got.shape != want.shape or got.dtype != want.dtype
    ]
    if mismatched:
      raise InputError(
          f"The checkpoint {where} does not fit this config (shape or dtype differs at "
          f"{', '.join(mismatched[:3])}); use a new --workdir for a different model or dataset."
      )
    return restored

  def wait_until_finished(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.close()


def _zip_with_path(tree, other):
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return [(path, leaf, want) for (path, leaf), want in zip(leaves, jax.tree.leaves(other))]


def _os_error(e: Exception) -> str | None:
  """The operating system's reason for a failed write, or None for other failures."""
  if isinstance(e, OSError):
    return e.strerror or str(e)
  code = re.search(r"os_error_code='(\d+)'", str(e))
  return os.strerror(int(code.group(1))) if code else None


# How long a failed save keeps stderr held: tensorstore's threads print the failures of the
# writes still in flight (from C++, to fd 2) within a few milliseconds of the first.
_ECHO_SECONDS = 1.0


@contextlib.contextmanager
def _stderr_held():
  """Inside, file descriptor 2 goes to a temporary file, given back to stderr at the end
  unless a write failed inside (`_os_error`): then what it holds are echoes of the failure."""
  sys.stderr.flush()
  stderr = os.dup(2)
  failed = False
  with tempfile.TemporaryFile() as held:
    os.dup2(held.fileno(), 2)
    try:
      yield
    except Exception as e:
      failed = _os_error(e) is not None
      if failed:  # The write's other threads fail a moment later: wait for them.
        time.sleep(_ECHO_SECONDS)
      raise
    finally:
      sys.stderr.flush()
      os.dup2(stderr, 2)
      os.close(stderr)
      if not failed:
        held.seek(0)
        os.write(2, held.read())


def _drop_write_failure_echoes(record: logging_std.LogRecord) -> bool:
  """False for the ERROR records of Orbax and asyncio (a checkpoint write failed: said once)."""
  echo = record.name == "asyncio" or "/orbax/" in record.pathname
  return not (echo and record.levelno >= logging_std.ERROR)


def _first_line(e: Exception) -> str:
  text = str(e).strip().splitlines()
  return text[0][:200] if text else "no message"
