"""Which training examples each step sees, as a pure function of (seed, step).

Uniform (the default): step s takes positions [s*B, (s+1)*B) of the infinite stream
perm_0 ++ perm_1 ++ ..., where perm_e = numpy.random.default_rng([seed, e]).permutation(N).
Every example is seen once per epoch (a batch may straddle two epochs, so an index can repeat
inside that batch).

Weighted (a method's `sampling_weights`): every batch is B draws with replacement, example i
with probability w_i / sum(w), from numpy.random.default_rng([seed, s]): PyTorch's
WeightedRandomSampler, which GroupDRO's group-balanced batches and JTT's upsampling use.

Either way the batch of a step depends only on (seed, step): resuming from any step reproduces
the same order exactly. Drawn on the host, once per chunk of steps: NumPy permutes 60,000
indices in 0.5 ms, where jax.random.permutation takes 28 ms on a CPU device, about a tenth of
the LfF step time.
"""

import numpy as np


def batch_indices(
    seed: int,
    start_step: int,
    num_steps: int,
    batch_size: int,
    num_examples: int,
    weights: np.ndarray | None = None,
) -> np.ndarray:
  """Example indices (num_steps, batch_size) int32 for steps start_step .. start_step+num_steps-1,
  uniform or, given `weights` (num_examples,) >= 0, weighted (module doc)."""
  if weights is not None:
    return _weighted(seed, start_step, num_steps, batch_size, weights)
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


def _weighted(
    seed: int, start_step: int, num_steps: int, batch_size: int, weights: np.ndarray
) -> np.ndarray:
  """Draws with replacement by inverting the weights' cumulative sum: an example of weight 0
  is never drawn."""
  cumulative = np.cumsum(np.asarray(weights, np.float64))
  cumulative /= cumulative[-1]  # Exactly 1 at the end, above every draw in [0, 1).
  uniform = np.stack(
      [
          np.random.default_rng([seed, step]).random(batch_size)
          for step in range(start_step, start_step + num_steps)
      ]
  )
  return np.searchsorted(cumulative, uniform, side="right").astype(np.int32)
