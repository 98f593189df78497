"""models/layers.py draws exactly Flax's initial values (the fast-compiling draw relies on JAX
numbering a draw's elements by their row-major index)."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from jaxdebias.models import layers

SHAPES = [(3136, 10), (7, 3), (4, 4, 3, 8), (3, 3, 16, 1)]


@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg"])
@pytest.mark.parametrize("distribution", ["truncated_normal", "normal", "uniform"])
def test_variance_scaling_draws_flax_values(mode, distribution):
  ours = layers.variance_scaling(0.7, mode, distribution)
  theirs = nn.initializers.variance_scaling(0.7, mode, distribution)
  shapes = SHAPES if (mode, distribution) == ("fan_in", "truncated_normal") else SHAPES[2:3]
  for i, shape in enumerate(shapes):
    key = jax.random.key(i)
    chex.assert_trees_all_equal(ours(key, shape), theirs(key, shape))


def test_normal_and_layers_draw_flax_values():
  key = jax.random.key(3)
  for shape in SHAPES:
    ours, theirs = layers.normal(2.0), nn.initializers.normal(2.0)
    chex.assert_trees_all_equal(ours(key, shape), theirs(key, shape))
    chex.assert_trees_all_equal(layers.random_normal(key, shape), jax.random.normal(key, shape))
  x = jnp.ones((1, 8, 8, 3))
  for ours, theirs in [
      (layers.Conv(5, (3, 3)), nn.Conv(5, (3, 3))),
      (layers.Dense(6), nn.Dense(6)),
  ]:
    chex.assert_trees_all_equal(ours.init(key, x), theirs.init(key, x))  # Names included.
