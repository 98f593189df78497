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


def test_summarize_without_aligned_groups_and_bad_shapes():
  # All examples bias-conflicting: no aligned group to average over.
  summary = metrics.summarize(np.array([[0, 3], [2, 0]]), np.array([[0, 3], [1, 0]]))
  assert summary["aligned_accuracy"] is None
  assert summary["conflicting_accuracy"] == pytest.approx(0.75)
  assert summary["accuracy"] == pytest.approx(0.8)
  with pytest.raises(ValueError, match="matching"):
    metrics.summarize(np.zeros((2, 3)), np.zeros((3, 2)))


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
