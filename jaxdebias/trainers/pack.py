"""Packs of runs: several classifier runs of a sweep trained side by side as the members of one
compiled program (one process, one compilation, the device filled by one vmapped step), each
run writing its own workdir as it would alone (`launch.run --pack`).

Runs pack together when
- their configs are equal but in PACKED_FIELDS (the data, seed, num_seeds): e.g. the four
  Colored MNIST ratios x seeds of one method; knob values pack inside one run already, as
  tuples (members);
- their method is `packable` (it reads the training split only through its batches and state;
  each run's members start from its own `init`), and their datasets have the same shapes;
- they stand at the same checkpoint step, and their images stay on the devices: the distinct
  training splits of a pack fit `device_images_budget_gib` together (`streaming`);
- at most `max_runs` of them (`default_max_runs`: on CPU 3, elsewhere no limit).
`plan` groups runs by these rules; a run that packs with no other trains alone. Each pack
trains through the classifier trainer (`classifier.train_runs`); its runs' results.json say
`packed_with`, and their times are the whole pack's.
"""

from collections.abc import Callable
import contextlib
import dataclasses
import json
import time
from typing import Any

from absl import logging
import jax
import ml_collections

from jaxdebias import data, methods, runs, sharding
from jaxdebias.errors import InputError, UserFacingError
from jaxdebias.trainers import classifier, loop, streaming

PACKED_FIELDS = ("data", "seed", "num_seeds")


@dataclasses.dataclass
class Pack:
  """Runs that train as one program, each with its dataset."""

  parts: list[loop.Part]
  datasets: list[data.BiasedDataset]
  data_read: float  # Seconds spent reading the datasets.


def default_max_runs() -> int | None:
  """The most runs in a pack by default. On CPU, 3: XLA runs vmapped members there no faster
  than one by one (benchmarks/speed.py's x1 and x3 rows), and somewhat slower with many, so a
  pack saves the per-run start-up and compilation, which a few runs already share; on
  accelerators, as many as fit (members fill the device)."""
  return 3 if jax.default_backend() == "cpu" else None


def train_packed(
    configs: list[ml_collections.ConfigDict],
    workdirs: list[str],
    on_error: Callable[[list[str], UserFacingError], None] | None = None,
    max_runs: int | None = None,
) -> list[dict[str, Any] | None]:
  """Trains the classifier runs `configs` into `workdirs`, packed (module doc) with at most
  `max_runs` runs per pack (None: `default_max_runs()`); returns each run's results.json (a
  finished run's as it was), in order.

  on_error: given, a run refused before training (its config, its workdir) or a pack that
  fails with an error for the user is reported to it (the workdirs of its runs, whose results
  are None) and the other runs go on; else the error stops everything.
  """
  if len(configs) != len(workdirs):
    raise ValueError(f"{len(configs)} configs for {len(workdirs)} workdirs.")
  results: dict[str, Any] = {}

  def failed(names: list[str], error: UserFacingError) -> None:
    if on_error is None:
      raise error
    on_error(names, error)
    results.update(dict.fromkeys(names))

  with contextlib.ExitStack() as locks:
    todo = []
    for config, workdir in zip(configs, workdirs):
      try:
        if config.trainer != "classifier":
          raise InputError(
              f"{workdir} is a {config.trainer} run: only classifier runs pack; train it alone."
          )
        methods.get(config.method)
        streaming.check(config)
        locks.enter_context(runs.workdir_lock(runs.absolute(workdir)))
        workdir, finished = loop.start(config, workdir)
      except UserFacingError as e:
        failed([str(runs.absolute(workdir))], e)
        continue
      if finished is not None:
        runs.print_results(finished)
        results[str(workdir)] = finished
      else:
        todo.append(loop.Part(config, workdir))
    for pack in plan(todo, max_runs or default_max_runs()):
      names = [str(p.workdir) for p in pack.parts]
      logging.info("Training %d run(s) as one program: %s", len(names), ", ".join(names))
      try:
        results.update(zip(names, classifier.train_runs(pack.parts, pack.datasets, pack.data_read)))
      except UserFacingError as e:
        failed(names, e)
  return [results[str(runs.absolute(w))] for w in workdirs]


def plan(parts: list[loop.Part], max_runs: int | None = None) -> list[Pack]:
  """The packs of started, unfinished runs (module doc; at most `max_runs` runs each, None: no
  limit), their datasets read, in the order of their first runs in `parts`."""
  groups: dict[tuple, list[loop.Part]] = {}
  for part in parts:
    groups.setdefault(_group_key(part), []).append(part)
  packs = []
  for group in groups.values():
    started = time.perf_counter()
    read: dict[str, data.BiasedDataset] = {}  # Each distinct data config read once.
    for part in group:
      if _json(part.config.data) not in read:
        read[_json(part.config.data)] = runs.load_dataset(part.config.data)
    dataset_of = lambda part: read[_json(part.config.data)]
    seconds = (time.perf_counter() - started) / len(group)
    by_shape: dict[tuple, list[loop.Part]] = {}
    for part in group:
      by_shape.setdefault(_shapes(dataset_of(part)), []).append(part)
    for same in by_shape.values():
      for members in _fitting(same, dataset_of, max_runs):
        datasets = [dataset_of(p) for p in members]
        packs.append(Pack(members, datasets, seconds * len(members)))
  position = {id(part): k for k, part in enumerate(parts)}
  return sorted(packs, key=lambda one: position[id(one.parts[0])])  # In the order given.


def _json(config: ml_collections.ConfigDict | dict) -> str:
  fields = config if isinstance(config, dict) else config.to_dict()
  return json.dumps(fields, sort_keys=True, default=str)


def _group_key(part: loop.Part) -> tuple:
  """Runs with equal keys may pack: the config but PACKED_FIELDS, the step, whether packable."""
  config = part.config.to_dict()
  for field in PACKED_FIELDS:
    config.pop(field)
  step, checkpoints = 0, part.workdir / "checkpoints"
  if checkpoints.exists():  # Read with the run's own settings, and let go.
    ckpt = runs.Checkpointer(checkpoints, keep=part.config.keep_checkpoints)
    step = ckpt.latest_step() or 0
    ckpt.close()
  packable = methods.get(part.config.method).packable and part.config.train_images != "stream"
  alone = None if packable else str(part.workdir)
  return _json(config), step, alone


def _shapes(dataset: data.BiasedDataset) -> tuple:
  return (
      dataset.train.images.shape,
      dataset.num_classes,
      dataset.num_bias_classes,
      dataset.num_synthetic,
  )


def _fitting(parts: list[loop.Part], dataset_of, max_runs: int | None) -> list[list[loop.Part]]:
  """`parts` in order, cut into packs of at most `max_runs` whose distinct training images fit
  the device budget."""
  packs, current, held = [], [], {}
  for part in parts:
    dataset = dataset_of(part)
    devices = sharding.make_mesh(part.config.mesh).shape[sharding.DATA]
    more = {**held, id(dataset): dataset.train.images.nbytes / devices}
    full = max_runs is not None and len(current) == max_runs
    if current and (full or sum(more.values()) > streaming.budget_bytes(part.config)):
      packs.append(current)
      current, more = [], {id(dataset): more[id(dataset)]}
    current.append(part)
    held = more
  return packs + [current] if current else packs
