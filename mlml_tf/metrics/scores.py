"""Scores of multi-label predictions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    hamming_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from mlml_tf.errors import DataError
from mlml_tf.labels.checks import UNKNOWN, check_labels, check_partial_labels

#: Default decision threshold (docs/original.md section 7).
DEFAULT_THRESHOLD = 0.5


#: The scalar metrics of :func:`evaluate`, in the order tables show them.
SCORE_KEYS: tuple[str, ...] = (
    "map",
    "precision_micro",
    "recall_micro",
    "f1_micro",
    "roc_auc_micro",
    "roc_auc_macro",
    "roc_auc_weighted",
    "exact_match_accuracy",
    "hamming_loss",
)


def check_predictions(y_true: np.ndarray, y_prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(y_true as bool, y_prob as float64)`` or raise DataError.

    ``y_true`` must be a (rows, classes) 0/1 matrix with at least one row, ``y_prob`` finite
    scores in [0, 1] of the same shape.
    """

    truth = check_labels(y_true, "y_true")
    prob = np.asarray(y_prob)
    if prob.shape != truth.shape:
        raise DataError(f"y_prob has shape {prob.shape}, y_true has shape {truth.shape}")
    if truth.shape[0] == 0:
        raise DataError("no rows to evaluate")
    if not np.issubdtype(prob.dtype, np.number) or prob.dtype == bool:
        raise DataError(f"y_prob must hold numbers, got dtype {prob.dtype}")
    prob = prob.astype(np.float64)
    bad = ~np.isfinite(prob) | (prob < 0) | (prob > 1)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DataError(f"y_prob[{r}, {c}] = {prob[r, c].item()!r} is not a probability in [0, 1]")
    return truth, prob


def average_precisions(y_true: np.ndarray, y_prob: np.ndarray) -> np.ndarray:
    """The average precision of each class (non-interpolated, as scikit-learn's
    ``average_precision_score``), NaN for a class with no positive.

    ``y_true`` may hold -1 (unknown): those entries are left out of their class's ranking,
    which makes this the partial AP of partially annotated test sets.
    """

    truth = check_partial_labels(y_true, "y_true")
    _, prob = check_predictions(truth != 0, y_prob)
    ap = np.full(truth.shape[1], np.nan)
    for c in range(truth.shape[1]):
        known = truth[:, c] != UNKNOWN
        positive = truth[known, c] == 1
        if positive.any():
            ap[c] = average_precision_score(positive, prob[known, c])
    return ap


def mean_average_precision(y_true: np.ndarray, y_prob: np.ndarray) -> float | None:
    """mAP x100, as the field reports it: the mean of :func:`average_precisions` over the
    classes with at least one positive (the others are left out, never averaged as 0), or None
    when no class has one. Entries of ``y_true`` equal to -1 are left out of their class's
    ranking (the partial mAP).

    Example:
        >>> y = np.array([[1, 0], [0, 1], [1, -1], [0, 0]])
        >>> p = np.array([[0.9, 0.2], [0.1, 0.7], [0.6, 0.8], [0.7, 0.1]])
        >>> round(mean_average_precision(y, p), 2)
        91.67
    """

    ap = average_precisions(y_true, y_prob)
    defined = np.isfinite(ap)
    return float(100 * ap[defined].mean()) if defined.any() else None


def _thresholds(threshold: float | Sequence[float] | np.ndarray, n_classes: int) -> np.ndarray:
    t = np.asarray(threshold, dtype=np.float64)
    if t.ndim == 0:
        t = np.full(n_classes, float(t))
    if t.shape != (n_classes,):
        raise DataError(f"threshold must be a number or one per class ({n_classes}), "
                        f"got shape {t.shape}")
    if not (np.isfinite(t) & (t >= 0) & (t <= 1)).all():
        raise DataError(f"thresholds must lie in [0, 1], got {t[~((t >= 0) & (t <= 1))][:5]}")
    return t


