"""Tests for jaxdebias.ema against a one-example-at-a-time NumPy re-implementation."""

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxdebias import ema as ema_lib

_NUM_CLASSES = 4


class _NumpyEMA:
  """The LfF EMA written plainly: a Python loop over examples, in float64."""

  def __init__(self, labels, alpha):
    self.labels = np.asarray(labels)
    self.alpha = alpha
    self.value = np.zeros(len(labels))
    self.seen = np.zeros(len(labels), bool)

  def update(self, index, loss):
    for i, v in zip(index, loss):
      if self.seen[i]:
        self.value[i] = self.alpha * self.value[i] + (1 - self.alpha) * v
      else:
        self.value[i] = v
        self.seen[i] = True

  def classwise_max(self, num_classes):
    return np.array([self.value[self.labels == c].max(initial=0.0) for c in range(num_classes)])

  def normalized(self, index, num_classes):
    class_max = self.classwise_max(num_classes)[self.labels[index]]
    return np.array([v / m if m > 0 else 0.0 for v, m in zip(self.value[index], class_max)])


def _batches(rng, num_batches, batch, high):
  """Index batches drawn with replacement from [0, high), so indices repeat inside batches."""
  return [
      (rng.integers(0, high, batch), rng.exponential(2.0, batch).astype(np.float32))
      for _ in range(num_batches)
  ]


