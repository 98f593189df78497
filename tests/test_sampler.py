"""The batch order: one permutation per epoch, or weighted draws with replacement; a pure
function of (seed, step) either way."""

import numpy as np
import pytest

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


@pytest.mark.parametrize("weights", [None, np.linspace(0, 1, 70)], ids=["uniform", "weighted"])
def test_order_depends_only_on_seed_and_step(weights):
  draw = lambda seed, start, length: sampler.batch_indices(seed, start, length, 16, 70, weights)
  whole = draw(3, 0, 30)
  pieces = [draw(3, start, length) for start, length in ((0, 7), (7, 1), (8, 22))]
  np.testing.assert_array_equal(whole, np.concatenate(pieces))
  np.testing.assert_array_equal(draw(3, 0, 30), whole)
  assert not np.array_equal(whole, draw(4, 0, 30))


def test_weighted_draws_follow_the_weights_and_skip_weight_zero():
  """Group-balanced sampling as GroupDRO's official code does it: weight 1 / |group|."""
  groups = np.repeat([0, 1, 2], [970, 20, 10])
  weights = 1 / np.bincount(groups)[groups]
  weights[0] = 0.0
  indices = sampler.batch_indices(0, 0, 400, 64, len(groups), weights)
  assert indices.shape == (400, 64) and indices.dtype == np.int32
  assert 0 not in indices and indices.max() < len(groups)
  share = np.bincount(groups[indices.reshape(-1)], minlength=3) / indices.size
  np.testing.assert_allclose(share, [1 / 3] * 3, atol=0.01)  # 25,600 draws: std about 0.003.
  np.testing.assert_array_equal(np.unique(indices[groups[indices] == 2]), np.arange(990, 1000))
