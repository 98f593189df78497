"""The batch order: one permutation per epoch, a pure function of (seed, step)."""

import numpy as np

from jaxdebias.data import sampler


def test_each_epoch_visits_every_example_once():
  n, batch = 100, 8  # 100 is not a multiple of 8: batches straddle epochs.
  indices = sampler.batch_indices(0, 0, 50, batch, n)
  assert indices.shape == (50, batch) and indices.dtype == np.int32
  flat = indices.reshape(-1)
  for epoch in range(4):
    np.testing.assert_array_equal(np.sort(flat[epoch * n : (epoch + 1) * n]), np.arange(n))
  assert not np.array_equal(flat[:n], flat[n : 2 * n])  # A fresh order each epoch.
  # Batch 12 holds positions 96..103: the last 4 of epoch 0 and the first 4 of epoch 1.
  np.testing.assert_array_equal(indices[12], np.concatenate([flat[96:100], flat[100:104]]))


def test_order_depends_only_on_seed_and_step():
  whole = sampler.batch_indices(3, 0, 30, 16, 70)
  pieces = [
      sampler.batch_indices(3, start, length, 16, 70) for start, length in ((0, 7), (7, 1), (8, 22))
  ]
  np.testing.assert_array_equal(whole, np.concatenate(pieces))
  np.testing.assert_array_equal(sampler.batch_indices(3, 0, 30, 16, 70), whole)
  assert not np.array_equal(whole, sampler.batch_indices(4, 0, 30, 16, 70))