def test_matches_sequential_numpy_under_jit():
  alpha = 0.7
  rng = np.random.default_rng(0)
  num_examples, batch = 40, 16
  # Class 3 has no examples; slots >= 30 are never visited.
  labels = rng.integers(0, 3, num_examples)
  batches = _batches(rng, num_batches=8, batch=batch, high=30)
  assert any(len(set(index)) < batch for index, _ in batches)  # Repeats inside a batch occur.

  update = jax.jit(chex.assert_max_traces(ema_lib.update, n=1))
  classwise_max = jax.jit(ema_lib.classwise_max, static_argnums=1)
  normalized = jax.jit(ema_lib.normalized, static_argnums=2)
  state = ema_lib.init(labels)
  expected = _NumpyEMA(labels, alpha)
  for index, loss in batches:
    state = update(state, jnp.asarray(index), jnp.asarray(loss), alpha)
    expected.update(index, loss)
    chex.assert_trees_all_close(state.value, expected.value, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_equal(state.seen, expected.seen)
    chex.assert_trees_all_close(
        classwise_max(state, _NUM_CLASSES), expected.classwise_max(_NUM_CLASSES), rtol=1e-6
    )
    chex.assert_trees_all_close(
        normalized(state, jnp.asarray(index), _NUM_CLASSES),
        expected.normalized(index, _NUM_CLASSES),
        rtol=1e-5,
        atol=1e-6,
    )
  assert not expected.seen[30:].any() and expected.seen[:30].sum() > 20
  assert float(classwise_max(state, _NUM_CLASSES)[3]) == 0.0  # Empty class.


def test_alpha_is_traced_and_vmappable():
  rng = np.random.default_rng(1)
  labels = rng.integers(0, _NUM_CLASSES, 20)
  batches = _batches(rng, num_batches=4, batch=12, high=20)
  alphas = [0.0, 0.3, 0.9, 1.0]

  update = jax.jit(chex.assert_max_traces(ema_lib.update, n=1))
  swept_update = jax.jit(jax.vmap(ema_lib.update, in_axes=(0, None, None, 0)))
  swept = jax.vmap(lambda _: ema_lib.init(labels))(jnp.arange(len(alphas)))
  for index, loss in batches:
    swept = swept_update(swept, jnp.asarray(index), jnp.asarray(loss), jnp.asarray(alphas))
  for i, alpha in enumerate(alphas):  # One trace serves every alpha.
    state = ema_lib.init(labels)
    expected = _NumpyEMA(labels, alpha)
    for index, loss in batches:
      state = update(state, jnp.asarray(index), jnp.asarray(loss), alpha)
      expected.update(index, loss)
    chex.assert_trees_all_close(state.value, expected.value, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(swept.value[i], expected.value, rtol=1e-5, atol=1e-6)


def test_repeated_index_in_one_batch_by_hand():
  state = ema_lib.init(jnp.array([0, 0, 1]))
  # Slot 0 gets 4, 2, 8 in order: 4 -> 0.5*4 + 0.5*2 = 3 -> 0.5*3 + 0.5*8 = 5.5.
  state = ema_lib.update(state, jnp.array([0, 0, 2, 0]), jnp.array([4.0, 2.0, 6.0, 8.0]), 0.5)
  chex.assert_trees_all_close(state.value, jnp.array([5.5, 0.0, 6.0]))
  chex.assert_trees_all_equal(state.seen, jnp.array([True, False, True]))
  # Visited slot 0 again, twice: 5.5 -> 0.5*5.5 + 0.5*1.5 = 3.5 -> 0.5*3.5 + 0.5*0.5 = 2.0.
  state = ema_lib.update(state, jnp.array([0, 0]), jnp.array([1.5, 0.5]), 0.5)
  chex.assert_trees_all_close(state.value, jnp.array([2.0, 0.0, 6.0]))
  # Class 0 maximum is slot 0 (2.0); the unvisited slot 1 normalises to 0.
  chex.assert_trees_all_close(ema_lib.classwise_max(state, 2), jnp.array([2.0, 6.0]))
  chex.assert_trees_all_close(
      ema_lib.normalized(state, jnp.array([0, 1, 2]), 2), jnp.array([1.0, 0.0, 1.0])
  )


def test_normalized_is_zero_not_nan_when_class_max_is_zero():
  state = ema_lib.init(jnp.array([0, 0, 1]))
  state = ema_lib.update(state, jnp.array([0, 2]), jnp.array([0.0, 3.0]), 0.7)
  chex.assert_trees_all_equal(
      ema_lib.normalized(state, jnp.array([0, 1, 2]), 2), jnp.array([0.0, 0.0, 1.0])
  )


def test_init_and_no_gradient_into_state():
  state = ema_lib.init(np.array([2, 0, 1]))
  chex.assert_type((state.value, state.seen, state.label), (jnp.float32, bool, jnp.int32))
  chex.assert_shape((state.value, state.seen, state.label), (3,))
  grad = jax.grad(lambda loss: ema_lib.update(state, jnp.array([0, 1]), loss, 0.7).value.sum())(
      jnp.array([1.0, 2.0])
  )
  chex.assert_trees_all_equal(grad, jnp.zeros(2))


def test_slots_holding_several_losses_match_separate_buffers():
  rng = np.random.default_rng(2)
  labels = rng.integers(0, 3, 30)
  batches = _batches(rng, num_batches=6, batch=12, high=25)
  stacked = ema_lib.init(labels, shape=(2,))
  separate = [ema_lib.init(labels), ema_lib.init(labels)]
  for index, loss in batches:
    losses = np.stack([loss, 3.0 * loss[::-1]], axis=1)
    stacked = ema_lib.update(stacked, jnp.asarray(index), jnp.asarray(losses), 0.6)
    separate = [
        ema_lib.update(s, jnp.asarray(index), jnp.asarray(losses[:, k]), 0.6)
        for k, s in enumerate(separate)
    ]
    for k, s in enumerate(separate):
      chex.assert_trees_all_close(stacked.value[:, k], s.value)
      chex.assert_trees_all_close(
          ema_lib.normalized(stacked, jnp.asarray(index), 3)[:, k],
          ema_lib.normalized(s, jnp.asarray(index), 3),
      )
  chex.assert_trees_all_equal(stacked.seen, separate[0].seen)
  chex.assert_shape(ema_lib.classwise_max(stacked, 3), (3, 2))
