"""The files of a workdir and who writes them: JSON written atomically, metrics.jsonl, and the
results printed, all by process 0 alone in a multi-process run."""

import json
import logging as logging_std
from typing import Any

from absl import logging
from etils import epath
import jax

from jaxdebias import metrics
from jaxdebias.errors import InputError


def is_main_process() -> bool:
  """In a multi-process run, process 0 alone writes files and logs; all take part in the rest."""
  return jax.process_index() == 0


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
  tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
  tmp.replace(path)


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


def _hashable(value):
  return tuple(map(_hashable, value)) if isinstance(value, list) else value


class MetricsLog:
  """metrics.jsonl: one JSON object per evaluation; on resume, drops lines past the checkpoint."""

  def __init__(self, path: epath.Path, keep_up_to_step: int):
    self.path = path
    if not is_main_process():
      return
    lines = path.read_text().splitlines() if path.exists() else []
    kept = [line for line in lines if line and json.loads(line)["step"] <= keep_up_to_step]
    if len(kept) != len(lines):
      path.write_text("".join(line + "\n" for line in kept))

  def write(self, record: dict[str, Any]) -> None:
    if not is_main_process():
      return
    with self.path.open("a") as f:
      f.write(json.dumps(flatten(record)) + "\n")


def print_results(results: dict[str, Any]) -> None:
  """The test metrics of a classifier run's results.json as tables (process 0 only)."""
  if not is_main_process():
    return
  for one in results.get("members", [results]):
    if "members" in results:
      swept = "".join(f", {k}={v:g}" for k, v in one["hparams"].items())
      print(f"seed {one['seed']}{swept}:")
    print(metrics.format_table(one["test"]))


class _QuietLibraryInfo(logging_std.Filter):
  """Drops INFO records of orbax and TFDS (dozens per checkpoint); keeps their warnings."""

  def filter(self, record: logging_std.LogRecord) -> bool:
    noisy = any(f"/{lib}/" in record.pathname for lib in ("orbax", "tensorflow_datasets"))
    return record.levelno >= logging_std.WARNING or not noisy


def quiet_library_logs() -> None:
  """Keeps jaxdebias' own INFO logs readable: call once at program start."""
  logging.get_absl_handler().addFilter(_QuietLibraryInfo())
