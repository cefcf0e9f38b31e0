"""The methods a run can train, each defined once: targets, entry weights, loss and defaults.

Labels have three states (docs/methods.md section 1): 1 annotated positive, 0 annotated
negative, -1 unknown. The paper's files annotate no negative: their zeros are "negative or
missing", so they are unknown here, and the methods that treat unknown entries as negatives (CE,
IM-WCE, CB-WCE, ASL, AN) see the paper's files as they are. Every method returns targets ``y``
and weights ``W`` of shape (rows, classes); the loss multiplies its per-entry values by ``W``
(Keras' ``sample_weight``) and takes the mean over the batch's entries.

numpy only: a method names its loss, which :mod:`mlml_tf.losses` builds, so that reading the
registry never imports TensorFlow.
"""

from __future__ import annotations

from mlml_tf.methods.field import ASL_PARAMS, CSL_MODES, CSL_PARAMS, PRIOR_ESTIMATES
from mlml_tf.methods.method import Method, RunLabels, params_key
from mlml_tf.methods.prior import CLASS_PRIOR, class_prior_bytes, read_class_prior
from mlml_tf.methods.registry import (
    METHODS,
    PAPER_METHODS,
    check_settings,
    method,
    method_params,
    read_params_file,
)
from mlml_tf.methods.revising import LARGE_LOSS_METHODS, PL_SHRINK_PARAMS, ROLE_PARAMS

__all__ = [
    "ASL_PARAMS", "CLASS_PRIOR", "CSL_MODES", "CSL_PARAMS", "LARGE_LOSS_METHODS", "METHODS",
    "Method", "PAPER_METHODS", "PL_SHRINK_PARAMS", "PRIOR_ESTIMATES", "ROLE_PARAMS", "RunLabels",
    "check_settings", "class_prior_bytes", "method", "method_params", "params_key",
    "read_class_prior", "read_params_file",
]
