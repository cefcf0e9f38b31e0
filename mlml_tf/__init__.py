"""mlml-tf: multi-label classification with missing labels (Ibrahim et al., ICMR 2020).

The label arithmetic (``hide_positives``, the weights, the folds) and the file layout import with
numpy and pandas only; the Keras pieces (losses, model) are loaded on first use, so that
``import mlml_tf`` stays light and never imports TensorFlow by itself.
"""

from __future__ import annotations

import importlib

from mlml_tf.errors import DataError
from mlml_tf.labels import (
    PAPER_RATIOS,
    class_balance_weights,
    confidence_weights,
    fixed_per_class,
    fold_indices,
    hide_positives,
    ignore_missing_weights,
    iterative_folds,
    random_per_sample,
    single_positive,
)
from mlml_tf.layout import read_run_labels, read_table, split

__version__ = "0.5.0"

# Names served from the Keras layer on first access (PEP 562).
_LAZY = {
    "WeightedBinaryCrossentropy": "mlml_tf.losses",
    "ClassBalancedCrossentropy": "mlml_tf.losses",
    "weighted_binary_crossentropy": "mlml_tf.losses",
    "class_balanced_crossentropy": "mlml_tf.losses",
    "entry_weights": "mlml_tf.losses",
    "AsymmetricLoss": "mlml_tf.losses",
    "PartialSelectiveLoss": "mlml_tf.losses",
    "AssumeNegative": "mlml_tf.losses",
    "ExpectedPositiveRegularization": "mlml_tf.losses",
    "BalancedCrossentropy": "mlml_tf.losses",
    "large_loss_matters": "mlml_tf.losses",
    "role_loss": "mlml_tf.losses",
    "pseudo_labels": "mlml_tf.losses",
    "class_positive_rates": "mlml_tf.losses",
    "mean_average_precision": "mlml_tf.metrics",
    "build_model": "mlml_tf.model",
    "build_head": "mlml_tf.model",
    "build_heads": "mlml_tf.model",
    "build_backbone": "mlml_tf.model",
    "feature_extractor": "mlml_tf.model",
    "saved_model_backbone": "mlml_tf.model",
    "image_dataset": "mlml_tf.inputs",
    "scale_images": "mlml_tf.inputs",
    "RunConfig": "mlml_tf.train",
    "train_run": "mlml_tf.train",
    "train_runs": "mlml_tf.train",
    "run_grid": "mlml_tf.grid",
    "read_label_table": "mlml_tf.own_data",
    "validation_rows": "mlml_tf.own_data",
    "FitSettings": "mlml_tf.own_model",
    "fit_model": "mlml_tf.own_model",
    "load_model": "mlml_tf.own_model",
    "predict_images": "mlml_tf.own_model",
    "evaluate_model": "mlml_tf.own_model",
    "export_model": "mlml_tf.own_model",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mlml_tf' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))


__all__ = [
    "DataError",
    "PAPER_RATIOS",
    "class_balance_weights",
    "confidence_weights",
    "fixed_per_class",
    "fold_indices",
    "hide_positives",
    "ignore_missing_weights",
    "iterative_folds",
    "random_per_sample",
    "single_positive",
    "read_run_labels",
    "read_table",
    "split",
    *_LAZY,
]
