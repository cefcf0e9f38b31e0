"""The field's losses.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from mlml_tf.errors import DataError
from mlml_tf.losses.weighted import _same_rank
from mlml_tf.methods.field import ASL_PARAMS, CSL_MODES, CSL_PARAMS

#: Cole et al.'s logarithms: -log(x + 1e-5), no clamp.
COLE_EPSILON = 1e-5


#: The floor of the logarithms of ASL and CSL: log(max(x, 1e-8)).
ASL_EPSILON = ASL_PARAMS["eps"]


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


def asymmetric_loss(y_true, y_pred, gamma_pos: float = ASL_PARAMS["gamma_pos"],
                    gamma_neg: float = ASL_PARAMS["gamma_neg"], clip: float = ASL_PARAMS["clip"],
                    eps: float = ASL_PARAMS["eps"]):
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




def partial_selective_loss(
        y_true, y_pred, mode: str = CSL_PARAMS["mode"],
        gamma_pos: float = CSL_PARAMS["gamma_pos"], gamma_neg: float = CSL_PARAMS["gamma_neg"],
        gamma_unann: float = CSL_PARAMS["gamma_unann"], alpha_pos: float = CSL_PARAMS["alpha_pos"],
        alpha_neg: float = CSL_PARAMS["alpha_neg"], alpha_unann: float = CSL_PARAMS["alpha_unann"],
        clip: float = CSL_PARAMS["clip"], likelihood_topk: int = CSL_PARAMS["likelihood_topk"],
        prior=None, prior_threshold: float = CSL_PARAMS["prior_threshold"]):
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

    def __init__(self, gamma_pos: float = ASL_PARAMS["gamma_pos"],
                 gamma_neg: float = ASL_PARAMS["gamma_neg"], clip: float = ASL_PARAMS["clip"],
                 eps: float = ASL_PARAMS["eps"], **kwargs) -> None:
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

    def __init__(
            self, mode: str = CSL_PARAMS["mode"], gamma_pos: float = CSL_PARAMS["gamma_pos"],
            gamma_neg: float = CSL_PARAMS["gamma_neg"],
            gamma_unann: float = CSL_PARAMS["gamma_unann"],
            alpha_pos: float = CSL_PARAMS["alpha_pos"], alpha_neg: float = CSL_PARAMS["alpha_neg"],
            alpha_unann: float = CSL_PARAMS["alpha_unann"], clip: float = CSL_PARAMS["clip"],
            likelihood_topk: int = CSL_PARAMS["likelihood_topk"], prior=None,
            prior_threshold: float = CSL_PARAMS["prior_threshold"], **kwargs) -> None:
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
