"""mlml-tf: multi-label classification with missing labels (Ibrahim et al., ICMR 2020).

The public names below are served on first use (PEP 562): ``import mlml_tf`` imports nothing
but this file, and a name loads its own layer only, so that the label arithmetic never imports
TensorFlow. The layers, from the paper's arithmetic out to the user (docs/architecture.md):

- :mod:`mlml_tf.labels`: missing labels, folds and loss weights on numpy arrays;
- :mod:`mlml_tf.metrics`: scores of predictions (numpy, scikit-learn);
- :mod:`mlml_tf.files`: the original's CSV layout, protocols, splits, a user's own table;
  :mod:`mlml_tf.datasets`: COCO, NUS-WIDE and the demo's digits;
- :mod:`mlml_tf.methods`: what each method computes, by name; :mod:`mlml_tf.settings`: every
  option, declared once; :mod:`mlml_tf.runs`: a run's result folder;
- :mod:`mlml_tf.losses`, :mod:`mlml_tf.features`, :mod:`mlml_tf.training`: the Keras side;
- :mod:`mlml_tf.apps`: the grid, tables and figures, the demo, a model of one's own data;
- :mod:`mlml_tf.cli`, :mod:`mlml_tf.notebook`: the command line and the notebooks.
"""

from __future__ import annotations

import importlib

from mlml_tf import _moved

__version__ = "0.7.0"

# Each public name and the module that defines it, loaded on first access.
_LAZY = {
    "DataError": "mlml_tf.errors",
    "PAPER_RATIOS": "mlml_tf.labels.missing",
    "hide_positives": "mlml_tf.labels.missing",
    "random_per_sample": "mlml_tf.labels.missing",
    "fixed_per_class": "mlml_tf.labels.missing",
    "single_positive": "mlml_tf.labels.missing",
    "class_balance_weights": "mlml_tf.labels.weights",
    "confidence_weights": "mlml_tf.labels.weights",
    "ignore_missing_weights": "mlml_tf.labels.weights",
    "estimated_confidence_weights": "mlml_tf.labels.estimated",
    "estimate_confidence": "mlml_tf.labels.estimated",
    "ConfidenceEstimate": "mlml_tf.labels.estimated",
    "fold_indices": "mlml_tf.labels.folds",
    "iterative_folds": "mlml_tf.labels.folds",
    "read_table": "mlml_tf.files.tables",
    "read_run_labels": "mlml_tf.files.layout",
    "read_complete_labels": "mlml_tf.files.published",
    "prepare_published": "mlml_tf.files.published",
    "split": "mlml_tf.files.split",
    "read_label_table": "mlml_tf.files.own_table",
    "read_coco": "mlml_tf.datasets.coco",
    "read_nuswide": "mlml_tf.datasets.nuswide",
    "COCO_CLASS_NAMES": "mlml_tf.datasets.coco",
    "NUSWIDE_CONCEPTS": "mlml_tf.datasets.nuswide",
    "min_labels_filter": "mlml_tf.datasets.coco",
    "validation_rows": "mlml_tf.files.own_table",
    "PROTOCOLS": "mlml_tf.files.protocols",
    "METHODS": "mlml_tf.methods.registry",
    "mean_average_precision": "mlml_tf.metrics.scores",
    "WeightedBinaryCrossentropy": "mlml_tf.losses.weighted",
    "ClassBalancedCrossentropy": "mlml_tf.losses.weighted",
    "weighted_binary_crossentropy": "mlml_tf.losses.weighted",
    "class_balanced_crossentropy": "mlml_tf.losses.weighted",
    "entry_weights": "mlml_tf.losses.weighted",
    "AsymmetricLoss": "mlml_tf.losses.field",
    "PartialSelectiveLoss": "mlml_tf.losses.field",
    "AssumeNegative": "mlml_tf.losses.field",
    "ExpectedPositiveRegularization": "mlml_tf.losses.field",
    "BalancedCrossentropy": "mlml_tf.losses.field",
    "class_positive_rates": "mlml_tf.losses.field",
    "large_loss_matters": "mlml_tf.losses.rules",
    "role_loss": "mlml_tf.losses.rules",
    "pseudo_labels": "mlml_tf.losses.rules",
    "head_objective": "mlml_tf.losses.build",
    "build_backbone": "mlml_tf.features.backbones",
    "feature_extractor": "mlml_tf.features.backbones",
    "saved_model_backbone": "mlml_tf.features.backbones",
    "image_dataset": "mlml_tf.features.dataset",
    "scale_images": "mlml_tf.features.images",
    "build_model": "mlml_tf.training.heads",
    "build_head": "mlml_tf.training.heads",
    "build_heads": "mlml_tf.training.heads",
    "RunConfig": "mlml_tf.settings",
    "GridOptions": "mlml_tf.settings",
    "FitSettings": "mlml_tf.settings",
    "train_run": "mlml_tf.training.runs",
    "train_runs": "mlml_tf.training.runs",
    "run_grid": "mlml_tf.apps.grid",
    "run_demo": "mlml_tf.apps.demo",
    "fit_model": "mlml_tf.apps.own.fit",
    "load_model": "mlml_tf.apps.own.folder",
    "predict_images": "mlml_tf.apps.own.serve",
    "evaluate_model": "mlml_tf.apps.own.serve",
    "export_model": "mlml_tf.apps.own.serve",
}


def __getattr__(name: str):
    if name in _LAZY:
        # The lazy public boundary: the one place where the package imports on demand.
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mlml_tf' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))


__all__ = ["__version__", *_LAZY]

# The module paths of 0.5, for one release.
_moved.install()
