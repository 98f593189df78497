"""The classifier trainer: a method from the registry on a dataset from the registry.

Writes workdir/config.json, metrics.jsonl (one JSON line per evaluation), results.json (final
evaluation) and checkpoints/ through the shared loop (`loop.py`); the members train side by side
(`members.py`) and are evaluated on the test split (`evaluator.py`).
"""

import time
from typing import Any

import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxdebias import methods, metrics, runs, sharding
from jaxdebias.errors import InputError
from jaxdebias.trainers import loop, members, streaming
from jaxdebias.trainers.evaluator import Evaluator


@runs.locked
def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains `config.method` on `config.data`, evaluating every `config.eval_every` steps;
  returns the content of results.json (a finished run's as it is)."""
  methods.get(config.method)
  workdir, finished = loop.start(config, workdir)
  if finished is not None:  # Finished earlier (same config): keep its results as they are.
    runs.print_results(finished)
    return finished
  mesh = sharding.make_mesh(config.mesh)
  streaming.check(config)
  if config.batch_size % mesh.shape[sharding.DATA]:
    raise InputError(
        f"batch_size {config.batch_size} is not divisible by the {mesh.shape[sharding.DATA]} "
        "data-parallel devices; change --config.batch_size or --config.mesh.data."
    )
  dataset, data_read = loop.read_dataset(config.data)
  split = dataset.train
  if config.batch_size > len(split.label):
    raise InputError(
        f"batch_size {config.batch_size} exceeds the {len(split.label)} "
        "training examples; lower --config.batch_size."
    )
  method = runs.method_for(config, dataset)
  started = time.perf_counter()
  members_list, state = members.init_members(config, method, mesh)
  num_members = len(members_list)
  evaluate_test = Evaluator(
      method,
      dataset.test,
      dataset.num_classes,
      dataset.num_bias_classes,
      config.eval_batch_size,
      mesh,
      num_members,
  )
  train = {"label": sharding.global_array(split.label, sharding.replicated(mesh))}
  streamed = streaming.streams(config, split.images, mesh)

  def chunk_indices(step: int, num_steps: int):
    return members.chunk_indices(
        members_list, step, num_steps, config.batch_size, len(split.label), method.sampling_weights
    )

  if streamed:
    host = streaming.HostBatches(config, split.images, mesh, chunk_indices, num_members)
  else:
    train["image"] = sharding.shard_rows(split.images, mesh)
  run = members.chunk_runner(method, num_members, mesh, state, config.num_steps)

  def run_chunk(state, step: int, num_steps: int):
    if streamed:
      pieces = []
      for indices, images in host.pieces(step, num_steps):
        state, piece_metrics = run(state, train, indices, images)
        pieces.append(piece_metrics)
      return state, {k: jnp.concatenate([p[k] for p in pieces], -1) for k in pieces[0]}
    return run(state, train, members.place_indices(chunk_indices(step, num_steps), mesh))

  def evaluate(state, step: int):
    tests = evaluate_test(state)

    def records(train_means: dict[str, np.ndarray]):
      return [
          {
              **member,
              "step": step,
              "train": {k: float(v[i]) for k, v in train_means.items()},
              "test": test,
          }
          for i, (member, test) in enumerate(zip(members_list, tests()))
      ]

    return records

  def progress(records) -> dict[str, str]:
    unbiased = np.mean([r["test"]["classifier"]["unbiased_accuracy"] for r in records])
    loss = np.mean([r["train"]["loss"] for r in records])
    return {"loss": f"{loss:.3g}", "unbiased": f"{100 * unbiased:.2f}%"}

  finals, seconds = loop.train(
      config,
      workdir,
      state,
      run_chunk,
      evaluate,
      name=config.method,
      progress=progress,
      learning_rate_key="optimizer.learning_rate",
      data_read_seconds=data_read,
  )
  results = finals[0]
  if num_members > 1:
    results = {"step": results["step"], "members": finals}
  else:
    del results["hparams"]  # config.json has them.
  results.update(
      method=config.method,
      uses_training_bias_labels=config.method in methods.USES_BIAS_LABELS,
      dataset=dataset.name,
      # What sizes the method's state, so that loading the run needs no data (runs.load).
      train_set={
          "num_examples": len(split.label),
          "num_classes": dataset.num_classes,
          "image_shape": list(split.images.shape[1:]),
          "num_synthetic": dataset.num_synthetic,
      },
      train_images="streamed" if streamed else "device",
      train_seconds_this_run=round(time.perf_counter() - started, 2),
      seconds_this_run=seconds,  # loop.SECONDS says what each is.
      metric_definitions=metrics.DEFINITIONS,
  )
  runs.write_json(workdir / "results.json", results)
  runs.print_results(results)
  return results
