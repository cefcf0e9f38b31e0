"""Label arithmetic of the paper on numpy arrays: missing labels, folds and loss weights.

Layer 1 of the package: numpy only, no TensorFlow, no file I/O. Every function takes (rows,
classes) arrays and, where chance enters, a ``seed``. Partial labels have three states
(docs/methods.md section 1): ``1`` annotated positive, ``0`` annotated negative, ``-1`` unknown.
"""

from __future__ import annotations

from mlml_tf.labels.checks import (
    UNKNOWN,
    check_labels,
    check_partial_labels,
    check_ratio,
)
from mlml_tf.labels.estimated import (
    ConfidenceEstimate,
    estimate_confidence,
    estimated_confidence_weights,
)
from mlml_tf.labels.folds import (
    STRATIFICATION_ORDERS,
    fold_indices,
    iterative_folds,
    iterative_stratification,
    kfold_parts,
    stratified_parts,
)
from mlml_tf.labels.missing import (
    FPC_DEFAULT_COUNT,
    PAPER_RATIOS,
    fixed_per_class,
    hidden_counts,
    hide_positives,
    random_per_sample,
    single_positive,
)
from mlml_tf.labels.weights import (
    CLASS_BALANCE_MAX,
    CLASS_BALANCE_MIN,
    class_balance_weights,
    confidence_weights,
    ignore_missing_weights,
)

__all__ = [
    "UNKNOWN",
    "check_labels",
    "check_partial_labels",
    "check_ratio",
    "STRATIFICATION_ORDERS",
    "iterative_stratification",
    "stratified_parts",
    "kfold_parts",
    "fold_indices",
    "iterative_folds",
    "PAPER_RATIOS",
    "hidden_counts",
    "hide_positives",
    "FPC_DEFAULT_COUNT",
    "random_per_sample",
    "fixed_per_class",
    "single_positive",
    "CLASS_BALANCE_MIN",
    "CLASS_BALANCE_MAX",
    "ignore_missing_weights",
    "class_balance_weights",
    "confidence_weights",
    "ConfidenceEstimate",
    "estimate_confidence",
    "estimated_confidence_weights",
]
