"""A recipe: a graph of runs (stages), each a workdir under the recipe's workdir.

A stage that finished (its results.json exists) is reused; one that was interrupted resumes
exactly, as single runs do (the trainers do both). `Recipe.stage` prints a line when a stage
starts and when it ends, with its wall time; `Recipe.finish` writes the recipe's results.json
with every stage's time and the whole's. The recipe's own config.json claims its workdir like
a single run's: another config there is refused.
"""

from collections.abc import Callable
import sys
import time
from typing import Any

from etils import epath
import ml_collections

from jaxdebias import runs
from jaxdebias.config import base_config


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
  ):
    self.config = config
    self.workdir = runs.absolute(workdir)
    runs.claim_workdir(self.workdir, config, defaults)
    self.results_path = self.workdir / "results.json"
    self.finished = runs.read_json(self.results_path) if self.results_path.exists() else None
    self.seconds: dict[str, float] = {}
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
    results = run(str(directory))
    self.seconds[name] = round(time.perf_counter() - start, 2)
    say(f"stage {name}: {'reused' if reused else 'done'} in {self.seconds[name]:.0f} s")
    return results

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
    """Writes results.json: `results`, every stage's wall time this run, and the total."""
    results = {
        **results,
        "recipe": self.config.trainer,
        "stage_seconds_this_run": self.seconds,
        "total_seconds_this_run": round(time.perf_counter() - self.started, 2),
    }
    runs.write_json(self.results_path, results)
    say(f"recipe {self.config.trainer}: done in {results['total_seconds_this_run']:.0f} s")
    return results


def say(line: str) -> None:
  """A progress line on stdout (process 0)."""
  if runs.is_main_process():
    print(f"[recipe] {line}", file=sys.stdout, flush=True)
