"""The optimizer every classifier method trains with: Adam, or AdamW with weight decay; an L2
penalty in the gradient (PyTorch Adam's weight_decay, as the ReBias schedule uses) and a
step-wise learning-rate decay (PyTorch's StepLR) where a protocol asks for them.

optimizer.weight_decay is a number, or a tuple of numbers: every value then trains side by
side as members of one run (a swept hyperparameter, `swept`), its value held in the optimizer
state (`optax.inject_hyperparams`).
"""

import jax
import jax.numpy as jnp
import ml_collections
import optax

from jaxdebias.errors import InputError, check_integer
from jaxdebias.methods.interface import swept_values


def default_config() -> ml_collections.ConfigDict:
  """config.optimizer: the LfF protocol's Adam 1e-3."""
  return ml_collections.ConfigDict(
      {
          "learning_rate": 1e-3,
          # Decoupled (AdamW); a tuple of values is swept.
          "weight_decay": ml_collections.FieldReference(0.0, field_type=object),
          "l2": 0.0,  # l2 * params added to the gradient before Adam.
          # The learning rate times decay_factor every decay_every steps (0: constant), counted
          # from step decay_begin (DisEnt starts its decay at the feature swap).
          "decay_every": 0,
          "decay_factor": 0.1,
          "decay_begin": 0,
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
  if not opt.l2 >= 0:
    raise InputError(f"optimizer.l2 must be >= 0, got {opt.l2}; set --config.optimizer.l2.")
  every = opt.decay_every
  check_integer("optimizer.decay_every", every, 0, " (0: no decay)")
  if every and not 0 < opt.decay_factor <= 1:
    raise InputError(
        f"optimizer.decay_factor must lie in (0, 1], got {opt.decay_factor}; set "
        "--config.optimizer.decay_factor."
    )
  check_integer(
      "optimizer.decay_begin", opt.decay_begin, 0, " (the step the decay counts from)"
  )
  learning_rate = opt.learning_rate
  if every:
    learning_rate = optax.exponential_decay(
        opt.learning_rate, every, opt.decay_factor, transition_begin=opt.decay_begin, staircase=True
    )
  if swept(config):  # The value is set per member by `init`.
    tx = optax.inject_hyperparams(optax.adamw)(learning_rate=learning_rate, weight_decay=0.0)
  elif opt.weight_decay:
    tx = optax.adamw(learning_rate, weight_decay=opt.weight_decay)
  else:
    tx = optax.adam(learning_rate)
  return optax.chain(optax.add_decayed_weights(opt.l2), tx) if opt.l2 else tx


def init(tx: optax.GradientTransformation, params, hparams: dict[str, jax.Array]):
  """tx's state for `params`, with this member's weight decay where it is swept."""
  state = tx.init(params)
  if "weight_decay" not in hparams:
    return state
  decay = jnp.asarray(hparams["weight_decay"], jnp.float32)
  with_decay = lambda s: s._replace(hyperparams={**s.hyperparams, "weight_decay": decay})
  if hasattr(state, "hyperparams"):
    return with_decay(state)
  return (*state[:-1], with_decay(state[-1]))  # After the L2 term of a chain.


def apply(tx: optax.GradientTransformation, state, grads, **fields):
  """`state` (a method's state: step, params, opt_state) after one step of `tx` on `grads`,
  with `fields` (e.g. the updated loss EMA) replaced too."""
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  return state.replace(step=state.step + 1, params=params, opt_state=opt_state, **fields)
