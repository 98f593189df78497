"""Training methods behind one interface, chosen by `config.method`.

A method is built from the config, a classifier module and the training labels, and offers
three pure functions that the trainer jits, scans, vmaps and (later) shards:

  hparam_grid: {name: values}            the hyperparameters that may be traced, each with the
                                         values the config asks for; the trainer trains every
                                         combination side by side (vmap) and passes one to init.
  init(rng, hparams) -> state            state: a pytree (params, optimizer state, EMA buffers,
                                         step, and `hparams` as float32 scalars)
  train_step(state, batch) -> (state, metrics)
                                         batch: {'image': uint8 (B,H,W,C), 'label': int32 (B,),
                                                 'index': int32 (B,) stable training-example index}
  predict(state, images) -> {name: logits}
                                         the first entry is the method's classifier (f_D in LfF);
                                         others are kept for diagnosis (f_B in LfF).

Bias labels are never passed to `train_step`: methods here learn without them.
"""

from typing import Protocol

import flax.linen as nn
import jax
import ml_collections
import numpy as np

from jaxdebias.errors import InputError
from jaxdebias.methods.amplified import AmplifiedGroupDRO, AmplifiedGroups
from jaxdebias.methods.erm import ERM
from jaxdebias.methods.lff import AmplifiedLfF, LfF

Batch = dict[str, jax.Array]


class Method(Protocol):
  hparam_grid: dict[str, tuple[float, ...]]

  def init(self, rng: jax.Array, hparams: dict[str, jax.Array]):
    ...

  def train_step(self, state, batch: Batch) -> tuple[object, dict[str, jax.Array]]:
    ...

  def predict(self, state, images: jax.Array) -> dict[str, jax.Array]:
    ...


METHODS = {
    "erm": ERM,
    "lff": LfF,
    "amplified_lff": AmplifiedLfF,
    "amplified_groups": AmplifiedGroups,
    "amplified_dro": AmplifiedGroupDRO,
}


def get(name: str) -> type[Method]:
  """The method class registered as `name`; InputError naming the known ones otherwise."""
  if name not in METHODS:
    raise InputError(f"Unknown method {name!r}; set --config.method to one of {sorted(METHODS)}.")
  return METHODS[name]


def create(
    config: ml_collections.ConfigDict,
    model: nn.Module,
    train_labels: np.ndarray,
    num_classes: int,
    image_shape: tuple[int, ...],
    num_synthetic: int = 0,
    train_images: np.ndarray | None = None,
) -> Method:
  """Builds the method named by `config.method` (hyperparameters from `config[config.method]`).

  num_synthetic: the last training examples that are generated (latent de-biasing's pairs).
  train_images: uint8 (N, H, W, C), for methods that score the training set once when built
  (amplified_groups, amplified_dro); the others ignore them.
  """
  return get(config.method)(
      config=config,
      model=model,
      train_labels=train_labels,
      num_classes=num_classes,
      image_shape=image_shape,
      num_synthetic=num_synthetic,
      train_images=train_images,
  )
