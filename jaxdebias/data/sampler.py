"""Which training examples each step sees: a fresh permutation per epoch, as a pure function.

Step s takes positions [s*B, (s+1)*B) of the infinite stream perm_0 ++ perm_1 ++ ..., where
perm_e = numpy.random.default_rng([seed, e]).permutation(N). Every example is seen once per
epoch (a batch may straddle two epochs, so an index can repeat inside that batch), and the batch
of a step depends only on (seed, step): resuming from any step reproduces the same order exactly.

Drawn on the host, once per chunk of steps: NumPy permutes 60,000 indices in 0.5 ms, where
jax.random.permutation takes 28 ms on a CPU device, about a tenth of the LfF step time.
"""

import numpy as np


def batch_indices(
    seed: int, start_step: int, num_steps: int, batch_size: int, num_examples: int
) -> np.ndarray:
  """Example indices (num_steps, batch_size) int32 for steps start_step .. start_step+num_steps-1.

  Only the epochs these steps touch are permuted.
  """
  positions = start_step * batch_size + np.arange(num_steps * batch_size)
  epoch, offset = np.divmod(positions, num_examples)
  first = int(epoch[0])
  perms = np.stack(
      [
          np.random.default_rng([seed, e]).permutation(num_examples)
          for e in range(first, int(epoch[-1]) + 1)
      ]
  )
  return perms[epoch - first, offset].astype(np.int32).reshape(num_steps, batch_size)
