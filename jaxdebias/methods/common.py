"""Pieces shared by the methods: input scaling, the optimizer, batch accuracy, swept values."""

from collections.abc import Callable
import numbers

import jax
import jax.numpy as jnp
import ml_collections
import optax

from jaxdebias.errors import InputError

# config.input_scaling -> divisor from uint8 pixels to model inputs.
INPUT_DIVISORS = {
    "unit": 255.0,  # [0, 1], as the LfF paper describes.
    # The LfF reference code divides by 255 twice (by accident): inputs in [0, 1/255]. Its
    # published Colored MNIST numbers were obtained that way; see README "Results".
    "lff_reference": 255.0**2,
}


def input_scaler(config: ml_collections.ConfigDict) -> Callable[[jax.Array], jax.Array]:
  """uint8 images -> float32 model inputs, scaled as `config.input_scaling` names."""
  if config.input_scaling not in INPUT_DIVISORS:
    raise InputError(
        f"Unknown input_scaling {config.input_scaling!r}; set --config.input_scaling to one of "
        f"{sorted(INPUT_DIVISORS)}."
    )
  divisor = INPUT_DIVISORS[config.input_scaling]
  return lambda images: images.astype(jnp.float32) / divisor


def optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """Adam (or AdamW when weight_decay > 0) from `config.optimizer`."""
  opt = config.optimizer
  if not opt.learning_rate > 0:
    raise InputError(
        f"optimizer.learning_rate must be > 0, got {opt.learning_rate}; "
        "set --config.optimizer.learning_rate."
    )
  if opt.weight_decay < 0:
    raise InputError(
        f"optimizer.weight_decay must be >= 0, got {opt.weight_decay}; "
        "set --config.optimizer.weight_decay."
    )
  if opt.weight_decay:
    return optax.adamw(opt.learning_rate, weight_decay=opt.weight_decay)
  return optax.adam(opt.learning_rate)


def init_params(model, rng: jax.Array, image_shape: tuple[int, ...]):
  """Initialises `model` on a dummy batch of one image."""
  return model.init(rng, jnp.zeros((1, *image_shape), jnp.float32))


def batch_accuracy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  return jnp.mean(jnp.argmax(logits, -1) == labels)


def hparam_values(
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
