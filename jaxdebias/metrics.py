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


def summarize(total: np.ndarray, correct: np.ndarray) -> dict:
  """Named metrics from per-group counts (host-side NumPy).

  With acc[y, b] = correct[y, b] / total[y, b] over the non-empty groups (total > 0):
    accuracy:             sum(correct) / sum(total), the sample mean over all examples.
    unbiased_accuracy:    mean of acc over all non-empty groups (group mean).
    aligned_accuracy:     mean of acc over non-empty groups with b == y.
    conflicting_accuracy: mean of acc over non-empty groups with b != y.
    worst_group_accuracy: min of acc over non-empty groups.
    group_accuracy:       acc as nested lists [y][b], None for empty groups.
    num_groups:           number of non-empty groups.
    num_examples:         sum(total).
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
  num_examples = int(total.sum())
  return {
      "accuracy": float(correct.sum() / num_examples) if num_examples else None,
      "unbiased_accuracy": _group_mean(accuracy, nonempty),
      "aligned_accuracy": _group_mean(accuracy, nonempty & (label == bias)),
      "conflicting_accuracy": _group_mean(accuracy, nonempty & (label != bias)),
      "worst_group_accuracy": float(accuracy[nonempty].min()) if nonempty.any() else None,
      "group_accuracy": [
          [None if math.isnan(a) else float(a) for a in row] for row in accuracy.tolist()
      ],
      "num_groups": int(nonempty.sum()),
      "num_examples": num_examples,
  }


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


# Fairness metrics of a binary target classifier with a binary protected attribute (the latent
# de-biasing paper's protocol). Host-side NumPy on the whole test split: scores (n,) in [0, 1]
# (the classifier's probability of the target), targets (n,) and groups (n,) in {0, 1}.
FAIRNESS_DEFINITIONS = {
    "ap": "average precision of the target scores: sum over thresholds of (R_k - R_{k-1}) P_k",
    "deo": (
        "|FNR(g=0) - FNR(g=1)| of the thresholded scores; the threshold is calibrated on"
        " validation so that as many examples are predicted positive as are positive"
    ),
    "ba": (
        "bias amplification, attribute -> task: 1/2 sum_g sign(P(t=1|g) - P(t=1))"
        " (P(t_hat=1|g) - P(t=1|g)), with t_hat the thresholded scores (not balanced accuracy)"
    ),
    "kl": (
        "sum over t in {0, 1} of KL(h_0 || h_1) + KL(h_1 || h_0), h_g the histogram of the"
        " scores of group g among examples with target t: 50 bins on [0, 1], smoothed with a"
        " Gaussian of 1 bin, plus 1e-6, normalised"
    ),
    "bootstrap": "median and std over resamples of the test examples with replacement",
}


def average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
  """Area under the precision-recall curve as a step sum over distinct score thresholds."""
  order = np.argsort(-scores, kind="stable")
  scores, targets = scores[order], targets[order]
  last = np.r_[np.nonzero(np.diff(scores))[0], len(scores) - 1]  # End of each tie block.
  true_positives = np.cumsum(targets)[last]
  precision = true_positives / (last + 1)
  recall = true_positives / max(targets.sum(), 1)
  return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def calibrated_threshold(scores: np.ndarray, targets: np.ndarray) -> float:
  """The threshold at which as many validation examples score >= it as are positive."""
  num_positive = int(np.sum(targets))
  if num_positive == 0:
    return float("inf")
  return float(np.sort(scores)[::-1][num_positive - 1])


def f1_optimal_threshold(scores: np.ndarray, targets: np.ndarray) -> float:
  """The score threshold (predict 1 when score >= it) of highest F1 on these examples."""
  order = np.argsort(-scores, kind="stable")
  scores, targets = scores[order], targets[order]
  last = np.r_[np.nonzero(np.diff(scores))[0], len(scores) - 1]  # End of each tie block.
  true_positives = np.cumsum(targets)[last]
  f1 = 2 * true_positives / (last + 1 + max(targets.sum(), 1))
  return float(scores[last[np.argmax(f1)]])


def difference_in_equal_opportunity(predicted, targets, groups) -> float:
  """|FNR(g=0) - FNR(g=1)| of hard predictions."""
  fnr = [np.mean(predicted[(groups == g) & (targets == 1)] == 0) for g in (0, 1)]
  return float(abs(fnr[0] - fnr[1]))


def bias_amplification(predicted, targets, groups) -> float:
  """Attribute -> task bias amplification of hard predictions (Wang & Russakovsky 2021)."""
  base = np.mean(targets)
  total = 0.0
  for g in (0, 1):
    in_group = groups == g
    rate = np.mean(targets[in_group])
    total += np.sign(rate - base) * (np.mean(predicted[in_group]) - rate)
  return float(total / 2)


def _smoothed_histogram(scores: np.ndarray, bins: int = 50) -> np.ndarray:
  hist = np.histogram(scores, bins=bins, range=(0.0, 1.0))[0].astype(np.float64)
  kernel = np.exp(-0.5 * np.arange(-3, 4) ** 2)
  hist = np.convolve(hist, kernel / kernel.sum(), mode="same") + 1e-6
  return hist / hist.sum()


def score_kl(scores, targets, groups) -> float:
  """Symmetric KL between the two groups' score histograms, summed over positives and negatives."""
  total = 0.0
  for t in (0, 1):
    p, q = (_smoothed_histogram(scores[(targets == t) & (groups == g)]) for g in (0, 1))
    total += np.sum(p * np.log(p / q)) + np.sum(q * np.log(q / p))
  return float(total)


