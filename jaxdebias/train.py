"""The training loop shared by every method.

Data lives on the device; each jit call runs the steps up to the next evaluation with
`lax.scan`, gathering its batches on device from the indices `data.sampler` draws for them.
After each call: check the loss is finite, evaluate, append a line to metrics.jsonl, and save a
checkpoint when one is due.
A rerun with the same workdir resumes from the latest checkpoint and ends exactly where an
uninterrupted run would.
"""

import functools
import itertools
import json
import logging as logging_std
import math
import os
import sys
import time
from typing import Any

from absl import logging
from etils import epath
import jax
import jax.numpy as jnp
from jax.sharding import Mesh
import ml_collections
import numpy as np
import tqdm

from jaxdebias import checkpoint, metrics, methods, models, sharding
from jaxdebias.config import base_config
from jaxdebias.data import Split, load_dataset, sampler
from jaxdebias.errors import InputError, NonFiniteLossError


class _QuietLibraryInfo(logging_std.Filter):
  """Drops INFO records of orbax and TFDS (dozens per checkpoint); keeps their warnings."""

  def filter(self, record: logging_std.LogRecord) -> bool:
    noisy = any(f"/{lib}/" in record.pathname for lib in ("orbax", "tensorflow_datasets"))
    return record.levelno >= logging_std.WARNING or not noisy


