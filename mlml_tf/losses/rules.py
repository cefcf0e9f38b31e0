"""Batch rules of the methods that revise their labels.
"""

from __future__ import annotations

import numpy as np
from keras import ops

from mlml_tf.errors import DataError
from mlml_tf.losses.field import COLE_EPSILON, _logits_and_labels

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
