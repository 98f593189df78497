"""The files of a workdir and who writes them: JSON written atomically, metrics.jsonl, and the
results printed, all by process 0 alone in a multi-process run."""

import contextlib
import json
from typing import Any

from absl import logging
from etils import epath
import jax
from jax.experimental import multihost_utils
import numpy as np

from jaxdebias import metrics
from jaxdebias.errors import InputError, WriteError


def is_main_process() -> bool:
  """In a multi-process run, process 0 alone writes files and logs; all take part in the rest."""
  return jax.process_index() == 0


def process_zero_decides(decision: bool) -> bool:
  """Process 0's `decision`, on every process (a collective in a multi-process run): one choice
  where the processes' own may differ (their hosts, the moment they read a file)."""
  if jax.process_count() == 1:
    return decision
  return bool(multihost_utils.broadcast_one_to_all(np.int32(decision)))


def read_json(path: epath.Path) -> Any:
  try:
    return json.loads(path.read_text())
  except json.JSONDecodeError as e:
    raise InputError(
        f"{path} is not valid JSON ({e}); fix or remove it, or use a new --workdir."
    ) from e


def write_json(path: epath.Path, obj: Any) -> None:
  """Writes atomically (temp file + rename), so an interrupted write never leaves half a file."""
  if not is_main_process():
    return
  tmp = path.parent / (path.name + ".tmp")
  with failed_writes_said(path):
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


@contextlib.contextmanager
def failed_writes_said(path: epath.Path):
  """Inside, an OSError (disk full, permission, not a directory) is a WriteError naming `path`."""
  try:
    yield
  except OSError as e:
    raise WriteError(
        f"writing {path} failed ({e.strerror or e}); free space or fix the permissions, then "
        "rerun the same command: it resumes from the last complete checkpoint."
    ) from e


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
  """{'a': {'b': 1}} -> {'a/b': 1}; lists become tuples so values are hashable."""
  flat = {}
  for key, value in tree.items():
    name = f"{prefix}{key}"
    if isinstance(value, dict):
      flat.update(flatten(value, name + "/"))
    else:
      flat[name] = _hashable(value)
  return flat


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
  """{'a/b': 1} -> {'a': {'b': 1}}: the inverse of `flatten` (but for lists, made tuples)."""
  tree: dict[str, Any] = {}
  for name, value in flat.items():
    *parents, key = name.split("/")
    section = tree
    for parent in parents:
      section = section.setdefault(parent, {})
    section[key] = value
  return tree


def _hashable(value):
  return tuple(map(_hashable, value)) if isinstance(value, list) else value


class MetricsLog:
  """metrics.jsonl: one JSON object per evaluation (each member's), appended as it comes.

  Read back on resume: a torn last line (a kill in the middle of its write) is dropped with a
  warning, any other damage is refused in one sentence; `keep_up_to` then drops the lines past
  the checkpoint, rewriting the log through a temp file and a rename (a kill never loses a kept
  line).
  """

  def __init__(self, path: epath.Path):
    self.path = path
    self.lines: list[str] = []  # The good lines, and parsed (read by every process):
    self.records: list[dict[str, Any]] = []
    if path.is_dir():
      raise InputError(f"{path} is a directory, not the metrics log; move it away to resume.")
    self.text = path.read_text() if path.exists() else ""
    lines = self.text.splitlines()
    for number, line in enumerate(lines, 1):
      if not line.strip():
        continue
      try:
        record = json.loads(line)
        problem = None if isinstance(record.get("step"), int) else "no integer step"
      except (ValueError, AttributeError) as e:
        problem = str(e)
      if problem and number == len(lines) and not self.text.endswith("\n"):
        logging.warning("Dropped the torn last line of %s (a kill in mid-write).", path)
        break
      if problem:
        raise InputError(
            f"line {number} of {path} is damaged ({problem}); repair or remove that line to "
            "resume, or use a new --workdir."
        )
      self.lines.append(line)
      self.records.append(record)

  def keep_up_to(self, step: int) -> None:
    """Drops the records past `step` (and a torn line) from the file."""
    kept = [(l, r) for l, r in zip(self.lines, self.records) if r["step"] <= step]
    self.lines, self.records = [l for l, _ in kept], [r for _, r in kept]
    text = "".join(line + "\n" for line in self.lines)
    if text != self.text and is_main_process():
      tmp = self.path.parent / (self.path.name + ".tmp")
      with failed_writes_said(self.path):
        tmp.write_text(text)
        tmp.replace(self.path)
    self.text = text

  def write(self, record: dict[str, Any]) -> None:
    if not is_main_process():
      return
    with failed_writes_said(self.path), self.path.open("a") as f:
      f.write(json.dumps(flatten(record)) + "\n")

  def records_at(self, step: int) -> list[dict[str, Any]]:
    """The kept records of evaluation `step`, nested again (as the evaluation returned them)."""
    return [unflatten(r) for r in self.records if r["step"] == step]


def print_results(results: dict[str, Any]) -> None:
  """The test metrics of a classifier run's results.json as tables (process 0 only)."""
  if not is_main_process():
    return
  for one in results.get("members", [results]):
    if "members" in results:
      swept = "".join(f", {k}={v:g}" for k, v in one["hparams"].items())
      print(f"seed {one['seed']}{swept}:")
    print(metrics.format_table(one["test"]))
