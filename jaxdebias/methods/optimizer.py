"""The optimizer every classifier method trains with: Adam, or AdamW with weight decay.

optimizer.weight_decay is a number, or a tuple of numbers: every value then trains side by
side as members of one run (a swept hyperparameter, `swept`), its value held in the optimizer
state (`optax.inject_hyperparams`).
"""

import jax
import jax.numpy as jnp
import ml_collections
import optax

from jaxdebias.errors import InputError
from jaxdebias.methods.interface import swept_values


def default_config() -> ml_collections.ConfigDict:
  """config.optimizer: the LfF protocol's Adam 1e-3."""
  return ml_collections.ConfigDict(
      {
          "learning_rate": 1e-3,
          "weight_decay": ml_collections.FieldReference(0.0, field_type=object),
      }
  )


def swept(config: ml_collections.ConfigDict) -> dict[str, tuple[float, ...]]:
  """{'weight_decay': values} when several are asked for (the method's hparam_grid entry)."""
  values = swept_values(
      config.optimizer.weight_decay, "optimizer.weight_decay", lambda v: v >= 0, "[0, inf)"
  )
  return {"weight_decay": values} if len(values) > 1 else {}


def create(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """Adam (or AdamW when weight_decay > 0, or is swept) from `config.optimizer`."""
  opt = config.optimizer
  if not opt.learning_rate > 0:
    raise InputError(
        f"optimizer.learning_rate must be > 0, got {opt.learning_rate}; "
        "set --config.optimizer.learning_rate."
    )
  if swept(config):  # The value is set per member by `init`.
    return optax.inject_hyperparams(optax.adamw)(learning_rate=opt.learning_rate, weight_decay=0.0)
  if opt.weight_decay:
    return optax.adamw(opt.learning_rate, weight_decay=opt.weight_decay)
  return optax.adam(opt.learning_rate)


def init(tx: optax.GradientTransformation, params, hparams: dict[str, jax.Array]):
  """tx's state for `params`, with this member's weight decay where it is swept."""
  state = tx.init(params)
  if "weight_decay" not in hparams:
    return state
  decay = jnp.asarray(hparams["weight_decay"], jnp.float32)
  return state._replace(hyperparams={**state.hyperparams, "weight_decay": decay})
