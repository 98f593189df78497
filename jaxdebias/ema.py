"""Per-example loss EMA with class-wise normalisation, as used by Learning from Failure (pure).

One slot per training example. The first time a slot is seen it is set to the raw loss; afterwards
  slot <- alpha * slot + (1 - alpha) * loss.
LfF reads each slot divided by the class-wise maximum: the largest slot over all training examples
of that class, unvisited slots counting as 0, so both models' losses are on a comparable scale.

A slot may hold several losses updated together (`init(labels, shape=(2,))`: LfF keeps f_B's and
f_D's losses side by side, so one gather, one scatter and one class-wise maximum serve both);
`difficulty_weights` turns such a pair into LfF's relative-difficulty weights (DisEnt's too).
All functions are pure and jittable; `alpha` is a traced scalar (vmap over it to sweep values) and
`num_classes` is static.
"""

import flax
import jax
import jax.numpy as jnp

from jaxdebias import losses


@flax.struct.dataclass
class SampleLossEMA:
  """Per-example loss EMA state, a pytree.

  Attributes:
    value: (N, *shape) float32 EMA of each training example's loss(es); 0 until first seen.
    seen: (N,) bool, the slot has been updated at least once.
    label: (N,) int32 class label of each training example (for the class-wise maximum).
  """

  value: jax.Array
  seen: jax.Array
  label: jax.Array


def init(labels: jax.Array, shape: tuple[int, ...] = ()) -> SampleLossEMA:
  """Empty EMA for training labels `labels` (N,); each slot holds `shape` losses."""
  labels = jnp.asarray(labels, jnp.int32)
  return SampleLossEMA(
      value=jnp.zeros((*labels.shape, *shape), jnp.float32),
      seen=jnp.zeros(labels.shape, bool),
      label=labels,
  )


def _rank_and_count(index: jax.Array) -> tuple[jax.Array, jax.Array]:
  """For each batch position: how many earlier positions hold the same index, and how many in all.

  O(B log B): a stable sort groups equal indices in batch order.
  """
  size = index.shape[0]
  order = jnp.argsort(index, stable=True)
  ordered = index[order]
  position = jnp.arange(size)
  starts_group = jnp.concatenate([jnp.ones((1,), bool), ordered[1:] != ordered[:-1]])
  group = jnp.cumsum(starts_group) - 1
  group_start = jax.lax.cummax(jnp.where(starts_group, position, 0))
  group_size = jax.ops.segment_sum(jnp.ones(size, jnp.int32), group, num_segments=size)
  unsort = lambda x: jnp.zeros(size, jnp.int32).at[order].set(x, unique_indices=True)
  return unsort(position - group_start), unsort(group_size[group])


def update(
    ema: SampleLossEMA, index: jax.Array, loss: jax.Array, alpha: float | jax.Array
) -> SampleLossEMA:
  """Folds a batch of losses into the EMA.

  An index that repeats inside the batch is applied sequentially in batch order, exactly as if the
  examples came one at a time. Vectorised in closed form: if slot i receives values v_1..v_k (in
  batch order) it ends at
    seen before:  alpha^k * old + sum_j (1 - alpha) * alpha^(k-j) * v_j
    first seen:   alpha^(k-1) * v_1 + sum_{j>=2} (1 - alpha) * alpha^(k-j) * v_j
  with each occurrence's rank j and count k found by one stable sort of the batch's indices.
  The losses are treated as constants (no gradient flows into the EMA).

  Args:
    ema: current state with N slots.
    index: (B,) int training-example indices in [0, N).
    loss: (B, *shape) per-example losses.
    alpha: scalar decay in [0, 1]; may be traced.

  Returns:
    The updated state.
  """
  loss = jax.lax.stop_gradient(loss).astype(jnp.float32)
  alpha = jnp.asarray(alpha, jnp.float32)
  # rank: 0-based position among the occurrences of its index; count: occurrences in the batch.
  rank, count = _rank_and_count(index)
  seen = ema.seen[index]
  trailing = lambda x: x.reshape(x.shape + (1,) * (loss.ndim - 1))  # (B,) -> (B, 1, ...)
  base = jnp.where(trailing(seen), trailing(alpha**count) * ema.value[index], 0.0)
  steps_after = count - 1 - rank  # Later updates of this slot, each multiplying by alpha.
  coef = jnp.where(seen | (rank > 0), 1.0 - alpha, 1.0) * alpha**steps_after
  value = ema.value.at[index].set(base).at[index].add(trailing(coef) * loss)
  return ema.replace(value=value, seen=ema.seen.at[index].set(True))


def classwise_max(ema: SampleLossEMA, num_classes: int) -> jax.Array:
  """(num_classes, *shape) largest slot over all examples of each class; unvisited slots count as 0.

  Classes with no training example get 0.
  """
  # Unvisited slots hold 0: set at init, written only together with `seen`.
  class_max = jax.ops.segment_max(ema.value, ema.label, num_segments=num_classes)
  return jnp.where(jnp.isneginf(class_max), 0.0, class_max)


def normalized(ema: SampleLossEMA, index: jax.Array, num_classes: int) -> jax.Array:
  """(B, *shape) slots of `index` divided by the class-wise maximum of their class.

  For nonnegative losses the result lies in [0, 1]. Where the class maximum is 0 (every slot of
  the class is 0 or unvisited) the result is 0 instead of 0/0.
  """
  class_max = classwise_max(ema, num_classes)[ema.label[index]]
  safe_max = jnp.where(class_max > 0, class_max, 1.0)
  return jnp.where(class_max > 0, ema.value[index] / safe_max, 0.0)


def difficulty_weights(
    ema: SampleLossEMA,
    index: jax.Array,
    loss_biased: jax.Array,
    loss_debiased: jax.Array,
    alpha: float | jax.Array,
    num_classes: int,
) -> tuple[SampleLossEMA, jax.Array]:
  """LfF's reweighting (DisEnt's Eq. 1): a batch's losses of both models into the two-slot EMA
  (`init(labels, shape=(2,))`: [:, 0] biased, [:, 1] debiased), then the relative difficulty W
  of their class-normalised slots (losses.relative_difficulty). Returns (the EMA, W (B,))."""
  ema = update(ema, index, jnp.stack([loss_biased, loss_debiased], axis=1), alpha)
  slots = normalized(ema, index, num_classes)
  return ema, losses.relative_difficulty(slots[:, 0], slots[:, 1])
