"""The losses of the paper and of the field as Keras 3 losses, and the head objectives.
"""

from __future__ import annotations

from mlml_tf.losses.field import (
    ASL_EPSILON,
    COLE_EPSILON,
    CSL_MODES,
    AssumeNegative,
    AsymmetricLoss,
    BalancedCrossentropy,
    ExpectedPositiveRegularization,
    PartialSelectiveLoss,
    assume_negative,
    asymmetric_loss,
    balanced_crossentropy,
    class_positive_rates,
    expected_positive_regularization,
    partial_selective_loss,
)
from mlml_tf.losses.objectives import (
    LARGE_LOSS_SCHEMES,
    HeadObjective,
    LargeLossObjective,
    PseudoLabelShrink,
    RoleObjective,
)
from mlml_tf.losses.rules import (
    LARGE_LOSS_MODES,
    large_loss_flips,
    large_loss_matters,
    pseudo_labels,
    role_initial_logits,
    role_loss,
)
from mlml_tf.losses.weighted import (
    EPSILON,
    ClassBalancedCrossentropy,
    WeightedBinaryCrossentropy,
    class_balanced_crossentropy,
    entry_weights,
    weighted_binary_crossentropy,
)

__all__ = [
    "LOSSES",
    "head_objective",
    "LossObjective",
    "StatefulObjective",
    "COLE_EPSILON",
    "ASL_EPSILON",
    "asymmetric_loss",
    "CSL_MODES",
    "partial_selective_loss",
    "assume_negative",
    "expected_positive_regularization",
    "AsymmetricLoss",
    "PartialSelectiveLoss",
    "AssumeNegative",
    "ExpectedPositiveRegularization",
    "class_positive_rates",
    "balanced_crossentropy",
    "BalancedCrossentropy",
    "HeadObjective",
    "RoleObjective",
    "LARGE_LOSS_SCHEMES",
    "LargeLossObjective",
    "PseudoLabelShrink",
    "LARGE_LOSS_MODES",
    "large_loss_matters",
    "large_loss_flips",
    "role_loss",
    "role_initial_logits",
    "pseudo_labels",
    "EPSILON",
    "weighted_binary_crossentropy",
    "class_balanced_crossentropy",
    "entry_weights",
    "WeightedBinaryCrossentropy",
    "ClassBalancedCrossentropy",
]
