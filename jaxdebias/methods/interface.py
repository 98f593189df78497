"""What every classifier method is built from and offers (see `jaxdebias.methods`)."""

from collections.abc import Callable
import dataclasses
import itertools
import math
import numbers
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from jaxdebias.errors import InputError

# The most members (seeds x swept values) one run trains side by side.
MAX_MEMBERS = 1024

Batch = dict[str, jax.Array]  # {'image': uint8 (B,H,W,C), 'label': int32 (B,), 'index': int32 (B,)}


@dataclasses.dataclass(frozen=True)
class TrainSet:
  """The training split as a method sees it when built: labels, sizes and no bias labels (but
  for the oracle baselines, methods.USES_BIAS_LABELS).

  The last `num_synthetic` rows are generated (latent de-biasing's pairs); rows are indexed by
  the stable example index that batches carry.
  """

  labels: np.ndarray  # (N,) int32
  num_classes: int
  image_shape: tuple[int, ...]  # (H, W, C)
  num_synthetic: int = 0
  # (N, H, W, C) uint8, for methods that score the images once when built (amplified_groups);
  # None when the method is built only to predict (a finished run loaded as a function).
  images: np.ndarray | None = None
  # (N,) int32: given only to the oracle baselines (methods.USES_BIAS_LABELS); None otherwise.
  bias_labels: np.ndarray | None = None


class Method(Protocol):
  """Pure functions the trainer jits, scans, vmaps and shards.

  hparam_grid: {name: values}, the hyperparameters that may be traced, each with the values the
  config asks for; the trainer trains every combination side by side (vmap) and passes one to
  `init`. predict's first entry is the method's classifier (f_D in LfF); the others are kept for
  diagnosis (f_B in LfF). sized_by_images: whether the state's shapes depend on the training
  images (then a finished run is rebuilt from its data, not from the sizes it recorded).
  sampling_weights: None for uniform batches (one permutation per epoch), or (N,) weights >= 0
  of the training examples, drawn with replacement in proportion (data/sampler.py). packable:
  whether train_step and predict read the training split only through the batch and the state
  (`init` may read it): then runs of one config on other datasets of the same shapes can train
  as members of one program, each member's state from its own run's `init` (trainers/pack.py).
  """

  hparam_grid: dict[str, tuple[float, ...]]
  sized_by_images: bool
  sampling_weights: np.ndarray | None
  packable: bool

  def init(self, rng: jax.Array, hparams: dict[str, jax.Array]):
    ...

  def train_step(self, state, batch: Batch) -> tuple[object, dict[str, jax.Array]]:
    ...

  def predict(self, state, images: jax.Array) -> dict[str, jax.Array]:
    ...


def swept_values(
    value, name: str, valid: Callable[[float], bool], allowed: str
) -> tuple[float, ...]:
  """A config hyperparameter as a tuple of values: a number, or a tuple of numbers to sweep.

  Raises InputError naming `--config.{name}` if a value is not a number or fails `valid`.
  """
  values = tuple(value) if isinstance(value, (tuple, list)) else (value,)
  for v in values:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not valid(v):
      raise InputError(
          f"{name} must be a number in {allowed} or a tuple of such numbers, got {value!r}; "
          f"set --config.{name}."
      )
  if not values or len(set(values)) != len(values):
    raise InputError(f"{name} must list distinct values, got {value!r}; set --config.{name}.")
  return tuple(float(v) for v in values)


Member = dict[str, Any]  # {'seed': int, 'hparams': {name: value}}


def members_of(method: Method, seed: int, num_seeds: int) -> list[Member]:
  """What trains side by side in one run: each seed (seed, seed + 1, ... num_seeds of them)
  with each combination of the method's swept hyperparameter values, seeds outermost."""
  names, values = zip(*method.hparam_grid.items()) if method.hparam_grid else ((), ())
  count = num_seeds * math.prod(len(v) for v in values)
  if count > MAX_MEMBERS:
    raise InputError(
        f"{count} members (num_seeds x the swept values) is over the limit of {MAX_MEMBERS} "
        "trained side by side; lower --config.num_seeds or the swept values, or split the sweep."
    )
  return [
      {"seed": seed + k, "hparams": dict(zip(names, combination))}
      for k in range(num_seeds)
      for combination in itertools.product(*values)
  ]


def stack(trees: list[Any]):
  """The one tree of a single member, or the members' trees stacked along a leading axis."""
  return trees[0] if len(trees) == 1 else jax.tree.map(lambda *xs: jnp.stack(xs), *trees)
