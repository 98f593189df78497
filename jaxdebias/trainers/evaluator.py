"""Evaluation on a split held on device (or streamed from the host when it does not fit): every
model a method predicts with, every member, the group metrics of `jaxdebias.metrics`."""

from collections.abc import Callable
import math
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import Mesh
import numpy as np

from jaxdebias import metrics, sharding
from jaxdebias.data import Split
from jaxdebias.methods import Method
from jaxdebias.trainers import members, streaming


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
      stream: bool = False,
  ):
    """Looks the split up in whole batches (each a multiple of the data-parallel device count);
    the padding is predicted and then dropped, so every example counts exactly once.

    split: the split of every member, or a list with each member's; equal splits are held on
    the device once, and when all are equal the members share each batch's images. stream:
    read the batches from the host at each evaluation instead (one split only;
    `streaming.HostBatches`), for a split the device cannot hold.
    """
    splits = [split] * num_members if isinstance(split, Split) else split
    distinct, self.member_split = _distinct(splits)
    self.splits = distinct
    sizes = [len(s.label) for s in distinct]
    batch_size = math.ceil(batch_size / mesh.shape[sharding.DATA]) * mesh.shape[sharding.DATA]
    padded = math.ceil(max(sizes) / batch_size) * batch_size
    images = [s.images for s in distinct]
    if len(images) > 1:  # (One alone stays a memory map: each process reads only its rows.)
      images = [np.concatenate(images)]
    # Row indices of each batch; the padding repeats a split's last example (its predictions
    # dropped). Shared: (batches, batch); per member: (batches, member, batch).
    starts = np.cumsum([0] + sizes[:-1])
    rows = [start + np.minimum(np.arange(padded), n - 1) for start, n in zip(starts, sizes)]
    shared = members.per_member(method.predict, num_members, in_axes=(0, None))
    if len(distinct) == 1:
      batches = rows[0].reshape(-1, batch_size)
      predict = lambda state, images, index: shared(
          state, sharding.gather_rows(images, index, mesh)
      )
    else:
      batches = np.stack([rows[k].reshape(-1, batch_size) for k in self.member_split], 1)
      own = lambda state, images, index: method.predict(
          state, sharding.gather_rows(images, index, mesh)
      )
      predict = jax.vmap(own, in_axes=(0, None, 0))
    batches = batches.astype(np.int32)
    self.shape = (num_classes, num_bias_classes)
    if stream and len(distinct) > 1:
      raise ValueError("Only one split streams: give the members' splits on the device.")
    self.streamed = stream
    if stream:
      self.num_batches = len(batches)
      self.host = streaming.HostBatches(
          images[0], mesh, lambda step, count: batches[step : step + count], batch_size
      )
    else:
      self.images = sharding.shard_rows(images[0], mesh)
      self.batches = members.place_indices(batches, mesh)

    def classes(logits: dict[str, jax.Array], num_batches: int) -> dict[str, jax.Array]:
      """Per-batch logits ([member,] batch, ...) -> predicted classes (num_members, padded)."""
      return {
          k: jnp.argmax(v, -1).reshape(num_batches, num_members, -1).swapaxes(0, 1)
          .reshape(num_members, -1)
          for k, v in logits.items()
      }

    replicated = sharding.replicated(mesh)
    self.predict_all = jax.jit(
        lambda state, images, batches: classes(
            jax.lax.map(lambda index: predict(state, images, index), batches), len(batches)
        ),
        out_shardings=replicated,
    )
    self.predict_images = jax.jit(  # Streamed batches: images (batches, batch, H, W, C).
        lambda state, images: classes(jax.lax.map(lambda x: shared(state, x), images), len(images)),
        out_shardings=replicated,
    )

  def __call__(self, state) -> Callable[[], list[dict[str, dict[str, Any]]]]:
    """Starts predicting (on the device, without waiting; streamed: reading the batches as it
    goes); the returned function waits for the predictions and gives, for each member, model
    name -> `metrics.summarize` of them."""
    if not self.streamed:
      predicted = self.predict_all(state, self.images, self.batches)
    else:
      pieces = [self.predict_images(state, x) for _, x in self.host.pieces(0, self.num_batches)]
      predicted = {k: jnp.concatenate([p[k] for p in pieces], 1) for k in pieces[0]}
    return lambda: self.summaries(jax.device_get(predicted))

  def summaries(self, predictions: dict[str, np.ndarray]) -> list[dict[str, dict[str, Any]]]:
    per_member = []
    for member, member_predictions in enumerate(zip(*predictions.values())):
      split = self.splits[self.member_split[member]]
      summaries = {}
      unknown = split.bias_label < 0
      for name, pred in zip(predictions, member_predictions):
        pred = pred[: len(split.label)]
        total, correct = metrics.group_counts(pred, split.label, split.bias_label, *self.shape)
        hits = int((pred[unknown] == split.label[unknown]).sum())
        summaries[name] = metrics.summarize(
            np.asarray(total), np.asarray(correct), (int(unknown.sum()), hits)
        )
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
