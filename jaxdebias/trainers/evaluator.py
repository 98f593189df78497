"""Evaluation on a split held on device: every model a method predicts with, every member, the
group metrics of `jaxdebias.metrics`."""

from collections.abc import Callable
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import Mesh
import numpy as np

from jaxdebias import metrics, sharding
from jaxdebias.data import Split
from jaxdebias.methods import Method
from jaxdebias.trainers import members


class Evaluator:
  """Group metrics of every model a method predicts with, on one split held on device, or on
  each member's own split (the members of a pack of runs, `pack.py`)."""

  def __init__(
      self,
      method: Method,
      split: Split | list[Split],
      num_classes: int,
      num_bias_classes: int,
      batch_size: int,
      mesh: Mesh,
      num_members: int = 1,
  ):
    """Looks the split up in whole batches (each a multiple of the data-parallel device count);
    the padding is predicted and then dropped, so every example counts exactly once.

    split: the split of every member, or a list with each member's; equal splits are held on
    the device once, and when all are equal the members share each batch's images.
    """
    distinct, self.member_split = _distinct([split] if isinstance(split, Split) else split)
    self.splits = distinct
    sizes = [len(s.label) for s in distinct]
    batch_size = math.ceil(batch_size / mesh.shape[sharding.DATA]) * mesh.shape[sharding.DATA]
    padded = math.ceil(max(sizes) / batch_size) * batch_size
    images = [s.images for s in distinct]
    if len(images) > 1:  # (One alone stays a memory map: each process reads only its rows.)
      images = [np.concatenate(images)]
    self.images = sharding.shard_rows(images[0], mesh)
    # Row indices of each batch; the padding repeats a split's last example (its predictions
    # dropped). Shared: (batches, batch); per member: (batches, member, batch).
    starts = np.cumsum([0] + sizes[:-1])
    rows = [start + np.minimum(np.arange(padded), n - 1) for start, n in zip(starts, sizes)]
    if len(distinct) == 1:
      batches = rows[0].reshape(-1, batch_size)
      shared = members.per_member(method.predict, num_members, in_axes=(0, None))
      predict = lambda state, images, index: shared(
          state, sharding.gather_rows(images, index, mesh)
      )
    else:
      batches = np.stack([rows[k].reshape(-1, batch_size) for k in self.member_split], 1)
      own = lambda state, images, index: method.predict(
          state, sharding.gather_rows(images, index, mesh)
      )
      predict = jax.vmap(own, in_axes=(0, None, 0))
    self.batches = members.place_indices(batches.astype(np.int32), mesh)
    self.shape = (num_classes, num_bias_classes)

    @functools.partial(jax.jit, out_shardings=sharding.replicated(mesh))
    def predict_all(state, images, batches):
      """Predicted classes (num_members, padded) of every model."""
      logits = jax.lax.map(lambda index: predict(state, images, index), batches)
      # ([member,] batch, ...) per batch
      classes = {
          k: jnp.argmax(v, -1).reshape(len(batches), num_members, -1) for k, v in logits.items()
      }
      return {k: v.swapaxes(0, 1).reshape(num_members, -1) for k, v in classes.items()}

    self.predict_all = predict_all

  def __call__(self, state) -> Callable[[], list[dict[str, dict[str, Any]]]]:
    """Starts predicting (on the device, without waiting); the returned function waits for the
    predictions and gives, for each member, model name -> `metrics.summarize` of them."""
    predicted = self.predict_all(state, self.images, self.batches)
    return lambda: self.summaries(jax.device_get(predicted))

  def summaries(self, predictions: dict[str, np.ndarray]) -> list[dict[str, dict[str, Any]]]:
    per_member = []
    for member, member_predictions in enumerate(zip(*predictions.values())):
      split = self.splits[self.member_split[member] if len(self.splits) > 1 else 0]
      summaries = {}
      for name, pred in zip(predictions, member_predictions):
        total, correct = metrics.group_counts(
            pred[: len(split.label)], split.label, split.bias_label, *self.shape
        )
        summaries[name] = metrics.summarize(np.asarray(total), np.asarray(correct))
      per_member.append(summaries)
    return per_member


def _distinct(splits: list[Split]) -> tuple[list[Split], list[int]]:
  """The distinct splits (by content) and the position of each given one among them."""
  distinct, positions = [], []
  for split in splits:
    same = (k for k, d in enumerate(distinct) if d is split or _equal(d, split))
    position = next(same, len(distinct))
    if position == len(distinct):
      distinct.append(split)
    positions.append(position)
  return distinct, positions


def _equal(a: Split, b: Split) -> bool:
  return all(
      x.shape == y.shape and np.array_equal(x, y)
      for x, y in zip((a.images, a.label, a.bias_label), (b.images, b.label, b.bias_label))
  )