def quiet_library_logs() -> None:
  """Keeps jaxdebias' own INFO logs readable: call once at program start."""
  logging.get_absl_handler().addFilter(_QuietLibraryInfo())


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Raises InputError for values that make no sense, before anything is loaded or written."""
  for key in (
      "num_steps",
      "batch_size",
      "eval_every",
      "checkpoint_every",
      "eval_batch_size",
      "keep_checkpoints",
      "num_seeds",
  ):
    value = config[key]
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
      raise InputError(f"{key} must be a positive integer, got {value!r}; set --config.{key}.")
  if not isinstance(config.seed, int) or isinstance(config.seed, bool) or config.seed < 0:
    raise InputError(f"seed must be an integer >= 0, got {config.seed!r}; set --config.seed.")


def absolute(workdir: str) -> epath.Path:
  """Orbax needs absolute paths; URLs (gs://...) are left as they are."""
  return epath.Path(workdir if "://" in workdir else os.path.abspath(workdir))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains `config.method` on `config.data`, evaluating every `config.eval_every` steps.

  Writes workdir/config.json, metrics.jsonl (one JSON line per evaluation), results.json
  (final evaluation) and checkpoints/. Returns the content of results.json.
  """
  validate_config(config)
  methods.get(config.method)
  workdir = absolute(workdir)
  claim_workdir(workdir, config)
  results_path = workdir / "results.json"
  if results_path.exists():  # Finished earlier (same config): keep its results as they are.
    results = _read_json(results_path)
    _print_tables(results)
    return results
  mesh = sharding.make_mesh(config.mesh)
  if config.batch_size % mesh.shape[sharding.DATA]:
    raise InputError(
        f"batch_size {config.batch_size} is not divisible by the {mesh.shape[sharding.DATA]} "
        "data-parallel devices; change --config.batch_size or --config.mesh.data."
    )
  dataset = load_dataset(config.data)
  if config.batch_size > len(dataset.train.label):
    raise InputError(
        f"batch_size {config.batch_size} exceeds the {len(dataset.train.label)} "
        "training examples; lower --config.batch_size."
    )
  method = _method_for(config, dataset)

  members, state = init_members(config, method, mesh)
  num_members = len(members)
  ckpt = checkpoint.Checkpointer(workdir / "checkpoints", keep=config.keep_checkpoints)
  started = time.perf_counter()
  try:  # Also on errors and interruptions: finish writing the checkpoints already started.
    step = ckpt.latest_step() or 0
    if step:
      state = ckpt.restore(step, state)
      logging.info("Resuming from the checkpoint at step %d.", step)
    log = MetricsLog(workdir / "metrics.jsonl", keep_up_to_step=step)
    write_json(workdir / "config.json", config.to_dict())
    evaluate = Evaluator(
        method,
        dataset.test,
        dataset.num_classes,
        dataset.num_bias_classes,
        config.eval_batch_size,
        mesh,
        num_members,
    )
    finals = _train(config, members, method, dataset.train, mesh, state, step, evaluate, log, ckpt)
  finally:
    ckpt.wait_until_finished()
    ckpt.close()
  if finals is None:  # Finished, but results.json was lost: evaluate the final checkpoint.
    finals = [{**m, "step": step, "test": t} for m, t in zip(members, evaluate(state))]
  results = finals[0]
  if num_members > 1:
    results = {"step": results["step"], "members": finals}
  else:
    del results["hparams"]  # config.json has them.
  results.update(
      method=config.method,
      dataset=dataset.name,
      train_seconds_this_run=round(time.perf_counter() - started, 2),
      metric_definitions=metrics.DEFINITIONS,
  )
  write_json(results_path, results)
  _print_tables(results)
  return results


def classifier_fn(workdir: str, step: int | None = None, model: str = "classifier"):
  """The classifier of the finished one-member run in `workdir` as a pure JAX function:
  uint8 images (B, H, W, C) -> logits (B, num_classes), its parameters closed over (jit-able;
  a frozen model inside another method's step, e.g. the bias amplifier).

  step: a kept checkpoint (default: the last); model: which of the method's models (`predict`
  keys, e.g. "biased" for LfF's f_B).
  """
  workdir = absolute(workdir)
  if not (workdir / "results.json").exists():
    raise InputError(
        f"{workdir} holds no finished classifier run (no results.json); run its training first."
    )
  config = read_config(workdir)
  dataset = load_dataset(config.data)  # The label arrays size per-example states (LfF's EMA).
  method = _method_for(config, dataset)
  members = _members(config, method)
  if len(members) != 1:
    raise InputError(f"{workdir} trained several members; use a one-member run.")
  hparams = {k: np.float32(v) for k, v in members[0]["hparams"].items()}
  init = lambda rng: method.init(rng, hparams)
  ckpt = checkpoint.Checkpointer(workdir / "checkpoints", keep=config.keep_checkpoints)
  try:
    state = ckpt.restore(step or config.num_steps, jax.eval_shape(init, jax.random.key(0)))
  finally:
    ckpt.close()
  return lambda images: method.predict(state, images)[model]


def on_host(fn, batch_size: int = 1000):
  """jit(fn) as a host function on NumPy arrays, `batch_size` images at a time."""
  predict = jax.jit(fn)
  return lambda images: np.concatenate(
      [np.asarray(predict(images[i : i + batch_size])) for i in range(0, len(images), batch_size)]
  )


def load_classifier(workdir: str, batch_size: int = 1000, **kwargs):
  """`classifier_fn` (kwargs: step, model) on the host (`on_host`). Latent de-biasing labels
  generated images with it.
  """
  return on_host(classifier_fn(workdir, **kwargs), batch_size)


def _method_for(config: ml_collections.ConfigDict, dataset):
  """The configured method with its classifier network, sized for `dataset`."""
  model = models.create(config.model, dataset.num_classes)
  return methods.create(
      config,
      model,
      dataset.train.label,
      dataset.num_classes,
      dataset.train.images.shape[1:],
      dataset.num_synthetic,
      dataset.train.images,
  )


def read_config(workdir: epath.Path) -> ml_collections.ConfigDict:
  """The config.json of a run over today's defaults (fields added since keep their defaults)."""
  config = base_config()
  config.update(_read_json(workdir / "config.json"))
  return config


def init_members(config: ml_collections.ConfigDict, method, mesh: Mesh):
  """The members of a run (see `_members`) and their initial state.

  With several members, the state carries a leading member axis. A member's initial weights
  and batch order come from its seed alone: members that differ only in hyperparameters start
  from the same weights and see the same batches.
  """
  members = _members(config, method)
  init_rng = _stack([jax.random.key(m["seed"]) for m in members])
  hparams = _stack([{k: np.float32(v) for k, v in m["hparams"].items()} for m in members])
  init = _per_member(method.init, len(members))
  shardings = sharding.state_shardings(jax.eval_shape(init, init_rng, hparams), mesh, len(members))
  state = jax.jit(init, out_shardings=shardings)(init_rng, hparams)  # Born sharded.
  return members, state


def chunk_indices(
    members, start_step: int, num_steps: int, batch_size: int, num_examples: int
) -> np.ndarray:
  """Every member's batch indices ([member,] num_steps, batch_size) for a chunk of steps (host)."""
  indices = [
      sampler.batch_indices(m["seed"], start_step, num_steps, batch_size, num_examples)
      for m in members
  ]
  return indices[0] if len(indices) == 1 else np.stack(indices)


def chunk_runner(method, num_members: int, mesh: Mesh, state):
  """The jitted `_train_chunk` (state donated, kept in its sharding): what training runs.

  Takes (state, train data, global indices from `place_indices`); returns (state, metrics).
  """
  state_sharding = jax.tree.map(lambda x: x.sharding, state)
  return jax.jit(
      functools.partial(_train_chunk, method, num_members, mesh),
      out_shardings=(state_sharding, sharding.replicated(mesh)),
      donate_argnums=0,
  )


def place_indices(indices: np.ndarray, mesh: Mesh) -> jax.Array:
  """Host batch indices ([member,] steps, batch) as a global array split along the batch."""
  return sharding.global_array(indices, sharding.batch_axis(mesh, indices.ndim, -1))


def _per_member(fn, num_members: int, in_axes=0):
  """`fn` for one member, or vmapped over a leading member axis when several train together."""
  return fn if num_members == 1 else jax.vmap(fn, in_axes=in_axes)


def _stack(trees: list[Any]):
  """The one tree of a single member, or the trees stacked along a leading member axis."""
  return trees[0] if len(trees) == 1 else jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _members(config: ml_collections.ConfigDict, method) -> list[dict[str, Any]]:
  """What trains side by side: each seed (config.seed, config.seed + 1, ... config.num_seeds of
  them) with each combination of the method's swept hyperparameter values, seeds outermost.

  Returns [{'seed': int, 'hparams': {name: value}}, ...].
  """
  names, values = zip(*method.hparam_grid.items()) if method.hparam_grid else ((), ())
  return [
      {"seed": config.seed + k, "hparams": dict(zip(names, combination))}
      for k in range(config.num_seeds)
      for combination in itertools.product(*values)
  ]


def is_main_process() -> bool:
  """In a multi-process run, process 0 alone writes files and logs; all take part in the rest."""
  return jax.process_index() == 0


def _print_tables(results: dict[str, Any]) -> None:
  if not is_main_process():
    return
  for one in results.get("members", [results]):
    if "members" in results:
      swept = "".join(f", {k}={v:g}" for k, v in one["hparams"].items())
      print(f"seed {one['seed']}{swept}:")
    print(metrics.format_table(one["test"]))


def _train(config, members, method, split: Split, mesh, state, step, evaluate, log, ckpt):
  """Trains from `step` to config.num_steps; returns the last evaluation of each member.

  Returns None if no step was left to train.
  """
  train = {
      "image": sharding.shard_rows(split.images, mesh),
      "label": sharding.global_array(split.label, sharding.replicated(mesh)),
  }
  run_chunk = chunk_runner(method, len(members), mesh, state)
  finals = None
  bar = tqdm.tqdm(
      total=config.num_steps,
      initial=step,
      desc=config.method,
      unit="step",
      file=sys.stdout,
      dynamic_ncols=True,
      disable=None if is_main_process() else True,
  )
  with bar:
    while step < config.num_steps:
      num_steps = steps_to_next_evaluation(config, step)
      indices = chunk_indices(members, step, num_steps, config.batch_size, len(split.label))
      state, chunk_metrics = run_chunk(state, train, place_indices(indices, mesh))
      chunk_metrics = jax.device_get(chunk_metrics)
      check_finite(chunk_metrics["loss"], step, ckpt.directory)
      previous, step = step, step + num_steps
      train_means = {k: np.mean(v, axis=-1).reshape(-1) for k, v in chunk_metrics.items()}
      finals = [
          {
              **member,
              "step": step,
              "train": {k: float(v[i]) for k, v in train_means.items()},
              "test": test,
          }
          for i, (member, test) in enumerate(zip(members, evaluate(state)))
      ]
      for results in finals:
        log.write(_flatten(results))
      if checkpoint_due(config, previous, step):
        ckpt.save(step, state)
      unbiased = np.mean([r["test"]["classifier"]["unbiased_accuracy"] for r in finals])
      live = {"loss": f"{np.mean(train_means['loss']):.3g}", "unbiased": f"{100 * unbiased:.2f}%"}
      bar.update(num_steps)
      bar.set_postfix(live)
      if bar.disable and is_main_process():  # No terminal: one log line per evaluation.
        logging.info("step %d/%d: %s", step, config.num_steps, live)
  return finals


def steps_to_next_evaluation(config: ml_collections.ConfigDict, step: int) -> int:
  """Steps from `step` to the next multiple of eval_every (or to the end)."""
  return min(config.eval_every - step % config.eval_every, config.num_steps - step)


def checkpoint_due(config: ml_collections.ConfigDict, previous: int, step: int) -> bool:
  """A checkpoint at the first evaluation at or after each multiple of checkpoint_every, and at
  the end."""
  every = config.checkpoint_every
  return step // every > previous // every or step == config.num_steps


# Steps per loop iteration of the training scan. Unrolling lets XLA overlap the end of one step
# (the optimizer update of one model) with the start of the next; 5 divides the 235-step chunks
# and measured fastest on CPU (benchmarks/speed.py: LfF 3.4 ms/step against 3.7 with 1).
_SCAN_UNROLL = 5


def _train_chunk(
    method, num_members: int, mesh: Mesh, state, train: dict[str, jax.Array], indices: jax.Array
):
  """Runs one train step per row of `indices` ([member,] steps, batch) in one scan.

  Returns the state and per-step metrics. With several members, state and indices carry a
  leading member axis and the whole scan is vmapped: all members train in one compiled program.
  """

  def one_member(state, indices):
    def step_fn(state, index):
      images = sharding.gather_rows(train["image"], index, mesh)
      batch = {"image": images, "label": train["label"][index], "index": index}
      return method.train_step(state, batch)

    return jax.lax.scan(step_fn, state, indices, unroll=_SCAN_UNROLL)

  return _per_member(one_member, num_members)(state, indices)


class Evaluator:
  """Group metrics of every model a method predicts with, on one split held on device."""

  def __init__(
      self,
      method,
      split: Split,
      num_classes: int,
      num_bias_classes: int,
      batch_size: int,
      mesh: Mesh,
      num_members: int = 1,
  ):
    """Looks the split up in whole batches (each a multiple of the data-parallel device count);
    the padding is predicted and then dropped, so every example counts exactly once."""
    self.num_examples = len(split.label)
    batch_size = math.ceil(batch_size / mesh.shape[sharding.DATA]) * mesh.shape[sharding.DATA]
    padded = math.ceil(self.num_examples / batch_size) * batch_size
    self.images = sharding.shard_rows(split.images, mesh)
    # Row indices of each batch; the padding repeats the last example (its predictions dropped).
    batches = np.minimum(np.arange(padded), self.num_examples - 1).reshape(-1, batch_size)
    self.batches = place_indices(batches.astype(np.int32), mesh)
    self.label, self.bias_label = split.label, split.bias_label
    self.shape = (num_classes, num_bias_classes)
    predict = _per_member(method.predict, num_members, in_axes=(0, None))

    @functools.partial(jax.jit, out_shardings=sharding.replicated(mesh))
    def predict_all(state, images, batches):
      """Predicted classes (num_members, padded) of every model."""
      logits = jax.lax.map(
          lambda index: predict(state, sharding.gather_rows(images, index, mesh)), batches
      )  # ([member,] batch, ...) per batch
      classes = {
          k: jnp.argmax(v, -1).reshape(len(batches), num_members, -1) for k, v in logits.items()
      }
      return {k: v.swapaxes(0, 1).reshape(num_members, -1) for k, v in classes.items()}

    self.predict_all = predict_all

  def __call__(self, state) -> list[dict[str, dict[str, Any]]]:
    """For each member: model name -> `metrics.summarize` of its predictions."""
    predictions = jax.device_get(self.predict_all(state, self.images, self.batches))
    per_member = []
    for member_predictions in zip(*predictions.values()):
      summaries = {}
      for name, pred in zip(predictions, member_predictions):
        total, correct = metrics.group_counts(
            pred[: self.num_examples], self.label, self.bias_label, *self.shape
        )
        summaries[name] = metrics.summarize(np.asarray(total), np.asarray(correct))
      per_member.append(summaries)
    return per_member


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
      f.write(json.dumps(record) + "\n")


def claim_workdir(workdir: epath.Path, config: ml_collections.ConfigDict) -> None:
  """Refuses a workdir that holds a run of a different config (it would be overwritten).

  Only reads: the workdir is created once the data and method are known to be good.
  """
  saved_path = workdir / "config.json"
  if saved_path.exists():
    flat_json = lambda c: _flatten(json.loads(json.dumps(c.to_dict())))
    saved, current, defaults = (
        _flatten(_read_json(saved_path)),
        flat_json(config),
        flat_json(base_config()),
    )
    # A field added to jaxdebias after the run was written, left at its default, is no difference:
    # new fields default to the old behaviour. The mesh is where a run trains, not what it
    # computes: a run may resume on other devices.
    keys = sorted(
        k
        for k in saved.keys() | current.keys()
        if saved.get(k) != current.get(k)
        and not (k not in saved and k in defaults and current.get(k) == defaults[k])
        and not k.startswith("mesh/")
    )
    if keys:
      raise InputError(
          f"{workdir} holds a run with a different config (differs in {', '.join(keys[:5])}); "
          "use a new --workdir, or rerun with the same config to resume it."
      )


def check_finite(
    losses: np.ndarray,
    start_step: int,
    workdir: epath.Path,
    learning_rate_key: str = "optimizer.learning_rate",
) -> None:
  bad = np.flatnonzero(~np.isfinite(losses))
  if bad.size:
    raise NonFiniteLossError(
        f"The training loss became {losses[bad[0]]} at step {start_step + bad[0] + 1}; nothing "
        f"of that chunk was saved and the last good checkpoint in {workdir} is kept: lower "
        f"--config.{learning_rate_key} or check the data for NaN/Inf."
    )


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
  """{'a': {'b': 1}} -> {'a/b': 1}; lists become tuples so values are hashable."""
  flat = {}
  for key, value in tree.items():
    name = f"{prefix}{key}"
    if isinstance(value, dict):
      flat.update(_flatten(value, name + "/"))
    else:
      flat[name] = _hashable(value)
  return flat


def _hashable(value):
  return tuple(map(_hashable, value)) if isinstance(value, list) else value


def _read_json(path: epath.Path) -> Any:
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
