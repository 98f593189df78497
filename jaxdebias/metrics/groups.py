"""Group accuracies for biased-data evaluation.

Test examples fall into (label, bias) groups. `group_counts` counts examples and correct predictions
per group on device (jittable, so evaluation accumulates counts batch by batch); `summarize` turns
the counts into named metrics on the host; `format_table` prints them.

Convention: bias value k is the one aligned with class k, so group (y, b) is bias-aligned when
b == y and bias-conflicting otherwise (the label x bias grid need not be square).
"""

from collections.abc import Mapping
import math

import jax
import jax.numpy as jnp
import numpy as np

# Columns of `format_table`: (header, key of `summarize`).
_COLUMNS = (
    ("unbiased", "unbiased_accuracy"),
    ("aligned", "aligned_accuracy"),
    ("conflicting", "conflicting_accuracy"),
    ("worst-group", "worst_group_accuracy"),
    ("accuracy", "accuracy"),
)
_LEGEND = (
    "unbiased: mean accuracy over non-empty (label, bias) groups; aligned / conflicting: the same"
    " over groups with bias == / != label; worst-group: lowest group accuracy; accuracy: over all"
    " examples; in %."
)

# Written into results.json next to the numbers, so a reader of the file knows what they mean.
DEFINITIONS = {
    "accuracy": "correct / examples over the whole split (sample mean)",
    "groups": (
        "the group metrics count the examples whose bias label is known; num_bias_unknown"
        " examples (bias label -1) count in accuracy only"
    ),
    "unbiased_accuracy": "unweighted mean of the accuracies of the non-empty (label, bias) groups",
    "aligned_accuracy": "the same group mean over the groups with bias == label",
    "conflicting_accuracy": "the same group mean over the groups with bias != label",
    "worst_group_accuracy": "lowest accuracy of a non-empty group",
    "group_accuracy": "accuracy per group [label][bias]; null for an empty group",
    "units": "fractions in [0, 1]; printed tables show percent",
}


