"""Per-example loss EMA with class-wise normalisation, as used by Learning from Failure (pure).

One slot per training example. The first time a slot is seen it is set to the raw loss; afterwards
  slot <- alpha * slot + (1 - alpha) * loss.
LfF reads each slot divided by the class-wise maximum: the largest slot over all training examples
of that class, unvisited slots counting as 0, so both models' losses are on a comparable scale.

All functions are pure and jittable; `alpha` is a traced scalar (vmap over it to sweep values) and
`num_classes` is static.
"""

import flax
import jax
import jax.numpy as jnp


@flax.struct.dataclass
class SampleLossEMA:
  """Per-example loss EMA state, a pytree.

  Attributes:
    value: (N,) float32 EMA of each training example's loss; 0 until first seen.
    seen: (N,) bool, the slot has been updated at least once.
    label: (N,) int32 class label of each training example (for the class-wise maximum).
  """

  value: jax.Array
  seen: jax.Array
  label: jax.Array


def init(labels: jax.Array) -> SampleLossEMA:
  """Empty EMA for a training set with class labels `labels` (N,)."""
  labels = jnp.asarray(labels, jnp.int32)
  return SampleLossEMA(
      value=jnp.zeros(labels.shape, jnp.float32), seen=jnp.zeros(labels.shape, bool), label=labels
  )


def update(
    ema: SampleLossEMA, index: jax.Array, loss: jax.Array, alpha: float | jax.Array
) -> SampleLossEMA:
  """Folds a batch of losses into the EMA.

  An index that repeats inside the batch is applied sequentially in batch order, exactly as if the
  examples came one at a time. Vectorised in closed form: if slot i receives values v_1..v_k (in
  batch order) it ends at
    seen before:  alpha^k * old + sum_j (1 - alpha) * alpha^(k-j) * v_j
    first seen:   alpha^(k-1) * v_1 + sum_{j>=2} (1 - alpha) * alpha^(k-j) * v_j
  with each occurrence's rank j and count k found by an O(B^2) comparison (cheap for B ~ 256).
  The losses are treated as constants (no gradient flows into the EMA).

  Args:
    ema: current state with N slots.
    index: (B,) int training-example indices in [0, N).
    loss: (B,) per-example losses.
    alpha: scalar decay in [0, 1]; may be traced.

  Returns:
    The updated state.
  """
  loss = jax.lax.stop_gradient(loss).astype(jnp.float32)
  alpha = jnp.asarray(alpha, jnp.float32)
  same = index[:, None] == index[None, :]  # (B, B)
  earlier = jnp.tril(same, k=-1)
  rank = earlier.sum(axis=1)  # (B,) 0-based position among the occurrences of its index.
  count = same.sum(axis=1)  # (B,) occurrences of its index in the batch.
  seen = ema.seen[index]
  base = jnp.where(seen, alpha**count * ema.value[index], 0.0)
  steps_after = count - 1 - rank  # Later updates of this slot, each multiplying by alpha.
  coef = jnp.where(seen | (rank > 0), 1.0 - alpha, 1.0) * alpha**steps_after
  value = ema.value.at[index].set(base).at[index].add(coef * loss)
  return ema.replace(value=value, seen=ema.seen.at[index].set(True))


def classwise_max(ema: SampleLossEMA, num_classes: int) -> jax.Array:
  """(num_classes,) largest slot over all examples of each class; unvisited slots count as 0.

  Classes with no training example get 0.
  """
  value = jnp.where(ema.seen, ema.value, 0.0)
  class_max = jax.ops.segment_max(value, ema.label, num_segments=num_classes)
  return jnp.where(jnp.isneginf(class_max), 0.0, class_max)


def normalized(ema: SampleLossEMA, index: jax.Array, num_classes: int) -> jax.Array:
  """(B,) slots of `index` divided by the class-wise maximum of their class.

  For nonnegative losses the result lies in [0, 1]. Where the class maximum is 0 (every slot of
  the class is 0 or unvisited) the result is 0 instead of 0/0.
  """
  class_max = classwise_max(ema, num_classes)[ema.label[index]]
  safe_max = jnp.where(class_max > 0, class_max, 1.0)
  return jnp.where(class_max > 0, ema.value[index] / safe_max, 0.0)
