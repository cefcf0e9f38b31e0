"""A run's result files: the original's four, exactly as it wrote them, and ours beside them.

``predictions.out``, ``test_ground_truth_classes.txt``, ``evaluation_results.txt`` and
``results_report.csv`` hold what the original's code wrote, byte for byte (docs/original.md
section 7), so that a reader written for the original's files reads ours. What mlml-tf adds
goes to files of its own: ``metrics.json`` (every score, the run's settings, ``faithful``),
``results_extra.csv`` (the per-class report, unrounded, with our columns) and
``evaluation_extra.txt`` (the scores beyond the original's five, for people).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mlml_tf.files.atomic import atomic_path
from mlml_tf.files.tables import csv_field
from mlml_tf.labels.checks import UNKNOWN, check_partial_labels
from mlml_tf.metrics.report import REPORT_COLUMNS, per_class_report
from mlml_tf.metrics.scores import (
    DEFAULT_THRESHOLD,
    SCORE_KEYS,
    annotated_metrics,
    check_predictions,
    evaluate,
)

METRIC_LABELS: dict[str, str] = {
    "map": "mAP",
    "precision_micro": "Precision",
    "recall_micro": "Recall",
    "f1_micro": "F1",
    "roc_auc_micro": "ROC-AUC",
    "roc_auc_macro": "Macro ROC-AUC",
    "roc_auc_weighted": "Weighted ROC-AUC",
    "exact_match_accuracy": "Exact-match accuracy",
    "hamming_loss": "Hamming loss",
}


PREDICTIONS = "predictions.out"


#: Written last by mlml-tf: a run folder of mlml-tf without it is not a result (yet).
COMPLETE = "complete.json"


#: The trained head of an mlml-tf run: what tells its folder from one of the original.
HEAD_WEIGHTS = "head.weights.h5"


GROUND_TRUTH = "test_ground_truth_classes.txt"


EVALUATION = "evaluation_results.txt"


REPORT = "results_report.csv"


#: Ours: the scores beyond the original's five lines, for people (``metrics.json`` holds them).
EVALUATION_EXTRA = "evaluation_extra.txt"


#: Ours: the per-class report, unrounded, the original's nine columns and ours.
REPORT_EXTRA = "results_extra.csv"


METRICS = "metrics.json"


RUN_FORMAT = "mlml-tf run"


#: 2: the original's two text files exactly as it wrote them, ``results_extra.csv``,
#: ``evaluation_extra.txt`` and ``"faithful"``; 1 (up to mlml-tf 0.5): the two text files held
#: the original's lines and columns first, then ours.
RUN_FORMAT_VERSION = 2


def _jsonable(value):
    """Plain JSON values: numpy scalars and arrays unpacked, paths as text, NaN and inf as null."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def _format_value(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.6f}"
    return str(value)


def original_evaluation_lines(metrics: Mapping) -> list[str]:
    """The five lines the original wrote to ``evaluation_results.txt``, spelled as it did:
    exact-match accuracy as a percentage, macro, micro and weighted ROC-AUC, Hamming loss,
    each number as Python's ``str`` of it (docs/original.md section 7). A score that no class
    defines (the original stopped there) is ``nan``, which ``float`` reads."""

    def number(key: str, scale: float = 1.0) -> str:
        value = metrics[key]
        return str(float("nan") if value is None else float(value) * scale)

    return [
        "Exact match accuracy is: " + number("exact_match_accuracy", 100.0) + "%",
        "Area Under the Curve (AUC) is: " + number("roc_auc_macro"),
        "Micro AUC is:" + number("roc_auc_micro"),
        "Weighted AUC is:" + number("roc_auc_weighted"),
        "Hamming Loss (ratio of incorrect tags) is: " + number("hamming_loss"),
    ]


def evaluation_text(metrics: Mapping) -> str:
    """``evaluation_results.txt`` as the original wrote it: its five lines, joined by ``\n``,
    no newline at the end."""
    return "\n".join(original_evaluation_lines(metrics))


