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
  """Group metrics of every model a method predicts with, on one split held on device."""

  def __init__(
      self,
      method: Method,
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
    self.batches = members.place_indices(batches.astype(np.int32), mesh)
    self.label, self.bias_label = split.label, split.bias_label
    self.shape = (num_classes, num_bias_classes)
    predict = members.per_member(method.predict, num_members, in_axes=(0, None))

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

  def __call__(self, state) -> Callable[[], list[dict[str, dict[str, Any]]]]:
    """Starts predicting (on the device, without waiting); the returned function waits for the
    predictions and gives, for each member, model name -> `metrics.summarize` of them."""
    predicted = self.predict_all(state, self.images, self.batches)
    return lambda: self.summaries(jax.device_get(predicted))

  def summaries(self, predictions: dict[str, np.ndarray]) -> list[dict[str, dict[str, Any]]]:
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
