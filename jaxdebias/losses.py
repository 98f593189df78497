"""Per-sample losses for debiased training (pure, jittable, vmap- and grad-able).

Every function returns one loss per example, shape `(...,)` for logits `(..., C)` and integer labels
`(...,)`, computed in float32 (or float64 for float64 logits) from `log_softmax`, so bfloat16 logits
and extreme logits (±1e4, confidently wrong predictions) give finite values and gradients.

  cross_entropy                        CE = -log p_y
  generalized_cross_entropy            GCE = (1 - p_y^q) / q           (Zhang & Sabuncu, 2018)
  generalized_cross_entropy_reference  q * p_y^q * CE, p_y^q held constant: the LfF reference form
  relative_difficulty                  W = l_B / (l_B + l_D + eps), held constant
  weighted_cross_entropy               w * CE, w held constant

Usage (one LfF step, with EMA-normalised losses `l_b`, `l_d` from `jaxdebias.ema`):

  from jaxdebias import losses
  loss_b = losses.generalized_cross_entropy(logits_b, labels, q=0.7)
  w = losses.relative_difficulty(l_b, l_d)
  loss_d = losses.weighted_cross_entropy(logits_d, labels, w)
  total = loss_b.mean() + loss_d.mean()
"""

import jax
import jax.numpy as jnp


def _log_prob_of_label(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """log p_y from logits (..., C) and labels (...,), in at least float32.

  Labels outside [0, C) give NaN, so a bad label shows up in the loss instead of being hidden.
  """
  dtype = jnp.promote_types(logits.dtype, jnp.float32)
  log_p = jax.nn.log_softmax(logits.astype(dtype), axis=-1)
  return jnp.take_along_axis(log_p, labels[..., None], axis=-1)[..., 0]


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Softmax cross-entropy CE = -log p_y, per example.

  Same value as `optax.softmax_cross_entropy_with_integer_labels`, but always computed in (at
  least) float32, whatever the logits' dtype.

  Args:
    logits: (..., C) float logits.
    labels: (...,) int class labels in [0, C).

  Returns:
    (...,) float32 losses, >= 0.
  """
  return -_log_prob_of_label(logits, labels)


def generalized_cross_entropy(
    logits: jax.Array, labels: jax.Array, q: float | jax.Array = 0.7
) -> jax.Array:
  """Generalized cross-entropy GCE = (1 - p_y^q) / q, per example.

  Computed as -expm1(q * log p_y) / q: exact near p_y = 1 (where 1 - p_y^q would cancel) and
  bounded by 1/q when p_y underflows. Its gradient, -p_y^q * d(log p_y), weights each example by
  its confidence p_y^q, so the model fits the easy (bias-aligned) examples first: the biased model
  of LfF. q -> 0 recovers CE; q = 1 gives the MAE-like 1 - p_y. `q` may be a traced scalar.

  Args:
    logits: (..., C) float logits.
    labels: (...,) int class labels in [0, C).
    q: exponent in (0, 1].

  Returns:
    (...,) float32 losses in [0, 1/q].
  """
  return -jnp.expm1(q * _log_prob_of_label(logits, labels)) / q


def generalized_cross_entropy_reference(
    logits: jax.Array, labels: jax.Array, q: float | jax.Array = 0.7
) -> jax.Array:
  """GCE in the form of the LfF reference code: CE * stop_gradient(p_y^q) * q, per example.

  Its gradient, q * p_y^q * d(CE) = -q * p_y^q * d(log p_y), is exactly q times the gradient of
  `generalized_cross_entropy`, so training with it equals training the true GCE with the learning
  rate scaled by q (for SGD; Adam is almost invariant to the scale). Its VALUE is not the GCE value
  (it is unbounded, like CE): use it to reproduce the reference optimisation exactly, and
  `generalized_cross_entropy` to report or compare GCE values.

  Args:
    logits: (..., C) float logits.
    labels: (...,) int class labels in [0, C).
    q: exponent in (0, 1].

  Returns:
    (...,) float32 losses, >= 0.
  """
  log_p = _log_prob_of_label(logits, labels)
  return -log_p * jax.lax.stop_gradient(jnp.exp(q * log_p)) * q


def relative_difficulty(
    loss_biased: jax.Array, loss_debiased: jax.Array, eps: float = 1e-8
) -> jax.Array:
  """LfF relative difficulty W = l_B / (l_B + l_D + eps), a constant per-example weight.

  W is near 1 where the biased model fails but the debiased one does not (bias-conflicting
  examples) and near 0 where the biased model fits easily (bias-aligned examples). It is wrapped in
  `stop_gradient`: it reweights the debiased loss and must not be optimised itself.

  Args:
    loss_biased: (B,) nonnegative losses of the biased model (in LfF: its normalised loss EMA).
    loss_debiased: (B,) nonnegative losses of the debiased model, same shape.
    eps: keeps W finite (= 0) when both losses are 0.

  Returns:
    (B,) weights in [0, 1], with zero gradient.
  """
  return jax.lax.stop_gradient(loss_biased / (loss_biased + loss_debiased + eps))


def weighted_cross_entropy(logits: jax.Array, labels: jax.Array, weights: jax.Array) -> jax.Array:
  """Per-example cross-entropy scaled by constant weights: stop_gradient(w) * CE.

  The weights get no gradient, so a weight computed from the model (e.g. `relative_difficulty`)
  only rescales each example's gradient.

  Args:
    logits: (..., C) float logits.
    labels: (...,) int class labels in [0, C).
    weights: (...,) per-example weights (broadcastable to labels).

  Returns:
    (...,) float32 weighted losses.
  """
  return jax.lax.stop_gradient(weights) * cross_entropy(logits, labels)