def evaluation_extra_text(metrics: Mapping, extra: Mapping | None = None) -> str:
    """``evaluation_extra.txt``: what mlml-tf reports beyond the original's five lines, for
    people (``metrics.json`` holds the same)."""

    threshold = metrics["threshold"]
    lines = [
        f"Test rows: {metrics['n_samples']}",
        f"Classes: {metrics['n_classes']}",
        "Threshold: " + (_format_value(float(threshold)) if np.ndim(threshold) == 0
                         else f"per class (see {REPORT_EXTRA})"),
    ]
    lines += [f"{METRIC_LABELS[key]}: {_format_value(metrics[key])}" for key in SCORE_KEYS]
    undefined = metrics["auc_undefined_classes"]
    lines.append("ROC-AUC undefined (no positive or no negative in the ground truth) for: "
                 + (", ".join(undefined) if undefined else "no class"))
    no_positive = metrics["map_undefined_classes"]
    lines.append("Average precision undefined (no positive in the ground truth), left out of "
                 "the mAP, for: " + (", ".join(no_positive) if no_positive else "no class"))
    lines += [
        f"Positive labels: {metrics['n_positive_labels']}",
        f"Predicted positives: {metrics['n_predicted_positive']}",
        f"True positives: {metrics['true_positives']}",
        f"False positives: {metrics['false_positives']}",
        f"False negatives: {metrics['false_negatives']}",
        f"True negatives: {metrics['true_negatives']}",
    ]
    annotated = metrics.get("annotated")
    if annotated:
        lines.append(f"Over the {annotated['n_annotated_entries']} annotated entries "
                     f"({annotated['n_unknown_entries']} unknown left out): "
                     + ", ".join(f"{key} {_format_value(annotated[key])}"
                                 for key in ("partial_map", "precision_micro", "recall_micro",
                                             "f1_micro", "roc_auc_micro")))
    for key, value in sorted((extra or {}).items()):
        lines.append(f"{key}: {json.dumps(_jsonable(value), sort_keys=True)}")
    return "\n".join(lines) + "\n"


#: The original's ``results_report.csv`` columns (after its transpose), from ours (docs/original.md
#: section 7).
ORIGINAL_REPORT_COLUMNS: dict[str, str] = {
    "positive_rate": "Ratio of positive samples",
    "accuracy": "Model accuracy",
    "true_positive_rate": "True positives ratio",
    "true_negative_rate": "True negatives ratio",
    "auc": "AUC",
    "recall": "Recall",
    "precision": "Precision",
    "f1": "f1-score",
    "kappa": "Kappa score",
}


#: The row the original appended to its report: the mean over classes of every column.
AVERAGE_ROW = "average"


def report_bytes(report: pd.DataFrame) -> bytes:
    """``results_report.csv`` as the original wrote it (``pandas.DataFrame.to_csv(...,
    float_format="%.2f")`` of its transposed table).

    A header whose first field is empty, then the nine columns under the original's names;
    one row per class, named as ``report``'s index (quoted where it holds a comma, a quote or a
    line end); a last ``average`` row, the mean over classes of each column, undefined values
    left out; numbers as ``%.2f``, an undefined value (NaN) as an empty field; ``\n`` after
    every line.

    Args:
        report: :func:`mlml_tf.metrics.per_class_report`'s table (its other columns are not
            written here but in :func:`extra_report_bytes`).
    """

    table = report[list(ORIGINAL_REPORT_COLUMNS)].astype(np.float64)
    average = table.mean(axis=0).to_numpy(np.float64)

    def cells(values) -> list[str]:
        return ["" if np.isnan(v) else f"{v:.2f}" for v in values]

    lines = [",".join(["", *ORIGINAL_REPORT_COLUMNS.values()])]
    for name, row in zip(table.index, table.to_numpy(), strict=True):
        lines.append(",".join([csv_field(str(name)), *cells(row)]))
    lines.append(",".join([AVERAGE_ROW, *cells(average)]))
    return ("\n".join(lines) + "\n").encode()


