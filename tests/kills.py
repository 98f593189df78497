"""SIGKILLs (or other signals) a command at a chosen kind of moment, from inside: code that
`tests/cli.py` runs in the command's process before the command starts. No handler runs on a
SIGKILL: what is on disk at that instant is what the next run finds."""

import contextlib
import os
import pathlib
import signal
import threading
import time

from etils import epath

from jaxdebias.runs import files


def _die(signum: int = signal.SIGKILL) -> None:
  os.kill(os.getpid(), signum)


def after(seconds: float, signum: int = signal.SIGKILL) -> None:
  """`seconds` from now, whatever the command is doing then."""
  threading.Timer(seconds, _die, (signum,)).start()


def during_training(lines: int, seconds: float, signum: int = signal.SIGKILL) -> None:
  """`seconds` after the `lines`-th metrics.jsonl line this command writes (any signal)."""
  write, count = files.MetricsLog.write, [0]

  def write_and_count(self, record):
    write(self, record)
    count[0] += 1
    if count[0] == lines:
      after(seconds, signum)

  files.MetricsLog.write = write_and_count


def temporary_checkpoints(checkpoints: str) -> set[tuple[str, int, int]]:
  """Orbax's temporary directories in `checkpoints` (name, inode, mtime): saves under way, or
  left by a kill. A save renames its own to the step's name when it is complete."""
  directory = pathlib.Path(checkpoints)
  found = set()
  for path in directory.iterdir() if directory.is_dir() else ():
    if "tmp" in path.name:
      with contextlib.suppress(FileNotFoundError):
        found.add((path.name, path.stat().st_ino, path.stat().st_mtime_ns))
  return found


def inside_checkpoint_write(checkpoints: str) -> None:
  """While a checkpoint is being written: as soon as a save of this command has made its
  temporary directory in `checkpoints`."""
  left = temporary_checkpoints(checkpoints)

  def watch():
    while not temporary_checkpoints(checkpoints) - left:
      time.sleep(0.0005)
    _die()

  threading.Thread(target=watch, daemon=True).start()


def inside_log_line(nth: int) -> None:
  """In the middle of the `nth` metrics.jsonl line this command writes: half of it is on disk."""
  write, count = files.MetricsLog.write, [0]

  def torn_write(self, record):
    count[0] += 1
    if count[0] < nth:
      return write(self, record)
    line = files.json.dumps(files.flatten(record)) + "\n"
    with self.path.open("a") as f:
      f.write(line[: len(line) // 2])
    _die()

  files.MetricsLog.write = torn_write


def inside_log_rewrite() -> None:
  """When metrics.jsonl is rewritten on resume (dropping the lines past the checkpoint): after
  the new text is in its temporary file, before the rename."""
  path_class = type(epath.Path("/"))
  replace = path_class.replace

  def replace_or_die(self, target):
    if pathlib.Path(str(target)).name == "metrics.jsonl":
      _die()
    return replace(self, target)

  path_class.replace = replace_or_die
