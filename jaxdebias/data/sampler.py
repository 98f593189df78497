"""Which training examples each step sees: a fresh permutation per epoch, as a pure function.

Step s takes positions [s*B, (s+1)*B) of the infinite stream perm_0 ++ perm_1 ++ ..., where
perm_e = permutation(fold_in(key, e), N). Every example is seen once per epoch (a batch may
straddle two epochs, so an index can repeat inside that batch), and the batch of a step
depends only on (key, step): resuming from any step reproduces the same order exactly.
"""

import jax
import jax.numpy as jnp


def batch_indices(
    key: jax.Array, start_step: jax.Array, num_steps: int, batch_size: int, num_examples: int
) -> jax.Array:
  """Example indices (num_steps, batch_size) int32 for steps start_step .. start_step+num_steps-1.

  `start_step` may be traced; `num_steps`, `batch_size`, `num_examples` are static. Only the
  (at most num_steps*batch_size/num_examples + 2) epochs these steps touch are permuted.
  """
  start = jnp.asarray(start_step, jnp.int32)
  positions = start * batch_size + jnp.arange(num_steps * batch_size)
  first_epoch = (start * batch_size) // num_examples
  num_epochs = (num_steps * batch_size) // num_examples + 2
  perms = jax.vmap(lambda e: jax.random.permutation(jax.random.fold_in(key, e), num_examples))(
      first_epoch + jnp.arange(num_epochs)
  )
  epoch, offset = positions // num_examples - first_epoch, positions % num_examples
  return perms[epoch, offset].astype(jnp.int32).reshape(num_steps, batch_size)
