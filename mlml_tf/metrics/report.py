"""The per-class report and per-class thresholds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from mlml_tf.errors import DataError
from mlml_tf.labels.checks import UNKNOWN, check_partial_labels
from mlml_tf.metrics.scores import (
    DEFAULT_THRESHOLD,
    _confusion,
    _per_class_auc,
    _scored,
    _thresholds,
    average_precisions,
    check_predictions,
)

#: Threshold grid of the per-class F1 tuning (docs/original.md section 7: 0 to 0.99, step 0.01).
THRESHOLD_GRID = np.arange(0, 1, 0.01)


#: Columns of :func:`per_class_report`.
REPORT_COLUMNS: tuple[str, ...] = (
    "positive_rate",
    "accuracy",
    "true_positive_rate",
    "true_negative_rate",
    "auc",
    "auc_defined",
    "average_precision",
    "precision",
    "recall",
    "f1",
    "kappa",
    "support",
    "true_positives",
    "false_positives",
    "false_negatives",
    "true_negatives",
    "threshold",
)


def per_class_report(
    y_true: np.ndarray,
    y_prob: np.ndarray,
    class_names: Sequence[str] | None = None,
    threshold: float | Sequence[float] | np.ndarray = DEFAULT_THRESHOLD,
    faithful: bool = False,
) -> pd.DataFrame:
    """One row per class: the per-class report of docs/original.md section 7.

    Args:
        y_true, y_prob, class_names, threshold, faithful: as in :func:`evaluate`.

    Returns:
        A DataFrame indexed by class name (index name ``"class"``) with the columns of
        ``REPORT_COLUMNS``: ``positive_rate``, ``accuracy``, ``true_positive_rate``,
        ``true_negative_rate``, ``auc``, ``auc_defined``, ``average_precision`` (NaN for a class
        with no positive), ``precision``, ``recall``, ``f1``,
        ``kappa`` (Cohen's), ``support`` (positives in ``y_true``), the four confusion counts and
        ``threshold``. A class with no positive (no negative) has NaN ``true_positive_rate``
        (``true_negative_rate``) and AUC, and ``auc_defined`` False. Precision, recall and F1 are
        0 where undefined, as scikit-learn's ``zero_division=0``; kappa is NaN where undefined
        (truth and prediction both constant and equal).
    """
    truth, prob, names, t, pred = _scored(y_true, y_prob, class_names, threshold, faithful)
    n, c = truth.shape
    k = {key: v.astype(np.float64) for key, v in _confusion(truth, pred).items()}
    tp, fp, fn, tn = k["tp"], k["fp"], k["fn"], k["tn"]
    auc = _per_class_auc(truth, prob)

    def ratio(num: np.ndarray, den: np.ndarray, undefined: float) -> np.ndarray:
        out = np.full(c, undefined)
        np.divide(num, den, out=out, where=den > 0)
        return out

    # Binary Cohen's kappa in closed form, equal to scikit-learn's cohen_kappa_score.
    kappa_den = (tp + fp) * (fp + tn) + (tp + fn) * (fn + tn)
    return pd.DataFrame(
        {
            "positive_rate": (tp + fn) / n,
            "accuracy": (tp + tn) / n,
            "true_positive_rate": ratio(tp, tp + fn, np.nan),
            "true_negative_rate": ratio(tn, tn + fp, np.nan),
            "auc": auc,
            "auc_defined": np.isfinite(auc),
            "average_precision": average_precisions(truth, prob),
            "precision": ratio(tp, tp + fp, 0.0),
            "recall": ratio(tp, tp + fn, 0.0),
            "f1": ratio(2 * tp, 2 * tp + fp + fn, 0.0),
            "kappa": ratio(2 * (tp * tn - fn * fp), kappa_den, np.nan),
            "support": (tp + fn).astype(np.int64),
            "true_positives": tp.astype(np.int64),
            "false_positives": fp.astype(np.int64),
            "false_negatives": fn.astype(np.int64),
            "true_negatives": tn.astype(np.int64),
            "threshold": t,
        },
        index=pd.Index(names, name="class"),
    )


def tune_thresholds(
    y_true_val: np.ndarray,
    y_prob_val: np.ndarray,
    grid: Sequence[float] | np.ndarray = THRESHOLD_GRID,
) -> np.ndarray:
    """Per-class thresholds that maximize F1 on a validation set (docs/original.md section 7).

    Among thresholds of equal F1 the one closest to 0.5 wins (the smaller of two equally close):
    a class whose validation F1 is flat, e.g. one with no positive there, keeps the default 0.5
    rather than a threshold of 0 that would predict it everywhere.

    Entries of ``y_true_val`` equal to -1 (unknown) are left out of their class's counts: the
    F1 of a class is that of its annotated validation entries.

    Args:
        y_true_val: (rows, classes) 0/1 validation labels, or 1/0/-1.
        y_prob_val: (rows, classes) validation probabilities.
        grid: candidate thresholds in [0, 1]; default 0, 0.01, ..., 0.99.

    Returns:
        float64 array of shape (classes,).

    Example:
        >>> y = np.array([[1], [1], [0], [0]])
        >>> p = np.array([[0.35], [0.3], [0.2], [0.1]])
        >>> float(tune_thresholds(y, p, grid=[0.1, 0.25, 0.5])[0])
        0.25
    """

    partial = check_partial_labels(y_true_val, "y_true_val")
    _, prob = check_predictions(partial == 1, y_prob_val)
    truth, known = partial == 1, partial != UNKNOWN
    g = np.asarray(grid, dtype=np.float64).ravel()
    if g.size == 0:
        raise DataError("the threshold grid is empty")
    _thresholds(g, g.size)
    order = np.argsort(g, kind="stable")
    sorted_g = g[order]
    n, c = truth.shape
    # How many grid values lie strictly below each score: the score is above sorted_g[j] iff
    # j < below. One histogram per class then gives, for every grid value at once, how many
    # scores (and how many positive scores) lie above it, without a loop over grid x classes.
    below = np.searchsorted(sorted_g, prob, side="left")
    offset = (np.arange(c) * (g.size + 1))[None, :]
    hist_all = np.bincount((below + offset)[known], minlength=c * (g.size + 1))
    hist_pos = np.bincount((below + offset)[truth], minlength=c * (g.size + 1))
    above_all = _count_above(hist_all.reshape(c, g.size + 1))
    above_pos = _count_above(hist_pos.reshape(c, g.size + 1))
    positives = truth.sum(axis=0)[:, None]
    den = above_all + positives
    f1 = np.zeros(den.shape)
    np.divide(2.0 * above_pos, den, out=f1, where=den > 0)
    best = f1.max(axis=1, keepdims=True)
    # F1 values are correctly rounded ratios of integers, so equal F1s compare equal exactly.
    ties = f1 == best
    distance = np.where(ties, np.abs(sorted_g - 0.5)[None, :], np.inf)
    pick = np.argmin(distance, axis=1)
    return sorted_g[pick]


def _count_above(hist: np.ndarray) -> np.ndarray:
    """(C, G + 1) histogram of ``below`` -> (C, G) counts with ``below > j`` for each j."""

    tail = np.cumsum(hist[:, ::-1], axis=1)[:, ::-1]
    return tail[:, 1:]
