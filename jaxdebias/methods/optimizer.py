"""The optimizer every classifier method trains with: Adam, or AdamW with weight decay."""

import ml_collections
import optax

from jaxdebias.errors import InputError


def default_config() -> ml_collections.ConfigDict:
  """config.optimizer: the LfF protocol's Adam 1e-3."""
  return ml_collections.ConfigDict({"learning_rate": 1e-3, "weight_decay": 0.0})


def create(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
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