def extra_report_bytes(report: pd.DataFrame) -> bytes:
    """``results_extra.csv``: every column of :func:`mlml_tf.metrics.per_class_report` under
    its own name, one row per class (first field ``class``), unrounded: each number as
    Python's shortest exact repr, the counts as whole numbers, ``auc_defined`` as 0/1, NaN
    as an empty field."""

    def cell(value) -> str:
        if isinstance(value, bool | np.bool_):
            return str(int(value))
        if isinstance(value, int | np.integer):
            return str(int(value))
        return "" if np.isnan(value) else repr(float(value))

    lines = [",".join(["class", *REPORT_COLUMNS])]
    for name, row in zip(report.index, report[list(REPORT_COLUMNS)].itertuples(index=False),
                         strict=True):
        lines.append(",".join([csv_field(str(name)), *(cell(v) for v in row)]))
    return ("\n".join(lines) + "\n").encode()


def write_run_outputs(
    run_dir: str | os.PathLike,
    y_true: np.ndarray,
    y_prob: np.ndarray,
    class_names: Sequence[str],
    thresholds: float | Sequence[float] | np.ndarray | None = None,
    extra: Mapping | None = None,
    faithful: bool = False,
) -> dict:
    """Score one run and write its result files, each atomically: the original's four as it
    wrote them, then ``results_extra.csv``, ``evaluation_extra.txt`` and ``metrics.json``.

    Args:
        run_dir: the run folder, ``<output>/<experiment>/<run folder>``; created if needed.
        y_true: (rows, classes) 0/1 test labels, or 1/0/-1 where the table leaves entries
            unknown: the scores then count them as negatives and ``metrics["annotated"]``
            adds :func:`mlml_tf.metrics.annotated_metrics` (the partial mAP and micro scores
            over the annotated entries only); the ground-truth file keeps the -1.
        y_prob: (rows, classes) test probabilities.
        class_names: one name per class.
        thresholds: one threshold or one per class (e.g. from
            :func:`mlml_tf.metrics.tune_thresholds`); default 0.5.
        extra: JSON-ready details of the run stored in ``metrics.json`` under ``"extra"``
            (numpy values are converted, NaN becomes null).
        faithful: the run was made as the original (``mlml-tf run --faithful``): recorded as
            ``"faithful"`` in ``metrics.json``.

    Returns:
        The metrics, as :func:`mlml_tf.metrics.evaluate` returns them.
    """

    run_dir = Path(run_dir)
    partial = check_partial_labels(y_true, "y_true")
    truth, prob = check_predictions(partial == 1, y_prob)
    names = [str(n) for n in class_names]
    threshold = DEFAULT_THRESHOLD if thresholds is None else thresholds
    metrics = evaluate(truth, prob, names, threshold)
    if (partial == UNKNOWN).any():
        metrics["annotated"] = annotated_metrics(partial, prob, threshold)
    report = per_class_report(truth, prob, names, threshold)
    extra = _jsonable(dict(extra or {}))

    with atomic_path(run_dir / PREDICTIONS) as tmp:
        np.savetxt(tmp, prob, delimiter=",")
    with atomic_path(run_dir / GROUND_TRUTH) as tmp:
        np.savetxt(tmp, partial.astype(np.float64), delimiter=",")
    with atomic_path(run_dir / REPORT) as tmp:
        tmp.write_bytes(report_bytes(report))
    with atomic_path(run_dir / EVALUATION) as tmp:
        tmp.write_bytes(evaluation_text(metrics).encode())
    with atomic_path(run_dir / REPORT_EXTRA) as tmp:
        tmp.write_bytes(extra_report_bytes(report))
    with atomic_path(run_dir / EVALUATION_EXTRA) as tmp:
        tmp.write_bytes(evaluation_extra_text(metrics, extra).encode())
    document = {
        "format": RUN_FORMAT,
        "version": RUN_FORMAT_VERSION,
        "faithful": bool(faithful),
        "classes": names,
        "metrics": metrics,
        "extra": extra,
    }
    with atomic_path(run_dir / METRICS) as tmp:
        tmp.write_text(json.dumps(document, sort_keys=True, indent=2, allow_nan=False) + "\n",
                       encoding="utf-8")
    return metrics
