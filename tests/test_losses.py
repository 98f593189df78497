"""Tests for jaxdebias.losses against a float64 NumPy reference."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxdebias import losses

_NUM_CLASSES = 10


def _np_log_p_y(logits, labels):
  """log p_y in float64 NumPy, independent of the code under test."""
  logits = np.asarray(logits, np.float64)
  shifted = logits - logits.max(axis=-1, keepdims=True)
  log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
  return np.take_along_axis(log_p, np.asarray(labels)[..., None], axis=-1)[..., 0]


def _random_batch(seed=0, batch=16, scale=3.0):
  rng = np.random.default_rng(seed)
  logits = (scale * rng.standard_normal((batch, _NUM_CLASSES))).astype(np.float32)
  labels = rng.integers(0, _NUM_CLASSES, batch).astype(np.int32)
  return jnp.asarray(logits), jnp.asarray(labels)


def _extreme_logits(dtype):
  """Confidently right, confidently wrong, ±1e4 and flat logits for labels [0, 0, 0, 1, 2]."""
  logits = np.zeros((5, _NUM_CLASSES), np.float32)
  logits[0, 0] = 1e4  # Confidently right.
  logits[1, 0], logits[1, 1] = -1e4, 1e4  # Confidently wrong.
  logits[2] = np.where(np.arange(_NUM_CLASSES) % 2 == 0, -1e4, 1e4)  # Label at -1e4.
  logits[3] = 1e4  # All equal and huge.
  logits[4, 2] = -30.0  # Moderately wrong.
  return jnp.asarray(logits, dtype), jnp.array([0, 0, 0, 1, 2], jnp.int32)


def test_cross_entropy_matches_numpy_and_optax():
  logits, labels = _random_batch()
  ce = losses.cross_entropy(logits, labels)
  chex.assert_shape(ce, (16,))
  chex.assert_type(ce, jnp.float32)
  chex.assert_trees_all_close(ce, -_np_log_p_y(logits, labels), rtol=1e-5, atol=1e-6)
  expected = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  chex.assert_trees_all_close(ce, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("q", [0.1, 0.7, 1.0])
def test_gce_values_match_numpy(q):
  logits, labels = _random_batch(seed=1)
  p_y = np.exp(_np_log_p_y(logits, labels))
  gce = losses.generalized_cross_entropy(logits, labels, q=q)
  chex.assert_type(gce, jnp.float32)
  chex.assert_trees_all_close(gce, (1.0 - p_y**q) / q, rtol=1e-5, atol=1e-6)
  reference = losses.generalized_cross_entropy_reference(logits, labels, q=q)
  chex.assert_trees_all_close(reference, -np.log(p_y) * p_y**q * q, rtol=1e-5, atol=1e-6)


def test_gce_reference_gradient_is_q_times_gce_gradient():
  logits, labels = _random_batch(seed=2)
  q = 0.7
  # Per-sample losses are independent, so the gradient of the sum holds every per-sample gradient.
  grad_true = jax.grad(lambda x: losses.generalized_cross_entropy(x, labels, q).sum())(logits)
  grad_ref = jax.grad(lambda x: losses.generalized_cross_entropy_reference(x, labels, q).sum())(
      logits
  )
  chex.assert_trees_all_close(grad_ref, q * grad_true, rtol=1e-5, atol=1e-7)
  # Analytic: dGCE/dlogits = -p_y^q * (onehot(y) - softmax).
  logits64 = np.asarray(logits, np.float64)
  p = np.exp(logits64 - logits64.max(-1, keepdims=True))
  p /= p.sum(-1, keepdims=True)
  onehot = np.eye(_NUM_CLASSES)[np.asarray(labels)]
  p_y = (p * onehot).sum(-1, keepdims=True)
  chex.assert_trees_all_close(grad_true, -(p_y**q) * (onehot - p), rtol=1e-4, atol=1e-6)
  assert np.abs(np.asarray(grad_true)).max() > 1e-3  # The comparison is not between zeros.


@pytest.mark.parametrize(
    "loss_fn",
    [
        losses.cross_entropy,
        losses.generalized_cross_entropy,
        losses.generalized_cross_entropy_reference,
    ],
)
def test_jit_vmap_grad_agree_with_eager(loss_fn):
  stacks = [_random_batch(seed=s, batch=8) for s in range(3)]
  logits = jnp.stack([x for x, _ in stacks])  # (3, 8, C)
  labels = jnp.stack([y for _, y in stacks])  # (3, 8)
  eager = jnp.stack([loss_fn(x, y) for x, y in stacks])
  chex.assert_shape(eager, (3, 8))
  chex.assert_trees_all_close(jax.jit(loss_fn)(logits[0], labels[0]), eager[0], rtol=1e-6)
  chex.assert_trees_all_close(jax.vmap(loss_fn)(logits, labels), eager, rtol=1e-6)
  # Per-example gradients through vmap(grad) equal rows of the batched gradient.
  per_example = jax.vmap(jax.grad(lambda x, y: loss_fn(x[None], y[None])[0]))(logits[0], labels[0])
  batched = jax.grad(lambda x: loss_fn(x, labels[0]).sum())(logits[0])
  chex.assert_trees_all_close(per_example, batched, rtol=1e-6, atol=1e-7)


def test_q_can_be_traced():
  logits, labels = _random_batch(seed=3)
  qs = jnp.array([0.3, 0.7])
  swept = jax.jit(jax.vmap(losses.generalized_cross_entropy, in_axes=(None, None, 0)))(
      logits, labels, qs
  )
  for i, q in enumerate([0.3, 0.7]):
    chex.assert_trees_all_close(
        swept[i], losses.generalized_cross_entropy(logits, labels, q), rtol=1e-6
    )


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize(
    "loss_fn",
    [
        losses.cross_entropy,
        losses.generalized_cross_entropy,
        losses.generalized_cross_entropy_reference,
    ],
)
def test_extreme_logits_finite_values_and_gradients(loss_fn, dtype):
  logits, labels = _extreme_logits(dtype)
  values = jax.jit(loss_fn)(logits, labels)
  grads = jax.grad(lambda x: loss_fn(x, labels).sum())(logits)
  chex.assert_type(values, jnp.float32)
  chex.assert_type(grads, dtype)
  chex.assert_tree_all_finite((values, grads))
  assert float(values[0]) == pytest.approx(0.0, abs=1e-6)  # Confidently right: no loss.
  assert float(values[4]) > 0.0  # Wrong: positive loss (the reference form underflows at [1]).


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_extreme_logits_values(dtype):
  logits, labels = _extreme_logits(dtype)
  q = 0.7
  log_p_y = _np_log_p_y(np.asarray(logits, np.float32), labels)  # bfloat16 1e4 is 9984.
  ce = losses.cross_entropy(logits, labels)
  gce = losses.generalized_cross_entropy(logits, labels, q)
  chex.assert_trees_all_close(ce, -log_p_y, rtol=1e-6, atol=1e-6)
  assert float(ce[1]) > 1.9e4  # Confidently wrong: CE is the logit gap, no overflow.
  assert float(ce[3]) == pytest.approx(np.log(_NUM_CLASSES), rel=1e-6)  # Flat, despite 1e4.
  # GCE saturates at 1/q for a certain mistake instead of growing like CE.
  chex.assert_trees_all_close(gce[1:3], jnp.full((2,), 1.0 / q), rtol=1e-6)
  chex.assert_trees_all_close(gce, (1.0 - np.exp(q * log_p_y)) / q, rtol=1e-5, atol=1e-6)


def test_relative_difficulty_in_unit_interval_with_zero_gradient():
  rng = np.random.default_rng(4)
  loss_b = jnp.asarray(rng.exponential(size=32), jnp.float32).at[0].set(0.0)
  loss_d = jnp.asarray(rng.exponential(size=32), jnp.float32).at[0].set(0.0)
  w = losses.relative_difficulty(loss_b, loss_d)
  chex.assert_trees_all_close(w, loss_b / (loss_b + loss_d + 1e-8), rtol=1e-6)
  assert float(w[0]) == 0.0  # Both losses 0: eps keeps W finite.
  assert bool(jnp.all((w >= 0.0) & (w <= 1.0)))
  grads = jax.grad(lambda b, d: losses.relative_difficulty(b, d).sum(), argnums=(0, 1))(
      loss_b, loss_d
  )
  chex.assert_trees_all_equal(grads, (jnp.zeros(32), jnp.zeros(32)))


def test_weighted_cross_entropy_gradients():
  logits, labels = _random_batch(seed=5)
  weights = jnp.linspace(0.0, 2.0, 16)
  values = losses.weighted_cross_entropy(logits, labels, weights)
  chex.assert_trees_all_close(values, weights * -_np_log_p_y(logits, labels), rtol=1e-5)
  grad_logits, grad_weights = jax.grad(
      lambda x, w: losses.weighted_cross_entropy(x, labels, w).sum(), argnums=(0, 1)
  )(logits, weights)
  chex.assert_trees_all_equal(grad_weights, jnp.zeros(16))
  grad_ce = jax.grad(lambda x: losses.cross_entropy(x, labels).sum())(logits)
  chex.assert_trees_all_close(grad_logits, weights[:, None] * grad_ce, rtol=1e-6, atol=1e-8)
