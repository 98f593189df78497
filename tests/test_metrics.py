"""Tests for jaxdebias.metrics on small hand-computed examples."""

import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdebias import metrics

# 2 classes x 3 bias values (non-square). Group (1, 2) is empty.
#   group (label, bias): examples, correct
#   (0, 0): 4, 3   aligned
#   (0, 1): 2, 1   conflicting
#   (0, 2): 1, 0   conflicting
#   (1, 0): 1, 1   conflicting
#   (1, 1): 2, 2   aligned
#   (1, 2): 0, 0   empty
_GROUPS = [((0, 0), 4, 3), ((0, 1), 2, 1), ((0, 2), 1, 0), ((1, 0), 1, 1), ((1, 1), 2, 2)]
_TOTAL = np.array([[4, 2, 1], [1, 2, 0]])
_CORRECT = np.array([[3, 1, 0], [1, 2, 0]])


def _examples():
  """(predictions, labels, bias_labels) realising _GROUPS, in shuffled order."""
  predictions, labels, bias = [], [], []
  for (label, b), n, n_correct in _GROUPS:
    labels += [label] * n
    bias += [b] * n
    predictions += [label] * n_correct + [1 - label] * (n - n_correct)
  order = np.random.default_rng(0).permutation(len(labels))
  return tuple(jnp.asarray(np.array(x)[order], jnp.int32) for x in (predictions, labels, bias))


def test_group_counts_by_hand_under_jit():
  count = jax.jit(metrics.group_counts, static_argnums=(3, 4))
  total, correct = count(*_examples(), 2, 3)
  chex.assert_type((total, correct), jnp.int32)
  chex.assert_trees_all_equal((total, correct), (_TOTAL, _CORRECT))


def test_group_counts_accumulate_over_batches_and_skip_masked_or_invalid():
  predictions, labels, bias = _examples()
  first = metrics.group_counts(predictions[:5], labels[:5], bias[:5], 2, 3)
  # Second batch padded with two extra examples: one masked out, one with bias outside the grid.
  pad = lambda x, v: jnp.concatenate([x[5:], jnp.array([v, 0])])
  mask = jnp.arange(7) != 5
  second = metrics.group_counts(
      pad(predictions, 0), pad(labels, 0), pad(bias, 0).at[6].set(3), 2, 3, mask=mask
  )
  total, correct = jax.tree.map(jnp.add, first, second)
  chex.assert_trees_all_equal((total, correct), (_TOTAL, _CORRECT))


def test_summarize_by_hand():
  summary = metrics.summarize(_TOTAL, _CORRECT)
  group = [3 / 4, 1 / 2, 0.0, 1.0, 1.0]  # Non-empty groups in _GROUPS order.
  assert summary["accuracy"] == pytest.approx(7 / 10)
  assert summary["unbiased_accuracy"] == pytest.approx(np.mean(group))
  assert summary["aligned_accuracy"] == pytest.approx((3 / 4 + 1.0) / 2)
  assert summary["conflicting_accuracy"] == pytest.approx((1 / 2 + 0.0 + 1.0) / 3)
  assert summary["worst_group_accuracy"] == 0.0
  assert summary["group_accuracy"] == [[0.75, 0.5, 0.0], [1.0, 1.0, None]]
  assert summary["num_groups"] == 5
  assert summary["num_examples"] == 10
  assert json.loads(json.dumps(summary)) == summary  # JSON round trip (no NaN).
  assert all(isinstance(summary[k], float) for k in ("accuracy", "unbiased_accuracy"))
  # 4 more examples of unknown bias (-1), 1 of them right: in accuracy, in no group.
  with_unknown = metrics.summarize(_TOTAL, _CORRECT, unknown_bias=(4, 1))
  assert with_unknown["accuracy"] == pytest.approx(8 / 14)
  assert (with_unknown["num_examples"], with_unknown["num_bias_unknown"]) == (14, 4)
  group_keys = set(summary) - {"accuracy", "num_examples", "num_bias_unknown"}
  assert {k: with_unknown[k] for k in group_keys} == {k: summary[k] for k in group_keys}
  only_unknown = metrics.summarize(np.zeros((2, 1), int), np.zeros((2, 1), int), (5, 4))
  assert (only_unknown["accuracy"], only_unknown["unbiased_accuracy"]) == (0.8, None)


