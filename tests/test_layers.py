"""models/layers.py draws exactly Flax's initial values (the fast-compiling draw relies on JAX
numbering a draw's elements by their row-major index); the MLP's TorchLinear computes exactly
what nn.Dense did."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from jaxdebias.models import layers, mlp

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


def test_torch_linear_is_the_dense_layer_it_replaced_stored_transposed():
  # The LfF MLP's first layer at its real size: the same initial values, outputs and gradients,
  # bit for bit, as the nn.Dense (kernel = weight.T) every stored LfF result was trained with.
  dense = nn.Dense(
      100, kernel_init=mlp._torch_default_kernel_init, bias_init=mlp._torch_default_bias_init(2352)
  )
  x = jax.random.uniform(jax.random.key(0), (256, 2352))
  ours, theirs = mlp.TorchLinear(100).init(jax.random.key(1), x), dense.init(jax.random.key(1), x)
  chex.assert_shape(ours["params"]["weight"], (100, 2352))
  as_dense = lambda p: {"params": {"kernel": p["params"]["weight"].T, "bias": p["params"]["bias"]}}
  chex.assert_trees_all_equal(as_dense(ours), theirs)
  loss = lambda module: jax.jit(jax.value_and_grad(lambda p: jnp.sum(module.apply(p, x) ** 2)))
  (value, grads), (dense_value, dense_grads) = loss(mlp.TorchLinear(100))(ours), loss(dense)(theirs)
  chex.assert_trees_all_equal((value, as_dense(grads)), (dense_value, dense_grads))
