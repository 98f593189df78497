"""A recipe: a graph of runs (stages), each a workdir under the recipe's workdir.

A stage that finished (its results.json exists) is reused; one that was interrupted resumes
exactly, as single runs do (the trainers do both). `Recipe.stage` prints a line when a stage
starts and when it ends, with its wall time; `Recipe.finish` writes the recipe's results.json
with every stage's time and the whole's, both this invocation's and, in `stage_seconds`, each
stage's summed over the invocations that trained it (kept in `STAGE_SECONDS` as each stage
ends or is stopped by Ctrl-C or SIGTERM, so an interrupted recipe's total still counts the time
earlier invocations spent; a process killed outright, with no chance to book its stage, is not
counted; stages copied from another recipe are in `stage_seconds_copied`, at their time there,
and `stage_seconds_from_nothing` adds them). The recipe's own config.json claims its workdir
like a single run's: another config there is refused.

With `reuse_from` (main's --reuse_stages_from), a stage that trains is copied from that other
recipe workdir instead when it finished there with the same config, its paths into stages copied
the same way counting as the same (also where that workdir was moved since it ran: `mv W W.old`,
then W reusing W.old): the same recipe with more seeds, another candidate grid or another
selection rule reuses its generators, which are most of its time. A copied stage says where
from in `COPIED_FROM`; the copy is renamed into place whole, so a kill never leaves half of one.
"""

from collections.abc import Callable
import os
import shutil
import sys
import time
from typing import Any

from etils import epath
import jax
from jax.experimental import multihost_utils
import ml_collections

from jaxdebias import runs
from jaxdebias.config import base_config
from jaxdebias.errors import InputError, Interrupted

COPIED_FROM = "copied_from.json"  # In a stage copied from another recipe: where from.
STAGE_SECONDS = "stage_seconds.json"  # In a recipe workdir: each stage's time over invocations.


def stage_config(config: ml_collections.ConfigDict, **changes) -> ml_collections.ConfigDict:
  """A classifier run's config (base_config's fields) from a recipe config: everything but its
  `recipe` section and its trainer, then `changes` (dotted names for nested fields:
  `**{"data.valid_fraction": 0.1}`)."""
  stage = base_config()
  stage.update({k: v for k, v in config.to_dict().items() if k not in ("recipe", "trainer")})
  for name, value in changes.items():
    *parents, field = name.split(".")
    section = stage
    for parent in parents:
      section = section[parent]
    section[field] = value
  return stage


