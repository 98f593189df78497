"""The workdir lock: one run at a time in a workdir (a sweep launched twice, a resubmitted job).

The lock is an exclusive `fcntl.flock` on WORKDIR/lock, which holds who has it (host, pid, start
time). The kernel releases a flock when its process ends, however it ends, so a lock left by a
killed run is free for the next one: there is no stale lock to guess about. The holder removes
the file when it is done; a run that found the workdir missing and wrote nothing removes the
directory too, so a refused command leaves no trace. Multi-process runs lock once (process 0,
which tells the others whether it could); remote workdirs (gs://...) are not locked (no flock
there).
"""

import contextlib
import datetime
import fcntl
import functools
import json
import os
import socket
from collections.abc import Callable, Iterator
from typing import Any

from etils import epath
import jax

from jaxdebias.errors import InputError
from jaxdebias.runs.files import failed_writes_said, is_main_process, process_zero_decides
from jaxdebias.runs.workdir import absolute

LOCK_FILE = "lock"


@contextlib.contextmanager
def workdir_lock(workdir: epath.Path) -> Iterator[None]:
  """Holds WORKDIR/lock inside; another holder is an InputError naming it. In a multi-process
  run process 0 takes the lock and every process learns whether it did: all go on, or all stop
  (none waits forever for a process that stopped)."""
  if "://" in str(workdir):
    yield
    return
  if jax.process_count() == 1:
    with _held(workdir):
      yield
    return
  with contextlib.ExitStack() as stack:
    refused = None
    if is_main_process():
      try:
        stack.enter_context(_held(workdir))
      except InputError as e:
        refused = e
    if not process_zero_decides(refused is None):
      raise refused or InputError(
          f"process 0 could not lock the workdir {workdir}; its error line says why."
      )
    yield


@contextlib.contextmanager
def _held(workdir: epath.Path) -> Iterator[None]:
  """WORKDIR/lock held by this process inside."""
  if workdir.exists() and not workdir.is_dir():
    raise InputError(f"the workdir {workdir} is a file, not a directory; use another --workdir.")
  created = not workdir.exists()
  try:
    workdir.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise InputError(
        f"the workdir {workdir} cannot be created ({e.strerror}); use a --workdir you can write."
    ) from e
  path = workdir / LOCK_FILE
  fd = _acquire(workdir, path)
  try:
    holder = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "since": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    with failed_writes_said(path):
      os.ftruncate(fd, 0)
      os.write(fd, json.dumps(holder).encode())
    yield
  finally:
    os.unlink(path)  # Before unlocking: a run that opens it next finds a new file.
    os.close(fd)
    if created and not any(workdir.iterdir()):
      workdir.rmdir()


def _acquire(workdir: epath.Path, path: epath.Path) -> int:
  """An fd of `path` holding its flock; refuses a lock held by another run."""
  while True:
    try:
      fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
      raise InputError(
          f"the workdir {workdir} is not writable ({e.strerror}); use a --workdir you can write."
      ) from e
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      os.close(fd)
      raise InputError(
          f"the workdir {workdir} is in use by another run ({_holder(path)}); wait for it to "
          "end or stop it, or use another --workdir."
      ) from None
    # The holder before us may have removed the file between our open and our flock: then we
    # hold a lock on a file no one else will find; start again on the file that is there now.
    if path.exists() and os.stat(path).st_ino == os.fstat(fd).st_ino:
      return fd
    os.close(fd)


def _holder(path: epath.Path) -> str:
  try:
    holder = json.loads(path.read_text())
    return f"host {holder['host']}, pid {holder['pid']}, since {holder['since']}"
  except (OSError, ValueError, KeyError, TypeError):
    return "it is starting"


def locked(run: Callable[..., Any]) -> Callable[..., Any]:
  """run(config, workdir, ...) holding the lock of `workdir` throughout."""

  @functools.wraps(run)
  def locked_run(config, workdir: str, *args, **kwargs):
    with workdir_lock(absolute(workdir)):
      return run(config, workdir, *args, **kwargs)

  return locked_run
