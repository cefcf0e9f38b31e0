"""The paper's losses as Keras 3 losses: CE (baseline), IM-WCE and CB-WCE (SPEC section 6).

All three are one formula, the mean over the B x C entries of a batch of

    -[W_ic * y_ic * log p_ic + W_ic * (1 - y_ic) * log(1 - p_ic)],   W = y * P + (1 - y) * w̄,

with P the class-balance weight of each class and w̄ the weight of each negative entry: 1 for CE,
the "ignore missing" 0/1 mask for IM-WCE, the confidence weights of paper eq. 3 for CB-WCE.
W is one (B, C) tensor (see :func:`entry_weights`) that Keras takes as ``sample_weight``. The
loss functions here return per-entry values of shape (B, C), with no reduction over classes, so
Keras multiplies them by a (B, C) ``sample_weight`` element-wise and its default
``"sum_over_batch_size"`` reduction divides by B x C: exactly the original's mean. (Keras' own
``BinaryCrossentropy`` averages over classes first and cannot take a per-entry weight.)
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from mlml_tf.errors import DataError

#: The original clipped probabilities to [EPSILON, 1 - EPSILON] before the logarithm (SPEC 6).
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
    it is computed here; its mean over B x C entries is the original's CE loss (SPEC 6).

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
    """The per-entry weight W = y * P + (1 - y) * w̄ that Keras takes as ``sample_weight``.

    Positive entries get their class's balance weight P_c, negative entries their own weight
    w̄_ic: 1 for CE, the 0/1 "ignore missing" mask for IM-WCE, the confidence of paper eq. 3 for
    CB-WCE (see :mod:`mlml_tf.labels`). Numpy inputs give a numpy float32 array (checked: shapes
    must broadcast to ``y``'s and weights must be finite and non-negative), handy to build a
    ``tf.data.Dataset`` of (x, y, W); if any input is a tensor the result is a tensor.

    Args:
        y: labels, shape (B, C).
        pos_weight: P, shape (C,) or scalar.
        neg_weight: w̄, shape (B, C), (C,) or scalar.

    Returns:
        W, shape (B, C).

    Example:
        >>> entry_weights(np.array([[1, 0], [0, 1]]), pos_weight=[10, 2], neg_weight=0.5)
        array([[10. ,  0.5],
               [ 0.5,  2. ]], dtype=float32)
    """
    if any(ops.is_tensor(v) for v in (y, pos_weight, neg_weight)):
        y = ops.convert_to_tensor(y)
        dtype = y.dtype if "float" in str(y.dtype) else keras.config.floatx()
        y = ops.cast(y, dtype)
        pos = ops.cast(pos_weight, dtype)
        neg = ops.cast(neg_weight, dtype)
        return y * pos + (1.0 - y) * neg
    y = np.asarray(y, dtype=np.float32)
    pos = _check_weight(pos_weight, "pos_weight", y.shape)
    neg = _check_weight(neg_weight, "neg_weight", y.shape)
    return (y * pos + (1.0 - y) * neg).astype(np.float32)


def _check_weight(weight, name: str, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(weight, dtype=np.float32)
    try:
        broadcast = np.broadcast_shapes(arr.shape, shape)
    except ValueError:
        broadcast = None
    if broadcast != tuple(shape):
        raise DataError(f"{name} of shape {arr.shape} does not fit labels of shape {shape}")
    bad = ~np.isfinite(arr) | (arr < 0)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise DataError(f"{name}{list(where)} = {arr[where].item()!r} is not a finite weight >= 0")
    return arr


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
    pos_weight=P)`` (SPEC 6). The same value comes from :class:`WeightedBinaryCrossentropy`
    with ``sample_weight=entry_weights(y, P, 1.0)``; this class carries P itself so that CE
    needs no ``sample_weight``. A ``sample_weight``, if given, multiplies on top.

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
        _check_weight(pos, "pos_weight", pos.shape)
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


# ----------------------------------------------------------------------------- the field's losses
#
# Each is a plain function returning per-entry values of shape (B, C) and a thin registered
# Keras ``Loss`` that stores its arguments: with the default reduction the loss is the mean over
# the B x C entries, and a (B, C) ``sample_weight`` multiplies entry by entry. The authors' code
# of ASL and CSL returns the sum (mean x B x C); Cole et al.'s returns this mean, plus EPR's
# regulariser once. Labels: 1 annotated positive, 0 annotated negative, -1 unknown
# (METHODS.md section 1).

#: Cole et al.'s logarithms: -log(x + 1e-5), no clamp.
COLE_EPSILON = 1e-5
#: The floor of the logarithms of ASL and CSL: log(max(x, 1e-8)).
ASL_EPSILON = 1e-8


def _logits_and_labels(y_true, y_pred):
    y_pred = ops.convert_to_tensor(y_pred)
    return ops.cast(y_true, y_pred.dtype), y_pred


@ops.custom_gradient
def _sigmoid(z):
    """1 / (1 + exp(-z)), as PyTorch's sigmoid rounds it, with its gradient p (1 - p) of the
    rounded p (TensorFlow's own sigmoid rounds otherwise near saturation, where 1 - p decides
    the log-terms of ASL and CSL and their gradients); z is clipped to [-88, 88] so that exp
    stays finite in float32."""
    p = 1.0 / (1.0 + ops.exp(-ops.clip(z, -88.0, 88.0)))

    def grad(*args, upstream=None):
        if upstream is None:
            (upstream,) = args
        return upstream * p * (1.0 - p)

    return p, grad


def _shifted_negative(p, clip: float):
    """1 - p_m with p_m = max(p - clip, 0), as ASL computes it: min(1 - p + clip, 1)."""
    negative = 1.0 - p
    return ops.minimum(negative + clip, 1.0) if clip > 0 else negative


def asymmetric_loss(y_true, y_pred, gamma_pos: float = 1.0, gamma_neg: float = 4.0,
                    clip: float = 0.05, eps: float = ASL_EPSILON):
    """Per-entry Asymmetric Loss (Ridnik et al., ICCV 2021) on logits, labels 0/1.

    ``-[y (1-p)^g+ log max(p, eps) + (1-y) p_m^g- log max(1-p_m, eps)]``, p = sigmoid(z),
    p_m = max(p - clip, 0); the focusing factors carry no gradient, as in the authors' class
    (whose ``disable_torch_grad_focal_loss`` defaults to True), and with both gammas 0 there is
    no factor at all.

    Example:
        >>> per_entry = asymmetric_loss(np.array([[1.0, 0.0]]), np.array([[2.0, -1.0]]))
        >>> per_entry.shape
        (1, 2)
    """
    y, z = _logits_and_labels(y_true, y_pred)
    p = _sigmoid(z)
    negative = _shifted_negative(p, clip)
    loss = y * ops.log(ops.maximum(p, eps)) + (1.0 - y) * ops.log(ops.maximum(negative, eps))
    if gamma_pos > 0 or gamma_neg > 0:
        pt = p * y + negative * (1.0 - y)
        gamma = gamma_pos * y + gamma_neg * (1.0 - y)
        loss = loss * ops.stop_gradient(ops.power(1.0 - pt, gamma))
    return -loss


#: The modes of Class-aware Selective Loss: unknown entries as negatives, ignored, or selected.
CSL_MODES: tuple[str, ...] = ("negative", "ignore", "selective")


def partial_selective_loss(y_true, y_pred, mode: str = "negative", gamma_pos: float = 0.0,
                           gamma_neg: float = 1.0, gamma_unann: float = 2.0,
                           alpha_pos: float = 1.0, alpha_neg: float = 1.0,
                           alpha_unann: float = 1.0, clip: float = 0.0,
                           likelihood_topk: int = 5, prior=None,
                           prior_threshold: float = 0.05):
    """Per-entry P-ASL with the entry weights of Class-aware Selective Loss (Ben-Baruch et al.,
    CVPR 2022), on logits, labels 1 / 0 / -1.

    ``-w F [a+ [y=1] log max(p, 1e-8) + a- [y=0] log max(1-p_m, 1e-8) + au [y=-1] log max(1-p_m,
    1e-8)]`` with F = (1-p)^g+, p_m^g- and p_m^gu on positive, annotated negative and unknown
    entries (no gradient through F) and p_m = max(p - clip, 0). Unknown entries are negatives
    with their own alpha and gamma in every mode; the weight w is, by ``mode``:

    - ``"negative"``: 1;
    - ``"ignore"``: 0 on unknown entries;
    - ``"selective"``: 0 on the unknown entries of the classes whose ``prior`` exceeds
      ``prior_threshold`` (when a prior is given and the threshold is not 0), then 0 on the
      ``likelihood_topk`` x B unknown entries of the whole batch with the highest p (smallest
      1 - p_m), counted among all unknown entries, those the prior removed included, as the
      authors' code counts them. w carries no gradient.
    """
    if mode not in CSL_MODES:
        raise DataError(f"mode must be one of {', '.join(CSL_MODES)}, not {mode!r}")
    y, z = _logits_and_labels(y_true, y_pred)
    positive = ops.cast(y == 1, z.dtype)
    negative = ops.cast(y == 0, z.dtype)
    unknown = ops.cast(y == -1, z.dtype)
    p = _sigmoid(z)
    shifted = _shifted_negative(p, clip)
    log_negative = ops.log(ops.maximum(shifted, ASL_EPSILON))
    loss = (alpha_pos * positive * ops.log(ops.maximum(p, ASL_EPSILON))
            + alpha_neg * negative * log_negative + alpha_unann * unknown * log_negative)
    focus = ops.power(1.0 - p * positive - shifted * (negative + unknown),
                      gamma_pos * positive + gamma_neg * negative + gamma_unann * unknown)
    loss = loss * ops.stop_gradient(focus)
    if mode == "ignore":
        loss = loss * (1.0 - unknown)
    elif mode == "selective":
        loss = loss * ops.stop_gradient(
            _selective_weights(unknown, shifted, likelihood_topk, prior, prior_threshold))
    return -loss


def _selective_weights(unknown, shifted, topk: int, prior, threshold: float):
    """CSL's selective weights: 1, or 0 on the unknown entries of frequent classes (by the
    prior) and on the top-k x B unknown entries of the batch by likelihood."""
    weights = ops.ones_like(unknown)
    if prior is not None and threshold:
        frequent = ops.cast(ops.convert_to_tensor(np.asarray(prior) > threshold), unknown.dtype)
        weights = 1.0 - unknown * frequent[None, :]
    rows, classes = ops.shape(unknown)[0], ops.shape(unknown)[1]
    flat_unknown = ops.reshape(unknown, (-1,))
    # The k entries of smallest 1 - p_m among the unknown ones (the others rank last).
    ranked = ops.where(flat_unknown > 0, -ops.reshape(shifted, (-1,)), -np.inf)
    k = ops.minimum(int(topk) * rows, rows * classes)
    chosen = ops.top_k(ranked, k, sorted=False)[1]
    hit = ops.scatter(ops.expand_dims(chosen, -1), ops.ones_like(chosen, dtype=unknown.dtype),
                      ops.shape(flat_unknown))
    hit = ops.reshape(ops.minimum(hit, 1.0) * flat_unknown, ops.shape(unknown))
    return weights * (1.0 - hit)


def assume_negative(y_true, y_pred, label_smoothing: float = 0.0, weak: bool = False):
    """Per-entry AN, AN-LS and WAN (Cole et al., CVPR 2021) on probabilities, labels 1/0/-1.

    Positives ``-log(p + 1e-5)``, every other entry ``-log(1 - p + 1e-5)``; with
    ``label_smoothing`` ls the targets are 1 - ls and ls (positives ``(1-ls)(-log(p+e)) +
    ls(-log(1-p+e))``, the others mirrored); ``weak`` divides the terms of unknown entries (not
    of annotated negatives) by C - 1.
    """
    y, p = _logits_and_labels(y_true, y_pred)
    positive = ops.cast(y == 1, p.dtype)
    log_p = -ops.log(p + COLE_EPSILON)
    log_not_p = -ops.log(1.0 - p + COLE_EPSILON)
    ls = float(label_smoothing)
    as_positive = (1.0 - ls) * log_p + ls * log_not_p
    as_negative = (1.0 - ls) * log_not_p + ls * log_p
    if weak:
        classes = ops.cast(ops.shape(p)[-1], p.dtype)
        as_negative = as_negative / ops.where(y == -1, classes - 1.0, 1.0)
    return positive * as_positive + (1.0 - positive) * as_negative


def expected_positive_regularization(y_true, y_pred, expected_positives: float):
    """Per-entry EPR (Cole et al., CVPR 2021) on probabilities, labels 1/0/-1.

    ``-log(p + 1e-5)`` on positives, ``-log(1 - p + 1e-5)`` on annotated negatives, 0 on unknown
    entries, plus on every entry the batch's regulariser R = (mean over rows of sum_c p - k)^2 /
    C^2, so that the mean over the B x C entries is the authors' loss: their mean plus R once.
    """
    y, p = _logits_and_labels(y_true, y_pred)
    classes = ops.cast(ops.shape(p)[-1], p.dtype)
    regulariser = ops.square(ops.mean(ops.sum(p, axis=-1)) - expected_positives) / (
        classes * classes)
    main = (ops.cast(y == 1, p.dtype) * -ops.log(p + COLE_EPSILON)
            + ops.cast(y == 0, p.dtype) * -ops.log(1.0 - p + COLE_EPSILON))
    return main + regulariser


class _FieldLoss(keras.losses.Loss):
    """A Keras loss over one of the per-entry functions above, its arguments in its config.
    ``entrywise``: see :class:`WeightedBinaryCrossentropy` (not CSL's batch-wide top-k, nor
    EPR's batch regulariser)."""

    _function = None
    entrywise = False

    def __init__(self, reduction: str | None = "sum_over_batch_size", name: str | None = None,
                 dtype=None, **arguments) -> None:
        super().__init__(name=name or type(self)._function.__name__, reduction=reduction,
                         dtype=dtype)
        self.arguments = arguments

    def call(self, y_true, y_pred):
        return type(self)._function(_same_rank(y_true, y_pred), y_pred, **self.arguments)

    def get_config(self) -> dict:
        return {**super().get_config(), **self.arguments}


@keras.saving.register_keras_serializable(package="mlml_tf")
class AsymmetricLoss(_FieldLoss):
    """Asymmetric Loss (ASL, Ridnik et al., ICCV 2021), on logits, labels 0/1; defaults of the
    authors' class. See :func:`asymmetric_loss`.

    Example:
        >>> model.compile(optimizer="adam", loss=AsymmetricLoss(gamma_pos=0, gamma_neg=4))
    """

    _function = staticmethod(asymmetric_loss)
    entrywise = True

    def __init__(self, gamma_pos: float = 1.0, gamma_neg: float = 4.0, clip: float = 0.05,
                 eps: float = ASL_EPSILON, **kwargs) -> None:
        _check_nonnegative(gamma_pos=gamma_pos, gamma_neg=gamma_neg, clip=clip, eps=eps)
        super().__init__(gamma_pos=float(gamma_pos), gamma_neg=float(gamma_neg),
                         clip=float(clip), eps=float(eps), **kwargs)


@keras.saving.register_keras_serializable(package="mlml_tf")
class PartialSelectiveLoss(_FieldLoss):
    """Class-aware Selective Loss (CSL, Ben-Baruch et al., CVPR 2022) and its ``negative`` and
    ``ignore`` modes, on logits, labels 1 / 0 / -1; defaults of the authors' command line.
    ``prior``: the class prior (length C), e.g. from :func:`read_class_prior`. See
    :func:`partial_selective_loss`.

    Example:
        >>> loss = PartialSelectiveLoss("selective", gamma_unann=4, prior=prior,
        ...                             prior_threshold=0.5)
    """

    _function = staticmethod(partial_selective_loss)

    def __init__(self, mode: str = "negative", gamma_pos: float = 0.0, gamma_neg: float = 1.0,
                 gamma_unann: float = 2.0, alpha_pos: float = 1.0, alpha_neg: float = 1.0,
                 alpha_unann: float = 1.0, clip: float = 0.0, likelihood_topk: int = 5,
                 prior=None, prior_threshold: float = 0.05, **kwargs) -> None:
        if mode not in CSL_MODES:
            raise DataError(f"mode must be one of {', '.join(CSL_MODES)}, not {mode!r}")
        _check_nonnegative(gamma_pos=gamma_pos, gamma_neg=gamma_neg, gamma_unann=gamma_unann,
                           alpha_pos=alpha_pos, alpha_neg=alpha_neg, alpha_unann=alpha_unann,
                           clip=clip, likelihood_topk=likelihood_topk,
                           prior_threshold=prior_threshold)
        if int(likelihood_topk) != likelihood_topk:
            raise DataError(f"likelihood_topk must be a whole number, not {likelihood_topk!r}")
        if prior is not None:
            prior = np.asarray(prior, dtype=np.float64)
            if prior.ndim != 1 or not np.isfinite(prior).all():
                raise DataError("prior must be one finite number per class")
            prior = prior.tolist()
        super().__init__(mode=mode, gamma_pos=float(gamma_pos), gamma_neg=float(gamma_neg),
                         gamma_unann=float(gamma_unann), alpha_pos=float(alpha_pos),
                         alpha_neg=float(alpha_neg), alpha_unann=float(alpha_unann),
                         clip=float(clip), likelihood_topk=int(likelihood_topk), prior=prior,
                         prior_threshold=float(prior_threshold), **kwargs)


@keras.saving.register_keras_serializable(package="mlml_tf")
class AssumeNegative(_FieldLoss):
    """AN (``label_smoothing=0``), AN-LS (0.1) and WAN (``weak=True``) of Cole et al. (CVPR
    2021), on probabilities, labels 1 / 0 / -1. See :func:`assume_negative`.

    Example:
        >>> model.compile(optimizer="adam", loss=AssumeNegative(label_smoothing=0.1))
    """

    _function = staticmethod(assume_negative)
    entrywise = True

    def __init__(self, label_smoothing: float = 0.0, weak: bool = False, **kwargs) -> None:
        if not 0.0 <= label_smoothing < 1.0:
            raise DataError(f"label_smoothing {label_smoothing!r} is outside [0, 1)")
        super().__init__(label_smoothing=float(label_smoothing), weak=bool(weak), **kwargs)


@keras.saving.register_keras_serializable(package="mlml_tf")
class ExpectedPositiveRegularization(_FieldLoss):
    """EPR of Cole et al. (CVPR 2021), on probabilities, labels 1 / 0 / -1:
    ``expected_positives`` is k, the expected number of positives per row (the authors use 2.9
    for COCO, 1.9 for NUS-WIDE). See :func:`expected_positive_regularization`.

    Example:
        >>> model.compile(optimizer="adam", loss=ExpectedPositiveRegularization(2.9))
    """

    _function = staticmethod(expected_positive_regularization)

    def __init__(self, expected_positives: float, **kwargs) -> None:
        _check_nonnegative(expected_positives=expected_positives)
        super().__init__(expected_positives=float(expected_positives), **kwargs)


def _check_nonnegative(**values) -> None:
    for name, value in values.items():
        if not (isinstance(value, int | float | np.number) and np.isfinite(value) and value >= 0):
            raise DataError(f"{name} must be a finite number of at least 0, not {value!r}")


# ------------------------------------------------------------- methods that revise their labels
#
# Their per-row state (ROLE's label estimator, LL-Cp's flipped labels, pseudo-labels) lives in
# the trainer (:mod:`mlml_tf.trainer`); the functions here are the batch rules, pure.

#: The ways Large Loss Matters modifies the large losses of unknown entries.
LARGE_LOSS_MODES: tuple[str, ...] = ("rejection", "correction")


def _bce_as_torch(target, z):
    """Binary cross-entropy from logits rounded as PyTorch's ``binary_cross_entropy_with_logits``
    rounds it on a CPU: ``(1 - t) z - log_sigmoid(z)``, log_sigmoid = min(z, 0) - log1p(exp(-|z|))
    with each step rounded to float32 (computed in float64, so that each rounding is the correct
    one). The subtraction cancels where t = 0 and z << 0 (the loss is then far below one unit in
    the last place of z): where the authors' rule ranks such losses, only the same rounding
    ranks them the same."""
    z64 = ops.cast(z, "float64")
    small = ops.cast(ops.cast(ops.exp(-ops.abs(z64)), "float32"), "float64")
    log1p = ops.cast(ops.log1p(small), z.dtype)
    log_sigmoid = ops.minimum(z, 0.0) - log1p
    return (1.0 - target) * z - log_sigmoid


def _large_loss_parts(y_true, logits, rate):
    """The pieces of the batch rule of Large Loss Matters: the loss against the observed labels,
    the loss against the flipped ones, the k-th largest loss of an unknown entry, the unknown
    entries' losses (0 elsewhere), and whether the rule applies (rate > 0)."""
    y, z = _logits_and_labels(y_true, logits)
    target = ops.cast(y == 1, z.dtype)
    loss = _bce_as_torch(target, z)
    corrected = _bce_as_torch(1.0 - target, z)
    unknown_loss = ops.cast(y == -1, z.dtype) * loss
    entries = ops.cast(ops.shape(z)[0] * ops.shape(z)[1], "float64")
    rate = (ops.convert_to_tensor(rate, "float64") if isinstance(rate, int | float)
            else ops.cast(rate, "float64"))
    # The authors' k: ceil(B C (1 - clean_rate)) with clean_rate = 1 - rate, in float64.
    k = ops.cast(ops.ceil(entries * (1.0 - (1.0 - rate))), "int32")
    k = ops.clip(k, 1, ops.cast(entries, "int32"))
    threshold = ops.top_k(ops.reshape(unknown_loss, (-1,)), k, sorted=True)[0][k - 1]
    return loss, corrected, threshold, unknown_loss, rate > 0


def large_loss_matters(y_true, logits, rate, mode: str = "rejection"):
    """Per-entry losses of Large Loss Matters (Kim et al., CVPR 2022) after the batch rule.

    Binary cross-entropy from logits against the observed labels (y_true 1 / 0 / -1; unknown
    entries as negatives). When ``rate`` > 0, with k = ceil(B x C x rate), every entry whose
    loss as an unknown entry (0 for the others) is at or above the k-th largest of those is
    modified: ``"rejection"`` sets its loss to 0 (LL-R), ``"correction"`` takes its loss against
    the flipped label instead (LL-Ct; LL-Cp with rate = delta). As in the authors' code, an
    entry is kept only where its unknown-entry loss is strictly below that k-th largest value:
    ties are modified, and when k exceeds the unknown entries of positive loss the k-th value is
    0 and every entry of the batch is modified. ``rate`` 0 (the first epoch) modifies nothing.
    Returns the (B, C) losses whose mean over the B x C entries is the authors' loss.

    Example:
        >>> y = np.array([[1.0, -1.0, -1.0, 0.0]])
        >>> large_loss_matters(y, np.array([[2.0, 3.0, -1.0, 0.5]]), rate=0.25)[0, 1]  # rejected
        0.0
    """
    return _modified_losses(_large_loss_parts(y_true, logits, rate), mode)


def large_loss_flips(y_true, logits, rate):
    """(B, C) booleans: the unknown entries that LL-Cp turns into positives for good, those
    whose loss is strictly above the k-th largest unknown loss (:func:`large_loss_matters`)."""
    return _flips(_large_loss_parts(y_true, logits, rate))


def _modified_losses(parts, mode: str):
    """:func:`large_loss_matters` from the pieces of :func:`_large_loss_parts`."""
    if mode not in LARGE_LOSS_MODES:
        raise DataError(f"mode must be one of {', '.join(LARGE_LOSS_MODES)}, not {mode!r}")
    loss, corrected, threshold, unknown_loss, applies = parts
    modified = ops.zeros_like(loss) if mode == "rejection" else corrected
    return ops.where(applies & ~(unknown_loss < threshold), modified, loss)


def _flips(parts):
    """:func:`large_loss_flips` from the pieces of :func:`_large_loss_parts`."""
    _, _, threshold, unknown_loss, applies = parts
    return applies & (unknown_loss > threshold)


def role_loss(y_true, y_pred, estimates, expected_positives: float):
    """Per-entry ROLE loss (Cole et al., CVPR 2021) on probabilities, labels 1 / 0 / -1.

    ``y_pred`` the classifier's probabilities, ``estimates`` the label estimator's (its own
    sigmoid) for the same rows. Half the sum of: the positive terms -log(x + 1e-5) of both; the
    cross-entropy of the predictions against the estimates, the estimates held constant, and of
    the estimates against the predictions, the predictions held constant; and EPR's regulariser
    of both (added to every entry, so that the mean over the B x C entries holds it once). The
    authors' code allows no annotated negative; here, as in
    :func:`expected_positive_regularization`, an annotated negative adds -log(1 - x + 1e-5) of
    both, so that with labels 1 / -1 the loss is the authors'.
    """
    y, p = _logits_and_labels(y_true, y_pred)
    e = ops.cast(ops.convert_to_tensor(estimates), p.dtype)
    positive, negative = ops.cast(y == 1, p.dtype), ops.cast(y == 0, p.dtype)

    def neg_log(x):
        return -ops.log(x + COLE_EPSILON)

    def regulariser(x):
        classes = ops.cast(ops.shape(x)[-1], x.dtype)
        return ops.square(ops.mean(ops.sum(x, axis=-1)) - expected_positives) / (
            classes * classes)

    fixed_e, fixed_p = ops.stop_gradient(e), ops.stop_gradient(p)
    observed = (positive * (neg_log(p) + neg_log(e))
                + negative * (neg_log(1.0 - p) + neg_log(1.0 - e)))
    cross = (fixed_e * neg_log(p) + (1.0 - fixed_e) * neg_log(1.0 - p)
             + fixed_p * neg_log(e) + (1.0 - fixed_p) * neg_log(1.0 - e))
    return 0.5 * observed + 0.5 * cross + 0.5 * (regulariser(p) + regulariser(e))


def role_initial_logits(observed: np.ndarray, seed: int) -> np.ndarray:
    """The label estimator's logits at the start, as Cole et al. set them: logit(0.995) on
    annotated positives, logit(0.005) on annotated negatives, and uniform in
    (-logit(0.6), logit(0.6)) on unknown entries, drawn from ``seed``. float32, (rows, classes).
    """
    def logit(q):
        return float(np.log(q / (1.0 - q)))

    rng = np.random.default_rng(seed)
    spread = logit(0.6)
    values = (spread * (2.0 * rng.random(observed.shape) - 1.0)).astype(np.float32)
    values[observed == 1] = logit(0.995)
    values[observed == 0] = logit(0.005)
    return values


def pseudo_labels(y_true, probabilities, positive_threshold: float = 0.9,
                  negative_threshold: float = 0.05):
    """Labels with unknown entries pseudo-labelled from the network's own probabilities: an
    unknown entry (-1) whose probability is at least ``positive_threshold`` becomes 1, at most
    ``negative_threshold`` becomes 0, else stays -1. Annotated entries are never touched."""
    y, p = _logits_and_labels(y_true, probabilities)
    unknown = y == -1
    guess = ops.where(p >= positive_threshold, 1.0, ops.where(p <= negative_threshold, 0.0, -1.0))
    return ops.where(unknown, ops.cast(guess, y.dtype), y)


def class_positive_rates(labels, unknown_weight: float = 0.0,
                         minimum: float = 1e-6) -> np.ndarray:
    """(C,) each class's share of positives in its loss, the statistic
    :func:`balanced_crossentropy` weighs with: P / (P + N + u U) over the rows of ``labels``
    (1 / 0 / -1), with P, N and U the class's positive, negative and unknown entries and u the
    ``unknown_weight`` the loss gives unknown entries; clipped to [minimum, 1 - minimum]."""
    labels = np.asarray(labels)
    positives = (labels == 1).sum(axis=0).astype(np.float64)
    mass = positives + (labels == 0).sum(axis=0) + unknown_weight * (labels == -1).sum(axis=0)
    rates = np.divide(positives, mass, out=np.zeros_like(positives), where=mass > 0)
    return np.clip(rates, minimum, 1.0 - minimum)


def balanced_crossentropy(y_true, y_pred, positive_rate, max_weight: float = 10.0,
                          unknown_weight: float = 0.0):
    """Per-entry cross-entropy on logits, labels 1 / 0 / -1, each class's positives and
    negatives weighed against its imbalance: positives by min(1 / (2 pi_c), max_weight),
    negatives by min(1 / (2 (1 - pi_c)), max_weight), with pi_c = ``positive_rate``, the share
    of positives in the class's loss (:func:`class_positive_rates` with the same
    ``unknown_weight``), so that a class's positives and negatives weigh the same in its loss.
    Unknown entries count as negatives with ``unknown_weight`` times the negative weight (0:
    ignored)."""
    y, z = _logits_and_labels(y_true, y_pred)
    rate = ops.cast(ops.convert_to_tensor(positive_rate), z.dtype)
    w_pos = ops.minimum(0.5 / rate, max_weight)
    w_neg = ops.minimum(0.5 / (1.0 - rate), max_weight)
    positive = ops.cast(y == 1, z.dtype)
    negative = ops.cast(y == 0, z.dtype) + unknown_weight * ops.cast(y == -1, z.dtype)
    # softplus(-z) = -log p, softplus(z) = -log(1 - p), stable for any z.
    return positive * w_pos * ops.softplus(-z) + negative * w_neg * ops.softplus(z)


@keras.saving.register_keras_serializable(package="mlml_tf")
class BalancedCrossentropy(_FieldLoss):
    """:func:`balanced_crossentropy` as a Keras loss, on logits, labels 1 / 0 / -1; usable with
    any method's targets.

    Example:
        >>> loss = BalancedCrossentropy(class_positive_rates(partial_labels), max_weight=10)
    """

    _function = staticmethod(balanced_crossentropy)
    entrywise = True

    def __init__(self, positive_rate, max_weight: float = 10.0, unknown_weight: float = 0.0,
                 **kwargs) -> None:
        rate = np.asarray(positive_rate, dtype=np.float64)
        if rate.ndim != 1 or not np.isfinite(rate).all() or (rate <= 0).any() or (
                rate >= 1).any():
            raise DataError("positive_rate must be one number in (0, 1) per class")
        _check_nonnegative(max_weight=max_weight, unknown_weight=unknown_weight)
        super().__init__(positive_rate=rate.tolist(), max_weight=float(max_weight),
                         unknown_weight=float(unknown_weight), **kwargs)
