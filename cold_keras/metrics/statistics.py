"""General statistics: the ROC AUC of a score as a detector, and Spearman's rank correlation (NumPy, SciPy)."""

import numpy as np


def roc_auc(scores, positives) -> float:
    """Area under the ROC curve of `scores` as a detector of `positives` (Mann-Whitney U).

        AUC = (R_+ - n_+ (n_+ + 1) / 2) / (n_+ n_-)

    with R_+ the sum of the positives' ranks among all scores (average ranks for ties, so a tie
    between a positive and a negative counts one half). Equals the fraction of (positive, negative)
    pairs in which the positive scores higher, ties counting 1/2.

    Args:
        scores: array-like of floats. Higher means "more likely positive".
        positives: bool array-like of the same size.

    Returns:
        float in [0, 1]; NaN without a positive or a negative, or with a NaN score.

    >>> roc_auc([0.1, 0.4, 0.35, 0.8], [False, False, True, True])
    0.75
    """
    from scipy.stats import rankdata

    scores = np.asarray(scores, np.float64).reshape(-1)
    positives = np.asarray(positives, bool).reshape(-1)
    if scores.size != positives.size:
        raise ValueError(f"roc_auc needs one flag per score, got {scores.size} scores and {positives.size} flags")
    n_pos = int(positives.sum())
    n_neg = positives.size - n_pos
    if n_pos == 0 or n_neg == 0 or np.isnan(scores).any():
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def spearman(x, y):
    """Spearman rank correlation and its two-sided p-value; (NaN, NaN) for constant or < 3 values."""
    from scipy.stats import spearmanr

    x = np.asarray(x, np.float64).reshape(-1)
    y = np.asarray(y, np.float64).reshape(-1)
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan"), float("nan")
    result = spearmanr(x, y)
    return float(result.statistic), float(result.pvalue)
