"""Pieces shared by the methods: input scaling, the optimizer, batch accuracy."""

import jax
import jax.numpy as jnp
import ml_collections
import optax

from jaxdebias.errors import InputError


def to_float(images: jax.Array) -> jax.Array:
  """uint8 images -> float32 in [0, 1] (scaled once; the LfF reference divides by 255 twice)."""
  return images.astype(jnp.float32) / 255.0


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
