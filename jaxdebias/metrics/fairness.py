"""Fairness metrics of a binary target classifier with a binary protected attribute (the latent
de-biasing paper's protocol: AP, DEO, BA, KL, with bootstrap), and the thresholds they use."""

import numpy as np

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
