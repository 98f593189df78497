"""How well a bias model finds the bias-conflicting examples (AUROC, top-k precision), and how
well pseudo bias labels match the true ones. Diagnostics: they read bias labels."""

import numpy as np

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