class Recipe:
  """The stages of one recipe run in `workdir` (see the module doc)."""

  def __init__(
      self,
      config: ml_collections.ConfigDict,
      workdir: str,
      defaults: ml_collections.ConfigDict,
      reuse_from: str | None = None,
  ):
    self.config = config
    self.workdir = runs.absolute(workdir)
    runs.claim_workdir(self.workdir, config, defaults)
    self.reuse_from = _reusable(runs.absolute(reuse_from)) if reuse_from else None
    if self.reuse_from == self.workdir:
      raise InputError(
          f"--reuse_stages_from names the recipe's own workdir {self.workdir}; name another"
          " recipe workdir, or leave the flag out."
      )
    self.copied: list[str] = []  # The stages copied from reuse_from.
    self.results_path = self.workdir / "results.json"
    self.finished = runs.read_json(self.results_path) if self.results_path.exists() else None
    self.seconds: dict[str, float] = {}  # This invocation's.
    self.stage_seconds_path = self.workdir / STAGE_SECONDS
    self.stage_seconds: dict[str, float] = (  # Every invocation's (module doc).
        runs.read_json(self.stage_seconds_path) if self.stage_seconds_path.exists() else {}
    )
    self.started = time.perf_counter()
    if self.finished is None:
      self.workdir.mkdir(parents=True, exist_ok=True)
      runs.write_json(self.workdir / "config.json", config.to_dict())

  def directory(self, name: str) -> epath.Path:
    return self.workdir / name

  def stage(self, name: str, run: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """run(stage workdir) -> its results, unless the stage finished earlier (then `run` only
    reads them back: the trainers return a finished run's results as they are)."""
    directory = self.directory(name)
    reused = (directory / "results.json").exists()
    say(f"stage {name}: {'reusing the finished run' if reused else 'running'} in {directory}")
    start = time.perf_counter()
    try:
      results = run(str(directory))
    except Interrupted:  # Saved where it stopped; the next invocation resumes it from there.
      if not reused:
        self._book(name, time.perf_counter() - start)
      raise
    self.seconds[name] = round(time.perf_counter() - start, 2)
    if not reused:
      self._book(name, self.seconds[name])
    say(f"stage {name}: {'reused' if reused else 'done'} in {self.seconds[name]:.0f} s")
    return results

  def _book(self, name: str, seconds: float) -> None:
    """Adds an attempt's seconds to the stage's time over invocations (`STAGE_SECONDS`)."""
    self.stage_seconds[name] = round(self.stage_seconds.get(name, 0.0) + seconds, 2)
    runs.write_json(self.stage_seconds_path, self.stage_seconds)

  def train(
      self,
      name: str,
      trainer: Callable[[ml_collections.ConfigDict, str], dict[str, Any]],
      config: ml_collections.ConfigDict,
  ) -> dict[str, Any]:
    """A stage that trains: trainer(config, stage workdir) -> its results, or the finished run
    of the same config copied from `reuse_from` (module doc)."""
    self._copy_if_same(name, config)
    return self.stage(name, lambda directory: trainer(config, directory))

  def _copy_if_same(self, name: str, config: ml_collections.ConfigDict) -> None:
    if self.reuse_from is None:
      return
    target, source = self.directory(name), self.reuse_from / name
    copied_from = target / COPIED_FROM
    if copied_from.exists():  # By an earlier, interrupted run of this recipe.
      if runs.read_json(copied_from)["source"] == str(source):
        self.copied.append(name)
      return
    # One decision for all processes: they read the files at different moments.
    if not runs.process_zero_decides(self._same_finished_stage(name, config)):
      return
    if runs.is_main_process():  # Copied whole or not at all: a kill leaves only the partial.
      target.parent.mkdir(parents=True, exist_ok=True)
      partial = target.parent / f".{target.name}.copying"
      if partial.exists():
        shutil.rmtree(partial)
      shutil.copytree(source, partial)
      runs.write_json(partial / "config.json", config.to_dict())  # This recipe's paths.
      runs.write_json(partial / COPIED_FROM, {"source": str(source)})
      os.replace(partial, target)
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices(f"copied stage {name}")
    self.copied.append(name)
    say(f"stage {name}: copied from {source}, a finished run of the same config")

  def _same_finished_stage(self, name: str, config: ml_collections.ConfigDict) -> bool:
    """Whether reuse_from's stage `name` finished with `config`, paths into this recipe's
    copied stages read as the same paths there; never where this stage has begun."""
    source = self.reuse_from / name
    if self.directory(name).exists() or not all(
        (source / f).exists() for f in ("results.json", "config.json")
    ):
      return False
    # Where the source's config names a copied stage: the source may have moved since.
    recorded = _stage_paths(runs.read_json(source / "config.json"), self.copied)
    moved = {
        str(self.directory(n)): recorded.get(n, str(self.reuse_from / n)) for n in self.copied
    }
    as_in_source = ml_collections.ConfigDict(_relocated(config.to_dict(), moved))
    try:
      return not runs.config_differences(source, as_in_source)
    except InputError:  # It has fields this version does not know: not comparable.
      return False

  def computed(self, name: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """A stage that computes rather than trains: compute() once, kept as its results.json."""

    def run(directory: str) -> dict[str, Any]:
      path = epath.Path(directory) / "results.json"
      if path.exists():
        return runs.read_json(path)
      results = compute()
      path.parent.mkdir(parents=True, exist_ok=True)
      runs.write_json(path, results)
      return results

    return self.stage(name, run)

  def finish(self, results: dict[str, Any]) -> dict[str, Any]:
    """Writes results.json: `results`, every stage's wall time this run and over every run
    (module doc), and the totals."""
    stage_seconds = {name: self.stage_seconds.get(name, 0.0) for name in self.seconds}
    total = round(sum(stage_seconds.values()), 2)
    copied = {
        name: _copied_seconds(self.directory(name), name)
        for name in self.seconds
        if (self.directory(name) / COPIED_FROM).exists()
    }
    from_nothing = None  # Unknown where a copied stage's time was never booked.
    if None not in copied.values():
      from_nothing = round(total + sum(copied.values()), 2)
    results = {
        **results,
        "recipe": self.config.trainer,
        "stage_seconds": stage_seconds,
        "stage_seconds_total": total,
        "stage_seconds_copied": copied,
        "stage_seconds_from_nothing": from_nothing,
        "stage_seconds_this_run": self.seconds,
        "total_seconds_this_run": round(time.perf_counter() - self.started, 2),
    }
    runs.write_json(self.results_path, results)
    over_invocations = ""
    if stage_seconds != self.seconds:
      over_invocations = f" (its stages over every invocation: {total:.0f} s)"
    if copied and from_nothing is not None:
      over_invocations += f" (and the copied stages' time there: {from_nothing:.0f} s)"
    say(f"recipe {self.config.trainer}: done in {results['total_seconds_this_run']:.0f} s"
        + over_invocations)
    return results


def _copied_seconds(directory: epath.Path, name: str) -> float | None:
  """The time that stage `name`, copied into `directory`, took in the recipe that trained it
  (through copies of copies), or None where that recipe did not book it."""
  source = epath.Path(runs.read_json(directory / COPIED_FROM)["source"])
  booked = source.parents[len(epath.Path(name).parts) - 1] / STAGE_SECONDS
  if booked.exists() and name in (seconds := runs.read_json(booked)):
    return seconds[name]
  if (source / COPIED_FROM).exists():
    return _copied_seconds(source, name)
  return None


def _reusable(directory: epath.Path) -> epath.Path:
  """`directory` if it holds a recipe run (its config.json has a `recipe` section)."""
  config = directory / "config.json"
  if "://" in str(directory) or not config.exists() or "recipe" not in runs.read_json(config):
    raise InputError(
        f"--reuse_stages_from={directory} is not the workdir of a recipe run on a local disk;"
        " name one (stages are copied with local file operations), or leave the flag out."
    )
  return directory


def _stage_paths(value: Any, stages: list[str]) -> dict[str, str]:
  """Each of `stages` (names in a recipe) -> the path that `value` (a config dict's) names it
  by, where it names one: the recipe's workdir when the config was written."""
  found = {}
  if isinstance(value, dict):
    value = list(value.values())
  if isinstance(value, (list, tuple)):
    for item in value:
      found.update(_stage_paths(item, stages))
  elif isinstance(value, str):
    for name in stages:
      if value.endswith(f"/{name}"):
        found[name] = value
      elif f"/{name}/" in value:
        found[name] = value[: value.index(f"/{name}/") + len(name) + 1]
  return found


def _relocated(value: Any, moved: dict[str, str]) -> Any:
  """`value` (a config dict's) with every string path under a key of `moved` moved under its
  value."""
  if isinstance(value, dict):
    return {k: _relocated(v, moved) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return type(value)(_relocated(v, moved) for v in value)
  if isinstance(value, str):
    for old, new in moved.items():
      if value == old or value.startswith(old + "/"):
        return new + value[len(old) :]
  return value


def say(line: str) -> None:
  """A progress line on stdout (process 0)."""
  if runs.is_main_process():
    print(f"[recipe] {line}", file=sys.stdout, flush=True)
