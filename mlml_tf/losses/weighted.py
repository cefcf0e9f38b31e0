"""The paper's weighted cross-entropy.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from mlml_tf.errors import DataError
from mlml_tf.labels.weights import check_weight
from mlml_tf.labels.weights import entry_weights as numpy_entry_weights

#: The original clipped probabilities to [EPSILON, 1 - EPSILON] before the logarithm
#: (docs/original.md section 6).
EPSILON = 1e-7


def weighted_binary_crossentropy(y_true, y_pred, from_logits: bool = False):
    """Per-entry binary cross-entropy, to be weighted by a (B, C) ``sample_weight``.

    From probabilities this is the original's formula, p clipped to [1e-7, 1 - 1e-7]. From
    logits it is the numerically stable form ``y * softplus(-z) + (1 - y) * softplus(z)``, equal
    to the clipped one wherever 1e-7 < sigmoid(z) < 1 - 1e-7; only saturated logits differ (the
    stable form keeps growing, the clipped one stops at -log(1e-7) = 16.1). A model with
    probability outputs and ``from_logits=False`` reproduces the original exactly.

    Args:
        y_true: labels, shape (B, C), 0/1 (any real values are accepted).
        y_pred: probabilities, or logits if ``from_logits``, same shape.
        from_logits: whether ``y_pred`` holds logits.

    Returns:
        Tensor of shape (B, C): ``-[y log p + (1 - y) log(1 - p)]`` per entry.

    Example:
        >>> y = np.array([[1.0, 0.0]]); z = np.array([[2.0, -1.0]])
        >>> w = entry_weights(y, pos_weight=[10.0, 1.0], neg_weight=[[1.0, 0.5]])
        >>> float(ops.mean(w * weighted_binary_crossentropy(y, z, from_logits=True)))
        0.71295...
    """

    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.cast(y_true, y_pred.dtype)
    if from_logits:
        return y_true * ops.softplus(-y_pred) + (1.0 - y_true) * ops.softplus(y_pred)
    p = ops.clip(y_pred, EPSILON, 1.0 - EPSILON)
    return -(y_true * ops.log(p) + (1.0 - y_true) * ops.log(1.0 - p))


def class_balanced_crossentropy(y_true, y_pred, pos_weight, from_logits: bool = True):
    """Per-entry CE baseline: ``tf.nn.weighted_cross_entropy_with_logits(y, z, pos_weight=P)``.

    It is the weighted loss with W = y * P + (1 - y) * 1 (negatives keep weight 1), which is how
    it is computed here; its mean over B x C entries is the original's CE loss (docs/original.md
    section 6).

    Args:
        y_true: labels, shape (B, C).
        y_pred: logits (default) or probabilities if ``from_logits=False``, same shape.
        pos_weight: P, shape (C,) or scalar: the weight of positive entries of each class.
        from_logits: whether ``y_pred`` holds logits.

    Returns:
        Tensor of shape (B, C): ``-[P y log p + (1 - y) log(1 - p)]`` per entry.

    Example:
        >>> y = np.array([[1.0, 0.0]]); z = np.array([[2.0, -1.0]])
        >>> per_entry = class_balanced_crossentropy(y, z, pos_weight=[10.0, 1.0])
        >>> float(ops.mean(per_entry))  # as tf.nn.weighted_cross_entropy_with_logits
        0.79127...
    """

    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.cast(y_true, y_pred.dtype)
    weights = entry_weights(y_true, ops.cast(pos_weight, y_pred.dtype), 1.0)
    return weights * weighted_binary_crossentropy(y_true, y_pred, from_logits=from_logits)


def entry_weights(y, pos_weight, neg_weight=1.0):
    """:func:`mlml_tf.labels.entry_weights`, W = y * P + (1 - y) * w̄, for numpy arrays or tensors:
    if any input is a tensor the result is a tensor, in ``y``'s float type (Keras' floatx for
    integer labels).

    Example:
        >>> entry_weights(np.array([[1, 0], [0, 1]]), pos_weight=[10, 2], neg_weight=0.5)
        array([[10. ,  0.5],
               [ 0.5,  2. ]], dtype=float32)
    """
    if not any(ops.is_tensor(v) for v in (y, pos_weight, neg_weight)):
        return numpy_entry_weights(y, pos_weight, neg_weight)
    y = ops.convert_to_tensor(y)
    dtype = y.dtype if "float" in str(y.dtype) else keras.config.floatx()
    y = ops.cast(y, dtype)
    return y * ops.cast(pos_weight, dtype) + (1.0 - y) * ops.cast(neg_weight, dtype)


def _same_rank(y_true, y_pred):
    # Labels of shape (B,) against predictions of shape (B, 1) would otherwise broadcast to (B, B).
    if len(y_true.shape) == len(y_pred.shape) - 1:
        y_true = ops.expand_dims(y_true, -1)
    return y_true


@keras.saving.register_keras_serializable(package="mlml_tf")
class WeightedBinaryCrossentropy(keras.losses.Loss):
    """IM-WCE and CB-WCE (paper eq. 2): per-entry cross-entropy weighted by ``sample_weight``.

    The weights are not part of the loss: pass W = :func:`entry_weights` (y, P, w̄) of shape
    (B, C) as ``sample_weight`` to ``fit``/``evaluate`` (or as the third element of a
    ``tf.data.Dataset``). With the default reduction the result is the mean over B x C entries
    of ``-[P_c y log p + w̄_ic (1 - y) log(1 - p)]``, the original's loss. Without a
    ``sample_weight`` it is plain binary cross-entropy averaged over all entries.

    Args:
        from_logits: whether predictions are logits (numerically stable form) or probabilities
            (clipped to [1e-7, 1 - 1e-7] as the original; see
            :func:`weighted_binary_crossentropy`).
        reduction: Keras reduction; keep ``"sum_over_batch_size"`` for the paper's mean.
        name: name of the loss.
        dtype: dtype of the computation (default: Keras' floatx).

    Example:
        >>> model.compile(optimizer="adadelta", loss=WeightedBinaryCrossentropy(from_logits=True))
        >>> w = entry_weights(y_train, pos_weight=P, neg_weight=w_bar)
        >>> model.fit(x_train, y_train, sample_weight=w)
    """
    #: The value at an entry depends on that entry alone, so heads side by side that share this
    #: loss are computed in one call on their (B, heads, C) block.
    entrywise = True

    def __init__(
        self,
        from_logits: bool = False,
        reduction: str | None = "sum_over_batch_size",
        name: str = "weighted_binary_crossentropy",
        dtype=None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        return weighted_binary_crossentropy(
            _same_rank(y_true, y_pred), y_pred, from_logits=self.from_logits
        )

    def get_config(self) -> dict:
        return {**super().get_config(), "from_logits": self.from_logits}


@keras.saving.register_keras_serializable(package="mlml_tf")
class ClassBalancedCrossentropy(keras.losses.Loss):
    """CE, the paper's baseline: class-balanced cross-entropy with all negatives weighted 1.

    The mean over B x C entries of ``tf.nn.weighted_cross_entropy_with_logits(y, z,
    pos_weight=P)`` (docs/original.md section 6). The same value comes from
    :class:`WeightedBinaryCrossentropy` with ``sample_weight=entry_weights(y, P, 1.0)``; this class
    carries P itself so that CE needs no ``sample_weight``. A ``sample_weight``, if given,
    multiplies on top.

    Args:
        pos_weight: P, a list or array of C per-class weights (or one number for all classes).
        from_logits: whether predictions are logits (default) or probabilities.
        reduction: Keras reduction; keep ``"sum_over_batch_size"`` for the paper's mean.
        name: name of the loss.
        dtype: dtype of the computation (default: Keras' floatx).

    Example:
        >>> P = class_balance_weights(y_train)          # from mlml_tf.labels
        >>> model.compile(optimizer="adadelta", loss=ClassBalancedCrossentropy(P))
        >>> model.fit(x_train, y_train)
    """

    def __init__(
        self,
        pos_weight,
        from_logits: bool = True,
        reduction: str | None = "sum_over_batch_size",
        name: str = "class_balanced_crossentropy",
        dtype=None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        pos = np.asarray(pos_weight, dtype=np.float64)
        if pos.ndim > 1:
            raise DataError(f"pos_weight must be one weight per class, got shape {pos.shape}")
        check_weight(pos, "pos_weight", pos.shape)
        self.pos_weight = pos.tolist()
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        return class_balanced_crossentropy(
            _same_rank(y_true, y_pred), y_pred, self.pos_weight, from_logits=self.from_logits
        )

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "pos_weight": self.pos_weight,
            "from_logits": self.from_logits,
        }
