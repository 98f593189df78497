"""Synthetic bias amplification, two-step recipe (Ciranni et al., NeurIPS 2025): pseudo-groups
of the real training examples from a frozen bias amplifier, then group-balanced ERM.

Step 1 (when the method is built): the amplifier (`amplifier.workdir`, a classifier trained only
on a class-conditional generator's images, `data.generated`) labels every real training image;
pseudo-group = (class, whether the amplifier got it right). The amplifier learned the bias from
generated, (almost) always bias-aligned images, so "wrong" marks the likely bias-conflicting
examples. Step 2: cross-entropy with each example weighted by N / (G * |its pseudo-group|), G the
non-empty pseudo-groups: every pseudo-group weighs the same in expectation. No bias labels.
"""

import jax
import ml_collections
import numpy as np

from jaxdebias.errors import InputError
from jaxdebias.methods.erm import ERM


def amplifier_fn(config: ml_collections.ConfigDict):
  """The frozen bias amplifier of `amplifier.workdir` (uint8 images -> logits, pure JAX)."""
  if not config.amplifier.workdir:
    raise InputError(
        f"method {config.method} needs a bias amplifier: set --config.amplifier.workdir to a "
        "finished classifier run trained on generated images (data.generated)."
    )
  from jaxdebias import train  # pylint: disable=g-import-not-at-top (train imports methods)

  return train.classifier_fn(config.amplifier.workdir)


def group_balanced_weights(groups: np.ndarray) -> np.ndarray:
  """N / (G * |group of i|) for every example i: each non-empty group weighs the same."""
  _, inverse, counts = np.unique(groups, return_inverse=True, axis=0, return_counts=True)
  return (len(groups) / (len(counts) * counts[inverse.reshape(-1)])).astype(np.float32)


class AmplifiedGroups(ERM):
  """Group-balanced ERM over the amplifier's pseudo-groups (module doc)."""

  def __init__(
      self,
      config: ml_collections.ConfigDict,
      model,
      train_labels: np.ndarray,
      num_classes: int,
      image_shape: tuple[int, ...],
      num_synthetic: int = 0,
      train_images: np.ndarray | None = None,
      batch_size: int = 1000,
  ):
    super().__init__(config, model, train_labels, num_classes, image_shape, num_synthetic)
    if train_images is None:
      raise InputError("method amplified_groups scores the training images; none were given.")
    predict = jax.jit(amplifier_fn(config))
    correct = np.concatenate(
        [
            np.asarray(predict(train_images[i : i + batch_size])).argmax(-1)
            == train_labels[i : i + batch_size]
            for i in range(0, len(train_labels), batch_size)
        ]
    )
    self.pseudo_groups = np.stack([np.asarray(train_labels), correct], axis=1)
    self.example_weights = group_balanced_weights(self.pseudo_groups)
