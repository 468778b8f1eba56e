"""Tests of cold_keras.metrics.statistics: the ROC AUC against the pairwise count, Spearman against rank correlation."""

import numpy as np
import pytest

from cold_keras import metrics
from tests.pipelines import evaluation_helpers as helpers


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_auc_matches_the_pairwise_count_with_ties(seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 5, size=60).astype(float)  # many ties
    positives = rng.random(60) < 0.3
    assert metrics.roc_auc(scores, positives) == pytest.approx(helpers.pairwise_auc(scores, positives), abs=1e-12)
    continuous = rng.normal(size=50) + np.arange(50) * 0.02
    flags = rng.random(50) < 0.5
    assert metrics.roc_auc(continuous, flags) == pytest.approx(helpers.pairwise_auc(continuous, flags), abs=1e-12)


def test_roc_auc_edge_cases():
    assert metrics.roc_auc([0.1, 0.2, 0.8, 0.9], [False, False, True, True]) == 1.0
    assert metrics.roc_auc([0.9, 0.8, 0.2, 0.1], [False, False, True, True]) == 0.0
    assert metrics.roc_auc([0.5, 0.5, 0.5], [True, False, False]) == 0.5
    assert np.isnan(metrics.roc_auc([0.1, 0.2], [True, True]))
    assert np.isnan(metrics.roc_auc([0.1, np.nan], [True, False]))
    with pytest.raises(ValueError, match="one flag per score"):
        metrics.roc_auc([0.1, 0.2], [True])


def test_spearman_matches_rank_correlation_and_is_nan_when_constant():
    rng = np.random.default_rng(4)
    x = rng.normal(size=40)
    y = x**3 + rng.normal(size=40)
    assert metrics.spearman(x, y)[0] == pytest.approx(helpers.rank_correlation(x, y), abs=1e-12)
    assert np.isnan(metrics.spearman(np.ones(5), np.arange(5.0))[0])
