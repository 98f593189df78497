"""The classifier trainer: a method from the registry on a dataset from the registry.

Writes workdir/config.json, metrics.jsonl (one JSON line per evaluation), results.json (final
evaluation) and checkpoints/ through the shared loop (`loop.py`); the members train side by side
(`members.py`) and are evaluated on the test split (`evaluator.py`). A pack of runs (`pack.py`)
trains through the same code, its runs' members side by side, each run writing its own workdir.
"""

import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxdebias import data, methods, metrics, runs, sharding
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
  streaming.check(config)
  dataset, data_read = loop.read_dataset(config.data)
  return train_runs([loop.Part(config, workdir)], [dataset], data_read)[0]


def train_runs(
    parts: list[loop.Part], datasets: list[data.BiasedDataset], data_read: float
) -> list[dict[str, Any]]:
  """Trains the started, unfinished runs `parts` (one, or a pack: `pack.py`), each on its
  dataset, side by side; writes and returns each one's results.json."""
  config = parts[0].config
  mesh = sharding.make_mesh(config.mesh)
  if config.batch_size % mesh.shape[sharding.DATA]:
    raise InputError(
        f"batch_size {config.batch_size} is not divisible by the {mesh.shape[sharding.DATA]} "
        "data-parallel devices; change --config.batch_size or --config.mesh.data."
    )
  num_examples = len(datasets[0].train.label)
  if config.batch_size > num_examples:
    raise InputError(
        f"batch_size {config.batch_size} exceeds the {num_examples} "
        "training examples; lower --config.batch_size."
    )
  method_of = [runs.method_for(part.config, d) for part, d in zip(parts, datasets)]
  method = method_of[0]  # A pack's methods differ only in what their init reads (pack.py).
  started = time.perf_counter()
  members_of, states = zip(
      *(members.init_members(p.config, m, mesh) for p, m in zip(parts, method_of))
  )
  members_list = [member for own in members_of for member in own]
  num_members = len(members_list)
  if len(parts) > 1:  # Each run's members, in order, along one member axis.
    first = np.cumsum([0] + [len(own) for own in members_of])
    parts = [
        loop.Part(p.config, p.workdir, slice(a, b), stacked=b - a > 1)
        for p, a, b in zip(parts, first[:-1], first[1:])
    ]
    state = loop.join(parts, list(states))
    state = jax.device_put(state, sharding.state_shardings(state, mesh, num_members))
  else:
    state = states[0]
  dataset_of_member = [d for d, own in zip(datasets, members_of) for _ in own]
  # A pack's test splits stay on the devices (`pack.py` packs only what fits).
  test_streamed = len(parts) == 1 and streaming.streams(
      config, datasets[0].test.images, mesh, "Test"
  )
  evaluate_test = Evaluator(
      method,
      [d.test for d in dataset_of_member] if len(parts) > 1 else datasets[0].test,
      datasets[0].num_classes,
      datasets[0].num_bias_classes,
      config.eval_batch_size,
      mesh,
      num_members,
      test_streamed,
  )
  train, streamed = _train_data(config, datasets, dataset_of_member, mesh)

  def chunk_indices(step: int, num_steps: int):
    return members.chunk_indices(
        members_list, step, num_steps, config.batch_size, num_examples, method.sampling_weights
    )

  if streamed:
    images = datasets[0].train.images
    host = streaming.training_batches(config, images, mesh, chunk_indices, num_members)
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
    tests = [r["test"]["classifier"] for r in records]
    loss = np.mean([r["train"]["loss"] for r in records])
    # A test split without bias labels has no unbiased accuracy: its accuracy then.
    known = all(t["unbiased_accuracy"] is not None for t in tests)
    shown, key = ("unbiased", "unbiased_accuracy") if known else ("accuracy", "accuracy")
    return {"loss": f"{loss:.3g}", shown: f"{100 * np.mean([t[key] for t in tests]):.2f}%"}

  finals, seconds = loop.train(
      parts,
      state,
      run_chunk,
      evaluate,
      name=config.method if len(parts) == 1 else f"{config.method} x {len(parts)} runs",
      progress=progress,
      learning_rate_key="optimizer.learning_rate",
      data_read_seconds=data_read,
  )
  train_seconds = round(time.perf_counter() - started, 2)
  all_results = []
  for part, dataset in zip(parts, datasets):
    own = part.rows(finals)
    results = own[0]
    if len(own) > 1:
      results = {"step": results["step"], "members": own}
    else:
      del results["hparams"]  # config.json has them.
    results.update(
        method=part.config.method,
        uses_training_bias_labels=part.config.method in methods.USES_BIAS_LABELS,
        dataset=dataset.name,
        # What sizes the method's state, so that loading the run needs no data (runs.load).
        train_set={
            "num_examples": len(dataset.train.label),
            "num_classes": dataset.num_classes,
            "image_shape": list(dataset.train.images.shape[1:]),
            "num_synthetic": dataset.num_synthetic,
        },
        train_images="streamed" if streamed else "device",
        test_images="streamed" if test_streamed else "device",
        train_seconds_this_run=train_seconds,
        seconds_this_run=seconds,  # loop.SECONDS says what each is.
        metric_definitions=metrics.DEFINITIONS,
    )
    if len(parts) > 1:  # The process's times are the whole pack's.
      results["packed_with"] = [str(p.workdir) for p in parts if p is not part]
    runs.write_json(part.workdir / "results.json", results)
    runs.print_results(results)
    all_results.append(results)
  return all_results


def _train_data(config, datasets, dataset_of_member, mesh) -> tuple[dict[str, Any], bool]:
  """The training labels and (unless they stream) images on the devices, and whether the images
  stream. A pack's distinct training splits lie one after another, each member's 'offset'
  saying where its own starts (`members.chunk_runner`)."""
  if len(datasets) == 1:
    split = datasets[0].train
    train = {"label": sharding.global_array(split.label, sharding.replicated(mesh))}
    streamed = streaming.streams(config, split.images, mesh)
    if not streamed:
      train["image"] = sharding.shard_rows(split.images, mesh)
    return train, streamed
  distinct = list({id(d): d for d in datasets}.values())
  position = {id(d): k for k, d in enumerate(distinct)}
  num_examples = len(distinct[0].train.label)
  offsets = np.array([position[id(d)] * num_examples for d in dataset_of_member], np.int32)
  labels = np.concatenate([d.train.label for d in distinct])
  images = np.concatenate([d.train.images for d in distinct])
  train = {
      "label": sharding.global_array(labels, sharding.replicated(mesh)),
      "image": sharding.shard_rows(images, mesh),
      "offset": sharding.global_array(offsets, sharding.replicated(mesh)),
  }
  return train, False