def group_counts(
    predictions: jax.Array,
    labels: jax.Array,
    bias_labels: jax.Array,
    num_classes: int,
    num_bias_classes: int,
    mask: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
  """Per-group example and correct-prediction counts.

  Examples whose label or bias label lies outside the grid, or whose `mask` is False (padding in
  the last batch), are not counted; `total.sum()` says how many were.

  Args:
    predictions: (B,) int predicted classes.
    labels: (B,) int class labels in [0, num_classes).
    bias_labels: (B,) int bias labels in [0, num_bias_classes).
    num_classes: static number of classes.
    num_bias_classes: static number of bias values.
    mask: optional (B,) bool, True for real examples.

  Returns:
    (total, correct), each (num_classes, num_bias_classes) int32, indexed [label, bias].
  """
  valid = (labels >= 0) & (labels < num_classes)
  valid &= (bias_labels >= 0) & (bias_labels < num_bias_classes)
  if mask is not None:
    valid &= mask
  num_groups = num_classes * num_bias_classes
  # Out-of-range segment ids are dropped by segment_sum.
  group = jnp.where(valid, labels * num_bias_classes + bias_labels, num_groups)
  ones = jnp.ones(labels.shape, jnp.int32)
  hits = (predictions == labels).astype(jnp.int32)
  total = jax.ops.segment_sum(ones, group, num_segments=num_groups)
  correct = jax.ops.segment_sum(hits, group, num_segments=num_groups)
  shape = (num_classes, num_bias_classes)
  return total.reshape(shape), correct.reshape(shape)


def _group_mean(accuracy: np.ndarray, selected: np.ndarray) -> float | None:
  """Unweighted mean of the selected group accuracies; None when no group is selected."""
  return float(accuracy[selected].mean()) if selected.any() else None


def summarize(
    total: np.ndarray, correct: np.ndarray, unknown_bias: tuple[int, int] = (0, 0)
) -> dict:
  """Named metrics from per-group counts (host-side NumPy), and (examples, correct ones) of
  `unknown_bias`: the examples whose bias label is unknown (-1), in no group.

  With acc[y, b] = correct[y, b] / total[y, b] over the non-empty groups (total > 0):
    accuracy:             correct / examples, the sample mean over all examples.
    unbiased_accuracy:    mean of acc over all non-empty groups (group mean).
    aligned_accuracy:     mean of acc over non-empty groups with b == y.
    conflicting_accuracy: mean of acc over non-empty groups with b != y.
    worst_group_accuracy: min of acc over non-empty groups.
    group_accuracy:       acc as nested lists [y][b], None for empty groups.
    num_groups:           number of non-empty groups.
    num_examples:         sum(total) + the examples of unknown bias.
    num_bias_unknown:     the examples of unknown bias.
  Accuracies are Python floats in [0, 1] (not percent); a metric with no group to average over is
  None, so the dict is JSON-serialisable.

  Args:
    total: (num_classes, num_bias_classes) example counts from `group_counts`.
    correct: same shape, correct-prediction counts.

  Returns:
    The metrics dict.
  """
  total = np.asarray(total, np.int64)
  correct = np.asarray(correct, np.int64)
  if total.ndim != 2 or total.shape != correct.shape:
    raise ValueError(
        f"total and correct must be matching (num_classes, num_bias_classes) arrays, got shapes"
        f" {total.shape} and {correct.shape}."
    )
  nonempty = total > 0
  accuracy = np.where(nonempty, correct / np.maximum(total, 1), np.nan)
  label, bias = np.indices(total.shape)
  num_unknown, unknown_correct = (int(n) for n in unknown_bias)
  num_examples = int(total.sum()) + num_unknown
  return {
      "accuracy": float((correct.sum() + unknown_correct) / num_examples) if num_examples else None,
      "unbiased_accuracy": _group_mean(accuracy, nonempty),
      "aligned_accuracy": _group_mean(accuracy, nonempty & (label == bias)),
      "conflicting_accuracy": _group_mean(accuracy, nonempty & (label != bias)),
      "worst_group_accuracy": float(accuracy[nonempty].min()) if nonempty.any() else None,
      "group_accuracy": [
          [None if math.isnan(a) else float(a) for a in row] for row in accuracy.tolist()
      ],
      "num_groups": int(nonempty.sum()),
      "num_examples": num_examples,
      "num_bias_unknown": num_unknown,
  }


def bootstrap_unbiased_accuracy(
    hits: np.ndarray,
    labels: np.ndarray,
    bias_labels: np.ndarray,
    num_classes: int,
    num_bias_classes: int,
    num_resamples: int = 1000,
    seed: int = 0,
) -> np.ndarray:
  """`summarize`'s unbiased accuracy over bootstrap resamples of the examples (host NumPy).

  Every row of `hits` (a model, or a seed of one) is scored on the same resamples.

  Args:
    hits: (num_models, N) bool, whether each model classifies each example right.
    labels: (N,) int class labels in [0, num_classes).
    bias_labels: (N,) int bias labels in [0, num_bias_classes).
    num_classes: number of classes.
    num_bias_classes: number of bias values.
    num_resamples: how many resamples (N examples drawn with replacement each).
    seed: the resamples' seed.

  Returns:
    (num_models, num_resamples) unbiased accuracies in [0, 1].
  """
  labels, bias_labels = np.asarray(labels), np.asarray(bias_labels)
  if not ((0 <= labels) & (labels < num_classes) & (0 <= bias_labels)).all() or (
      bias_labels >= num_bias_classes
  ).any():
    raise ValueError(
        f"labels must lie in [0, {num_classes}) and bias labels in [0, {num_bias_classes})."
    )
  groups = labels.astype(np.int64) * num_bias_classes + bias_labels
  # The examples group by group: only the groups present take memory (resamples x N in all).
  order = np.argsort(groups, kind="stable")
  starts = np.unique(groups[order], return_index=True)[1]
  n = len(labels)
  draws = np.random.default_rng(seed).multinomial(n, np.full(n, 1 / n), size=num_resamples)
  draws = draws[:, order]  # (resamples, N): how often each example is drawn, in group order.
  per_group = lambda counts: np.add.reduceat(counts, starts, axis=1)
  total = per_group(draws)  # (resamples, groups present): examples drawn from each.
  correct = np.stack([per_group(draws * row[order]) for row in np.asarray(hits, bool)])
  accuracy = np.where(total > 0, correct / np.maximum(total, 1), np.nan)
  return np.nanmean(accuracy, axis=-1)


def format_table(results: Mapping[str, Mapping]) -> str:
  """Aligned text table of `summarize` outputs, one row per model, accuracies in percent.

  Args:
    results: model name (e.g. 'debiased', 'biased') -> `summarize` dict.

  Returns:
    The table followed by a one-line legend; a missing or None metric prints as 'n/a'.
  """
  name_width = max([len("model"), *map(len, results)])
  header = "model".ljust(name_width) + "".join(f"  {h:>11}" for h, _ in _COLUMNS)
  rows = [header]
  for name, metrics in results.items():
    cells = []
    for _, key in _COLUMNS:
      value = metrics.get(key)
      cells.append(f"  {'n/a' if value is None else f'{100 * value:.2f}':>11}")
    rows.append(name.ljust(name_width) + "".join(cells))
  return "\n".join([*rows, _LEGEND])


def batch_accuracy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Fraction of a batch whose argmax logit is its label (a training-time metric)."""
  return jnp.mean(jnp.argmax(logits, -1) == labels)