def fairness(scores, targets, groups, threshold: float) -> dict[str, float]:
  """AP, DEO, BA and KL of one classifier on one split (see FAIRNESS_DEFINITIONS)."""
  predicted = (scores >= threshold).astype(np.int32)
  return {
      "ap": average_precision(scores, targets),
      "deo": difference_in_equal_opportunity(predicted, targets, groups),
      "ba": bias_amplification(predicted, targets, groups),
      "kl": score_kl(scores, targets, groups),
  }


def bootstrap_fairness(
    scores, targets, groups, threshold: float, num_resamples: int = 500, seed: int = 0
) -> dict[str, dict[str, float]]:
  """`fairness` over resamples of the examples: {metric: {'median': .., 'std': ..}}."""
  scores, targets, groups = (np.asarray(a) for a in (scores, targets, groups))
  rng = np.random.default_rng(seed)
  samples = []
  for _ in range(num_resamples):
    index = rng.integers(0, len(scores), len(scores))
    samples.append(fairness(scores[index], targets[index], groups[index], threshold))
  return {
      name: {
          "median": float(np.median([s[name] for s in samples])),
          "std": float(np.std([s[name] for s in samples])),
      }
      for name in samples[0]
  }


# How well a bias model's per-example signal (its loss) finds the bias-conflicting examples.
SEPARATION_DEFINITIONS = {
    "auroc": (
        "area under the ROC curve of the per-example loss as a score for 'is bias-conflicting'"
        " (label != bias label): the probability that a random conflicting example has a higher"
        " loss than a random aligned one, ties counting half"
    ),
    "top_k_precision": (
        "of the k examples with the highest loss, k = the number of conflicting examples, the"
        " fraction that are conflicting"
    ),
}


def auroc(scores, positive) -> float:
  """AUROC of `scores` for the boolean `positive` (Mann-Whitney U with average ranks for ties)."""
  scores, positive = np.asarray(scores, np.float64), np.asarray(positive, bool)
  num_positive, num_negative = positive.sum(), (~positive).sum()
  if not num_positive or not num_negative:
    raise ValueError("AUROC needs both positive and negative examples.")
  _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
  average_rank = np.cumsum(counts) - (counts - 1) / 2  # 1-based rank of each distinct score.
  rank_sum = average_rank[inverse][positive].sum()
  return float((rank_sum - num_positive * (num_positive + 1) / 2) / (num_positive * num_negative))


PSEUDO_GROUP_DEFINITIONS = {
    "flagged": "fraction of the examples given a pseudo bias label other than their class",
    "precision": "of the flagged examples, the fraction that are bias-conflicting",
    "recall": "of the bias-conflicting examples, the fraction that are flagged",
    "right_group": (
        "of the bias-conflicting examples, the fraction whose pseudo bias label is their bias label"
    ),
}


def pseudo_group_quality(pseudo_bias, labels, bias_labels) -> dict[str, float]:
  """How pseudo bias labels (one per example; == label: 'aligned') match the true ones
  (PSEUDO_GROUP_DEFINITIONS)."""
  pseudo_bias, labels, bias_labels = map(np.asarray, (pseudo_bias, labels, bias_labels))
  flagged, conflicting = pseudo_bias != labels, labels != bias_labels
  return {
      "flagged": float(flagged.mean()),
      "precision": float(conflicting[flagged].mean()) if flagged.any() else float("nan"),
      "recall": float(flagged[conflicting].mean()),
      "right_group": float((pseudo_bias == bias_labels)[conflicting].mean()),
  }


def separation(losses, labels, bias_labels) -> dict[str, float]:
  """AUROC and top-k precision of per-example `losses` for the conflicting examples."""
  losses = np.asarray(losses)
  conflicting = np.asarray(labels) != np.asarray(bias_labels)
  k = int(conflicting.sum())
  top = np.argsort(-losses, kind="stable")[:k]
  return {"auroc": auroc(losses, conflicting), "top_k_precision": float(conflicting[top].mean())}
