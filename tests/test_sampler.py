"""The batch order: one permutation per epoch, a pure function of (key, step)."""

import chex
import jax
import numpy as np

from jaxdebias.data import sampler


def test_each_epoch_visits_every_example_once():
  key = jax.random.key(0)
  n, batch = 100, 8  # 100 is not a multiple of 8: batches straddle epochs.
  indices = np.asarray(sampler.batch_indices(key, 0, 50, batch, n)).reshape(-1)
  for epoch in range(4):
    np.testing.assert_array_equal(np.sort(indices[epoch * n : (epoch + 1) * n]), np.arange(n))
  assert not np.array_equal(indices[:n], indices[n : 2 * n])  # A fresh order each epoch.


def test_order_depends_only_on_key_and_step():
  key = jax.random.key(3)
  whole = sampler.batch_indices(key, 0, 30, 16, 70)
  pieces = [
      sampler.batch_indices(key, start, length, 16, 70)
      for start, length in ((0, 7), (7, 1), (8, 22))
  ]
  chex.assert_trees_all_equal(whole, np.concatenate(pieces))
  jitted = jax.jit(sampler.batch_indices, static_argnums=(2, 3, 4))
  chex.assert_trees_all_equal(jitted(key, 8, 22, 16, 70), pieces[2])
  assert not np.array_equal(whole, sampler.batch_indices(jax.random.key(4), 0, 30, 16, 70))