def test_summarize_without_aligned_groups_and_bad_shapes():
  # All examples bias-conflicting: no aligned group to average over.
  summary = metrics.summarize(np.array([[0, 3], [2, 0]]), np.array([[0, 3], [1, 0]]))
  assert summary["aligned_accuracy"] is None
  assert summary["conflicting_accuracy"] == pytest.approx(0.75)
  assert summary["accuracy"] == pytest.approx(0.8)
  with pytest.raises(ValueError, match="matching"):
    metrics.summarize(np.zeros((2, 3)), np.zeros((3, 2)))


def test_bootstrap_unbiased_accuracy_is_summarize_on_each_resample():
  rng = np.random.default_rng(0)
  labels, bias = rng.integers(0, 3, 40), rng.integers(0, 2, 40)
  hits = rng.random((2, 40)) < 0.7  # Two models, scored on the same resamples.
  predictions = np.where(hits, labels, (labels + 1) % 3)
  found = metrics.bootstrap_unbiased_accuracy(hits, labels, bias, 3, 2, num_resamples=5, seed=3)
  assert found.shape == (2, 5)
  draws = np.random.default_rng(3).multinomial(40, np.full(40, 1 / 40), size=5)
  for r, counts in enumerate(draws):  # Resample r: example i drawn counts[i] times.
    index = np.repeat(np.arange(40), counts)
    for m in range(2):
      total, correct = metrics.group_counts(predictions[m][index], labels[index], bias[index], 3, 2)
      summary = metrics.summarize(total, correct)
      assert found[m, r] == pytest.approx(summary["unbiased_accuracy"])
  # Only the groups present cost memory: 10^6 possible groups score the same.
  many = metrics.bootstrap_unbiased_accuracy(hits, labels, bias, 1000, 1000, 5, seed=3)
  chex.assert_trees_all_equal(many, found)
  perfect = metrics.bootstrap_unbiased_accuracy(np.ones((1, 40), bool), labels, bias, 3, 2)
  chex.assert_trees_all_close(perfect, np.ones((1, 1000)))
  with pytest.raises(ValueError, match=r"bias labels in \[0, 2\)"):
    metrics.bootstrap_unbiased_accuracy(hits, labels, bias - 1, 3, 2)


def test_format_table():
  debiased = metrics.summarize(_TOTAL, _CORRECT)
  biased = dict(debiased, aligned_accuracy=None)
  table = metrics.format_table({"debiased": debiased, "biased": biased})
  lines = table.splitlines()
  assert len(lines) == 4  # Header, two models, legend.
  header = ["model", "unbiased", "aligned", "conflicting", "worst-group", "accuracy"]
  assert lines[0].split() == header
  assert lines[1].split() == ["debiased", "65.00", "87.50", "50.00", "0.00", "70.00"]
  assert lines[2].split() == ["biased", "65.00", "n/a", "50.00", "0.00", "70.00"]
  assert len({len(line) for line in lines[:3]}) == 1  # Columns aligned.
  assert "group" in lines[3] and "%" in lines[3]


def test_average_precision_by_hand_with_and_without_ties():
  # Ranks: + - + -: precision 1 at recall 1/2, 2/3 at recall 1.
  ap = metrics.average_precision(np.array([0.9, 0.8, 0.7, 0.6]), np.array([1, 0, 1, 0]))
  assert ap == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
  # Tied top pair (one positive): precision 1/2 at recall 1/2, then 2/3 at recall 1.
  ap = metrics.average_precision(np.array([0.9, 0.9, 0.1]), np.array([1, 0, 1]))
  assert ap == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)


def test_calibrated_threshold_predicts_as_many_positives_as_there_are():
  scores, targets = np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])
  assert metrics.calibrated_threshold(scores, targets) == 0.4
  assert np.sum(scores >= 0.4) == targets.sum()


def test_deo_and_bias_amplification_by_hand():
  groups = np.array([0, 0, 0, 0, 1, 1, 1, 1])
  targets = np.array([1, 1, 1, 0, 0, 0, 0, 1])  # P(t=1|g=0) = .75, P(t=1|g=1) = .25, P(t=1) = .5
  predicted = np.array([1, 1, 0, 1, 0, 0, 0, 1])
  # FNR: g=0 misses 1 of 3 positives, g=1 none of 1.
  assert metrics.difference_in_equal_opportunity(predicted, targets, groups) == pytest.approx(1 / 3)
  # P(t_hat=1|g=0) = .75 (no change), P(t_hat=1|g=1) = .25: no amplification.
  assert metrics.bias_amplification(predicted, targets, groups) == pytest.approx(0.0)
  amplified = np.array([1, 1, 1, 1, 0, 0, 0, 0])  # .75 -> 1 and .25 -> 0: +.25 each side.
  assert metrics.bias_amplification(amplified, targets, groups) == pytest.approx(0.25)