def _class_names(class_names: Sequence[str] | None, n_classes: int) -> list[str]:
    if class_names is None:
        return [str(c) for c in range(n_classes)]
    names = [str(n) for n in class_names]
    if len(names) != n_classes:
        raise DataError(f"{len(names)} class names for {n_classes} classes")
    return names


def faithful_truncation(
    y_true: np.ndarray, y_prob: np.ndarray, batch_size: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """The original's scoring defect (docs/original.md section 7): the last N mod ``batch_size``
    rows all zero.

    The original predicted the test set in full batches only and left the remaining rows at zero
    in both the predictions and the ground truth, which were then scored as true negatives.

    Returns:
        Copies of ``(y_true, y_prob)`` with those trailing rows set to 0.

    Example:
        >>> t, p = faithful_truncation(np.ones((35, 2)), np.ones((35, 2)))
        >>> int((t.sum(axis=1) == 0).sum())   # 35 mod 32 = 3 trailing rows
        3
    """
    if batch_size < 1:
        raise DataError(f"batch_size must be positive, got {batch_size}")
    truth, prob = np.array(y_true, copy=True), np.array(y_prob, copy=True)
    if truth.shape[0] != prob.shape[0]:
        raise DataError(f"{truth.shape[0]} ground-truth rows for {prob.shape[0]} prediction rows")
    kept = truth.shape[0] - truth.shape[0] % batch_size
    truth[kept:] = 0
    prob[kept:] = 0
    return truth, prob


def _confusion(truth: np.ndarray, pred: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class counts of the 2 x 2 confusion matrix, each of shape (C,)."""

    tp = (truth & pred).sum(axis=0)
    fp = (~truth & pred).sum(axis=0)
    fn = (truth & ~pred).sum(axis=0)
    tn = (~truth & ~pred).sum(axis=0)
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn}


def _defined_auc_classes(truth: np.ndarray) -> np.ndarray:
    positives = truth.sum(axis=0)
    return (positives > 0) & (positives < truth.shape[0])


def _per_class_auc(truth: np.ndarray, prob: np.ndarray) -> np.ndarray:
    auc = np.full(truth.shape[1], np.nan)
    defined = _defined_auc_classes(truth)
    if defined.any():
        auc[defined] = roc_auc_score(truth[:, defined], prob[:, defined], average=None)
    return auc


def _none_if_nan(x: float) -> float | None:
    return None if not np.isfinite(x) else float(x)


def _scored(y_true, y_prob, class_names, threshold, faithful: bool):
    """Checked truth and probabilities, class names, thresholds and the predictions."""
    truth, prob = check_predictions(y_true, y_prob)
    if faithful:
        truth, prob = faithful_truncation(truth, prob)
    names = _class_names(class_names, truth.shape[1])
    t = _thresholds(threshold, truth.shape[1])
    return truth, prob, names, t, prob > t[None, :]


def evaluate(
    y_true: np.ndarray,
    y_prob: np.ndarray,
    class_names: Sequence[str] | None = None,
    threshold: float | Sequence[float] | np.ndarray = DEFAULT_THRESHOLD,
    faithful: bool = False,
) -> dict:
    """The scalar metrics of docs/original.md section 7 at ``threshold``.

    Args:
        y_true: (rows, classes) 0/1 ground truth.
        y_prob: (rows, classes) probabilities in [0, 1].
        class_names: names used in ``auc_undefined_classes``; default ``"0"``, ``"1"``, ...
        threshold: one threshold for all classes or one per class (a score is positive when
            strictly above it).
        faithful: score as the original did, with the last N mod 32 rows zeroed
            (:func:`faithful_truncation`); by default every row is scored.

    Returns:
        A JSON-ready dict: ``map`` (:func:`mean_average_precision`, x100; ``None`` where no
        class has a positive), ``precision_micro``, ``recall_micro``, ``f1_micro`` (scikit-learn,
        0 where undefined), ``roc_auc_micro``, ``roc_auc_macro``, ``roc_auc_weighted`` (``None``
        where undefined; macro and weighted over the classes with a defined AUC only),
        ``exact_match_accuracy`` (subset accuracy), ``hamming_loss``, ``auc_undefined_classes``
        and ``map_undefined_classes`` (names), ``threshold`` (number or per-class list), and
        counts: ``n_samples``, ``n_classes``, ``n_positive_labels``, ``n_predicted_positive``,
        ``true_positives``, ``false_positives``, ``false_negatives``, ``true_negatives``.
    """
    truth, prob, names, t, pred = _scored(y_true, y_prob, class_names, threshold, faithful)
    n, c = truth.shape
    counts = _confusion(truth, pred)

    auc = _per_class_auc(truth, prob)
    defined = np.isfinite(auc)
    ap = average_precisions(truth, prob)
    support = truth.sum(axis=0)
    micro_defined = 0 < truth.sum() < truth.size
    scalar = np.ndim(threshold) == 0
    return {
        "map": float(100 * ap[np.isfinite(ap)].mean()) if np.isfinite(ap).any() else None,
        "precision_micro": float(precision_score(truth, pred, average="micro", zero_division=0)),
        "recall_micro": float(recall_score(truth, pred, average="micro", zero_division=0)),
        "f1_micro": float(f1_score(truth, pred, average="micro", zero_division=0)),
        "roc_auc_micro": float(roc_auc_score(truth.ravel(), prob.ravel()))
        if micro_defined else None,
        "roc_auc_macro": float(auc[defined].mean()) if defined.any() else None,
        "roc_auc_weighted": float(np.average(auc[defined], weights=support[defined]))
        if defined.any() else None,
        "exact_match_accuracy": float(accuracy_score(truth, pred)),
        "hamming_loss": float(hamming_loss(truth, pred)),
        "auc_undefined_classes": [names[i] for i in np.flatnonzero(~defined)],
        "map_undefined_classes": [names[i] for i in np.flatnonzero(~np.isfinite(ap))],
        "threshold": float(t[0]) if scalar else [float(x) for x in t],
        "n_samples": int(n),
        "n_classes": int(c),
        "n_positive_labels": int(support.sum()),
        "n_predicted_positive": int(pred.sum()),
        "true_positives": int(counts["tp"].sum()),
        "false_positives": int(counts["fp"].sum()),
        "false_negatives": int(counts["fn"].sum()),
        "true_negatives": int(counts["tn"].sum()),
    }


def annotated_metrics(
    y_true: np.ndarray,
    y_prob: np.ndarray,
    threshold: float | Sequence[float] | np.ndarray = DEFAULT_THRESHOLD,
) -> dict:
    """Scores of a partially annotated ground truth over its annotated entries only.

    ``y_true`` holds 1, 0 or -1 (unknown); the unknown entries are left out of every count:
    ``partial_map`` (:func:`mean_average_precision` with them left out of each class's
    ranking, x100), ``precision_micro``, ``recall_micro``, ``f1_micro`` and ``roc_auc_micro``
    over the annotated entries, and ``n_annotated_entries`` / ``n_unknown_entries``. What
    :func:`evaluate` gives for the same table counts the unknown entries as negatives.

    Example:
        >>> y = np.array([[1, -1], [0, 1], [-1, 0]])
        >>> p = np.array([[0.9, 0.8], [0.6, 0.7], [0.3, 0.1]])
        >>> annotated_metrics(y, p)["precision_micro"]
        0.6666666666666666
    """

    partial = check_partial_labels(y_true, "y_true")
    _, prob = check_predictions(partial == 1, y_prob)
    t = _thresholds(threshold, partial.shape[1])
    known = partial != UNKNOWN
    truth, pred, score = partial[known] == 1, (prob > t[None, :])[known], prob[known]
    return {
        "partial_map": mean_average_precision(partial, prob),
        "precision_micro": float(precision_score(truth, pred, zero_division=0)),
        "recall_micro": float(recall_score(truth, pred, zero_division=0)),
        "f1_micro": float(f1_score(truth, pred, zero_division=0)),
        "roc_auc_micro": float(roc_auc_score(truth, score)) if 0 < truth.sum() < truth.size
        else None,
        "n_annotated_entries": int(known.sum()),
        "n_unknown_entries": int((~known).sum()),
    }
