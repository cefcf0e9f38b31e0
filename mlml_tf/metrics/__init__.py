"""Evaluation of multi-label predictions (docs/original.md section 7), numpy and scikit-learn only.
"""

from __future__ import annotations

from mlml_tf.metrics.report import (
    REPORT_COLUMNS,
    THRESHOLD_GRID,
    per_class_report,
    tune_thresholds,
)
from mlml_tf.metrics.scores import (
    DEFAULT_THRESHOLD,
    SCORE_KEYS,
    annotated_metrics,
    average_precisions,
    check_predictions,
    evaluate,
    faithful_truncation,
    mean_average_precision,
)

__all__ = [
    "THRESHOLD_GRID",
    "REPORT_COLUMNS",
    "per_class_report",
    "tune_thresholds",
    "DEFAULT_THRESHOLD",
    "SCORE_KEYS",
    "check_predictions",
    "average_precisions",
    "mean_average_precision",
    "faithful_truncation",
    "evaluate",
    "annotated_metrics",
]