def test_score_kl_is_zero_for_equal_groups_and_symmetric_otherwise():
  rng = np.random.default_rng(0)
  scores = rng.uniform(size=400)
  targets = rng.integers(0, 2, 400)
  groups = np.tile([0, 1], 200)
  same = np.repeat(scores[:200], 2)  # Each score once in each group,
  assert metrics.score_kl(same, np.repeat(targets[:200], 2), groups) == pytest.approx(0, abs=1e-9)
  shifted = np.clip(scores + 0.3 * groups, 0, 1)
  kl = metrics.score_kl(shifted, targets, groups)
  assert kl > 0.5
  assert metrics.score_kl(shifted, targets, 1 - groups) == pytest.approx(kl)


def test_bootstrap_fairness_is_seeded_and_centred_on_the_full_sample_value():
  rng = np.random.default_rng(1)
  groups, targets = rng.integers(0, 2, 2000), rng.integers(0, 2, 2000)
  scores = np.clip(0.5 * targets + 0.2 * groups + 0.3 * rng.uniform(size=2000), 0, 1)
  full = metrics.fairness(scores, targets, groups, threshold=0.6)
  boot = metrics.bootstrap_fairness(scores, targets, groups, 0.6, num_resamples=100, seed=3)
  assert boot == metrics.bootstrap_fairness(scores, targets, groups, 0.6, num_resamples=100, seed=3)
  for name, value in full.items():
    assert abs(boot[name]["median"] - value) < 3 * boot[name]["std"] + 1e-9, name
    assert boot[name]["std"] > 0, name


def test_f1_optimal_threshold_by_hand():
  scores = np.array([0.9, 0.8, 0.7, 0.6, 0.2])
  targets = np.array([1, 1, 0, 1, 0])
  # Thresholds 0.9 / 0.8 / 0.7 / 0.6 / 0.2 give F1 = 2/4, 4/5, 4/6, 6/7, 6/8: best at 0.6.
  assert metrics.f1_optimal_threshold(scores, targets) == 0.6


def test_auroc_and_top_k_precision_against_hand_computed_values():
  # Positives 0.9, 0.4; negatives 0.8, 0.1, 0.4: 0.9 beats all three, 0.4 beats 0.1 and ties
  # 0.4: 4.5 of 6 pairs.
  scores = np.array([0.9, 0.8, 0.4, 0.1, 0.4])
  positive = np.array([True, False, True, False, False])
  assert metrics.auroc(scores, positive) == pytest.approx(4.5 / 6)
  assert metrics.auroc(-scores, ~positive) == pytest.approx(4.5 / 6)
  # labels != bias labels marks positives; k = 2 highest losses: 0.9 (conflicting), 0.8 (not).
  labels, bias = np.array([1, 0, 2, 0, 1]), np.array([0, 0, 1, 0, 1])
  got = metrics.separation(scores, labels, bias)
  assert got == {"auroc": pytest.approx(4.5 / 6), "top_k_precision": 0.5}
  with pytest.raises(ValueError, match="both positive and negative"):
    metrics.auroc(scores, np.ones(5, bool))


def test_pseudo_group_quality_against_hand_computed_values():
  labels = np.array([0, 0, 1, 1, 2, 2])
  bias = np.array([0, 1, 1, 2, 2, 0])  # Conflicting: examples 1, 3, 5.
  pseudo = np.array([1, 2, 1, 2, 0, 2])  # Flagged: 0, 1, 3, 4; 3 has its true bias label.
  got = metrics.pseudo_group_quality(pseudo, labels, bias)
  assert got == {
      "flagged": pytest.approx(4 / 6),
      "precision": pytest.approx(2 / 4),  # 1 and 3 of the flagged 0, 1, 3, 4.
      "recall": pytest.approx(2 / 3),  # 1 and 3 of 1, 3, 5.
      "right_group": pytest.approx(1 / 3),  # 3 only (1 got 2, 5 was not flagged).
  }
