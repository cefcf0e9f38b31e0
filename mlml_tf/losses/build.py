"""A method's head objective, built from the name of its loss (:mod:`mlml_tf.methods`)."""

from __future__ import annotations

import numpy as np

from mlml_tf.losses.field import (
    AssumeNegative,
    AsymmetricLoss,
    BalancedCrossentropy,
    ExpectedPositiveRegularization,
    PartialSelectiveLoss,
)
from mlml_tf.losses.objectives import (
    HeadObjective,
    LargeLossObjective,
    LossObjective,
    PseudoLabelShrink,
    RoleObjective,
)
from mlml_tf.losses.weighted import ClassBalancedCrossentropy, WeightedBinaryCrossentropy
from mlml_tf.methods.method import Method

#: The classes a method may name as its loss.
LOSSES = {cls.__name__: cls for cls in (
    WeightedBinaryCrossentropy, ClassBalancedCrossentropy, AsymmetricLoss, PartialSelectiveLoss,
    AssumeNegative, ExpectedPositiveRegularization, BalancedCrossentropy, RoleObjective,
    LargeLossObjective, PseudoLabelShrink,
)}


def head_objective(method: Method, params: dict, record: dict, labels: np.ndarray, seed: int,
                   from_logits: bool = True) -> HeadObjective:
    """The objective of a head of ``method``: its loss built with its arguments (from the
    hyper-parameters ``params``, the targets' ``record``, the training targets ``labels``, the
    run's ``seed``), wrapped as a :class:`~mlml_tf.losses.objectives.LossObjective` when it is a
    Keras loss."""

    built = LOSSES[method.loss](**method.loss_args(params, record, labels=labels, seed=seed,
                                                   from_logits=from_logits))
    if isinstance(built, HeadObjective):
        return built
    return LossObjective(built, on_probabilities=method.on_probabilities)
