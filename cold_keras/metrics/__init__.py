"""Evaluation metrics: concordance, macro precision/recall/F1, calibration error, uncertainty, statistics.

One module per job, every public name re-exported here (`from cold_keras import metrics; metrics.ccc`):

* `regression`: AVEC's partition-level `ccc` (covariance / n, variances / (n - 1), as AVEC 2019's
  `calc_scores.py`), `ccc_unbiased`, and the streaming Keras metric `StreamingCCC`;
* `classification`: `confusion_matrix`, `precision_recall_f1`, `reliability_bins`,
  `expected_calibration_error`, temperature scaling, and the streaming `StreamingMacroF1`;
* `uncertainty`: scores of a per-frame predictive std (NLL, interval coverage, calibration curve,
  miscalibration area, ENCE, sparsification and AUSE, reject-option CCC);
* `statistics`: `roc_auc` and `spearman`.

The streaming metrics accumulate sufficient statistics over an epoch, so the logged value equals the
NumPy function on all the epoch's valid frames concatenated.
"""

from cold_keras.metrics.classification import (
    ReliabilityBins,
    StreamingMacroF1,
    apply_temperature,
    confusion_matrices,
    confusion_matrix,
    expected_calibration_error,
    precision_recall_f1,
    reliability_bins,
    softmax,
    temperature_scale,
)
from cold_keras.metrics.regression import (
    CCC_DEFINITIONS,
    StreamingCCC,
    ccc,
    ccc_by_name,
    ccc_statistics,
    ccc_unbiased,
)
from cold_keras.metrics.statistics import roc_auc, spearman
from cold_keras.metrics.uncertainty import (
    INTERVAL_LEVELS,
    REJECT_FRACTIONS,
    ause,
    calibration_curve,
    expected_normalized_calibration_error,
    gaussian_nll,
    interval_coverage,
    miscalibration_area,
    reject_option_ccc,
    sparsification_curve,
)

__all__ = [
    "CCC_DEFINITIONS",
    "INTERVAL_LEVELS",
    "REJECT_FRACTIONS",
    "ReliabilityBins",
    "StreamingCCC",
    "StreamingMacroF1",
    "apply_temperature",
    "ause",
    "calibration_curve",
    "ccc",
    "ccc_by_name",
    "ccc_statistics",
    "ccc_unbiased",
    "confusion_matrices",
    "confusion_matrix",
    "expected_calibration_error",
    "expected_normalized_calibration_error",
    "gaussian_nll",
    "interval_coverage",
    "miscalibration_area",
    "precision_recall_f1",
    "reject_option_ccc",
    "reliability_bins",
    "roc_auc",
    "softmax",
    "sparsification_curve",
    "spearman",
    "temperature_scale",
]
