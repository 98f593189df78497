"""Metrics with named definitions: group accuracies (`groups`), fairness of a binary classifier
(`fairness`), and how well a bias signal finds the bias-conflicting examples (`separation`).

Pure host or device functions; importable without the trainer.
"""

from jaxdebias.metrics.fairness import (
    FAIRNESS_DEFINITIONS,
    average_precision,
    bias_amplification,
    bootstrap_fairness,
    calibrated_threshold,
    difference_in_equal_opportunity,
    f1_optimal_threshold,
    fairness,
    score_kl,
)
from jaxdebias.metrics.groups import (
    DEFINITIONS,
    batch_accuracy,
    bootstrap_unbiased_accuracy,
    format_table,
    group_counts,
    summarize,
)
from jaxdebias.metrics.separation import (
    PSEUDO_GROUP_DEFINITIONS,
    SEPARATION_DEFINITIONS,
    auroc,
    pseudo_group_quality,
    separation,
)
