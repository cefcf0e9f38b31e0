"""The result folder of one run, in the original's layout (SPEC section 7).

One run (method, ratio, fold) writes its results under ``<output>/<experiment>/<run folder>/``::

    predictions.out                  test probabilities, np.savetxt(..., delimiter=',')
    test_ground_truth_classes.txt    test labels, np.savetxt(..., delimiter=',')
    evaluation_results.txt           the metrics, for people
    results_report.csv               the per-class report, one row per class
    metrics.json                     the metrics, class names and run details, for programs

The original wrote only the first four (its run folder is a timestamp); a run folder holding just
the two ``np.savetxt`` files is read too, its metrics recomputed from them. ``metrics.json`` is
written last, so its presence marks a complete run.

numpy and pandas only: no TensorFlow.
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from mlml_tf.errors import DataError, atomic_path
from mlml_tf.labels import (
    FPC_DEFAULT_COUNT,
    PAPER_RATIOS,
    UNKNOWN,
    check_partial_labels,
    check_ratio,
)
from mlml_tf.layout import csv_field, protocol_folder, ratio_from_tag, ratio_tag
from mlml_tf.methods import METHODS as _REGISTRY
from mlml_tf.methods import PAPER_METHODS
from mlml_tf.metrics import (
    DEFAULT_THRESHOLD,
    REPORT_COLUMNS,
    SCORE_KEYS,
    annotated_metrics,
    check_predictions,
    evaluate,
    per_class_report,
)

#: The paper's three methods, in the order its tables and figures show them.
METHODS: tuple[str, ...] = PAPER_METHODS
#: Every method (:mod:`mlml_tf.methods`), in the order tables and figures show them: the paper's
#: three, then the field's.
ALL_METHODS: tuple[str, ...] = tuple(_REGISTRY)
#: Their names in the papers.
METHOD_LABELS: dict[str, str] = {name: m.label for name, m in _REGISTRY.items()}
#: Experiment folder names of the original (SPEC 7 and 8), per data set, with t = round(r, 1):
#: "PosLimitited" is spelled as published.
EXPERIMENT_TEMPLATES: dict[str, dict[str, str]] = {
    "coco": {
        "ce": "PosLimited_original_CE_balanced_ratio{t}split_{k}",
        "im-wce": "PosLimitited_weighted_CE_balanced_ratio{t}split_{k}",
        "cb-wce": "CORRELATION_weighted_CE_balanced_ratio{t}split_{k}",
    },
    "nuswide": {
        "ce": "nus_3labels_original_CE{t}split_{k}",
        "im-wce": "nus_3labels_weighted_CE{t}split_{k}",
        "cb-wce": "nus_3labels_correlations_CE{t}split_{k}",
    },
}
#: The data sets whose experiment names the original used; any other data set is named as COCO.
NAMING: tuple[str, ...] = tuple(EXPERIMENT_TEMPLATES)
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
METRICS = "metrics.json"
RUN_FORMAT = "mlml-tf run"
RUN_FORMAT_VERSION = 1

_EXPERIMENT_PATTERNS = [
    (method, re.compile(
        re.escape(template)
        .replace(re.escape("{t}"), r"(?P<t>\d+\.\d+)")
        .replace(re.escape("{k}"), r"(?P<k>\d+)")
    ))
    for templates in EXPERIMENT_TEMPLATES.values()
    for method, template in templates.items()
]


def _check_method(method: str) -> str:
    if method not in ALL_METHODS:
        raise DataError(f"unknown method {method!r}; choose one of {', '.join(ALL_METHODS)}")
    return method


class Experiment(NamedTuple):
    """What an experiment folder's name says: method, ratio (the paper's share of hidden
    positives, or RPS's probability; None for FPC and single positive), fold, protocol and
    FPC's count (None for the others)."""

    method: str
    ratio: float | None
    fold: int
    protocol: str = "paper"
    count: int | None = None


#: The names of the field's runs, and of the paper's methods under other protocols:
#: ``{method}_{protocol folder}_split_{k}``, e.g. ``csl_rps0.5_split_1``, ``asl_missing_labels0.5_
#: split_1``, ``an_single_positive_split_2``.
_FIELD_PATTERN = re.compile(
    r"(?P<method>[a-z-]+)_(?:missing_labels(?P<t>\d+\.\d+)|rps(?P<r>\d+(?:\.\d+)?)"
    r"|fpc(?P<n>\d+)|(?P<single>single_positive))_split_(?P<k>\d+)")


def experiment_name(method: str, ratio: float | None, fold: int, naming: str = "coco",
                    protocol: str = "paper", count: int = FPC_DEFAULT_COUNT) -> str:
    """The experiment folder name of one run: the original's for the paper's methods under the
    paper's protocol (the ratio written as round(r, 1)), ``{method}_{protocol folder}_split_{k}``
    for the others.

    Args:
        method: a method of :data:`METHODS`.
        ratio: the missing-label ratio (paper), or RPS's probability of an unknown entry.
        fold: 1-based fold.
        naming: "coco" (``PosLimited_original_CE_balanced_ratio...``) or "nuswide"
            (``nus_3labels_original_CE...``), the two name families of the original.
        protocol: "paper", "rps", "fpc" or "single-positive".
        count: FPC's count.

    Example:
        >>> experiment_name("im-wce", 0.25, 1)
        'PosLimitited_weighted_CE_balanced_ratio0.2split_1'
        >>> experiment_name("csl", 0.5, 1, protocol="rps")
        'csl_rps0.5_split_1'
    """
    if int(fold) != fold or fold < 1:
        raise DataError(f"fold must be a positive integer, got {fold!r}")
    if naming not in EXPERIMENT_TEMPLATES:
        raise DataError(f"unknown naming {naming!r}; use one of {', '.join(NAMING)}")
    _check_method(method)
    if protocol == "paper" and method in PAPER_METHODS:
        template = EXPERIMENT_TEMPLATES[naming][method]
        return template.format(t=ratio_tag(check_ratio(ratio)), k=int(fold))
    value = {"paper": ratio, "rps": ratio, "fpc": count}.get(protocol)
    return f"{method}_{protocol_folder(protocol, value)}_split_{int(fold)}"


def parse_experiment_name(name: str, ratios: Sequence[float] = PAPER_RATIOS) -> Experiment | None:
    """The :class:`Experiment` an experiment folder name says, or None if it is not one.

    Both data sets' names of the original are recognized, and :func:`experiment_name`'s for
    the field's methods and the other protocols. The ratio in a name of the original is
    rounded to one decimal and is read back as the ratio of ``ratios`` (default the paper's)
    written that way: ``ratio0.2`` is 0.25. Names with the exact ratio (``ratio0.25``, written
    by earlier versions of mlml-tf) are read as they are.

    Example:
        >>> parse_experiment_name("CORRELATION_weighted_CE_balanced_ratio0.8split_3")
        Experiment(method='cb-wce', ratio=0.75, fold=3, protocol='paper', count=None)
    """
    for method, pattern in _EXPERIMENT_PATTERNS:
        match = pattern.fullmatch(name)
        if match:
            return Experiment(method, ratio_from_tag(match["t"], ratios), int(match["k"]))
    match = _FIELD_PATTERN.fullmatch(name)
    if match is None or match["method"] not in ALL_METHODS:
        return None
    fold = int(match["k"])
    if match["t"] is not None:
        return Experiment(match["method"], ratio_from_tag(match["t"], ratios), fold)
    if match["r"] is not None:
        return Experiment(match["method"], float(match["r"]), fold, "rps")
    if match["n"] is not None:
        return Experiment(match["method"], None, fold, "fpc", int(match["n"]))
    return Experiment(match["method"], None, fold, "single-positive")


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
    each number as Python's ``str`` of it (SPEC 7)."""

    def number(key: str, scale: float = 1.0) -> str:
        value = metrics[key]
        return "n/a" if value is None else str(float(value) * scale)

    return [
        "Exact match accuracy is: " + number("exact_match_accuracy", 100.0) + "%",
        "Area Under the Curve (AUC) is: " + number("roc_auc_macro"),
        "Micro AUC is:" + number("roc_auc_micro"),
        "Weighted AUC is:" + number("roc_auc_weighted"),
        "Hamming Loss (ratio of incorrect tags) is: " + number("hamming_loss"),
    ]


def evaluation_text(metrics: Mapping, extra: Mapping | None = None) -> str:
    """``evaluation_results.txt`` of a run: the original's five lines, then mlml-tf's."""
    threshold = metrics["threshold"]
    lines = original_evaluation_lines(metrics) + [
        "",
        f"Test rows: {metrics['n_samples']}",
        f"Classes: {metrics['n_classes']}",
        "Threshold: " + (_format_value(float(threshold)) if np.ndim(threshold) == 0
                         else f"per class (see {REPORT})"),
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


#: The original's ``results_report.csv`` columns (after its transpose), from ours (SPEC 7).
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
    """``results_report.csv`` as the original wrote it, then mlml-tf's columns.

    One row per class and a last ``average`` row (the mean over classes, undefined values left
    out), the original's nine columns first under its names, numbers as ``%.2f``; then the
    remaining columns of :func:`mlml_tf.metrics.per_class_report` (``auc_defined`` as 0/1,
    the confusion counts as integers).
    """
    ours = [c for c in REPORT_COLUMNS if c not in ORIGINAL_REPORT_COLUMNS]
    table = report[list(ORIGINAL_REPORT_COLUMNS) + ours].copy()
    table["auc_defined"] = table["auc_defined"].astype(np.int64)
    integral = [pd.api.types.is_integer_dtype(table[c]) for c in table.columns]
    average = table.mean(axis=0, numeric_only=True).to_numpy(np.float64)

    def cell(value, whole: bool) -> str:
        if pd.isna(value):
            return ""
        return str(int(value)) if whole else f"{value:.2f}"

    header = [""] + [ORIGINAL_REPORT_COLUMNS.get(c, c) for c in table.columns]
    lines = [",".join(csv_field(h) for h in header)]
    for name, row in zip(table.index, table.itertuples(index=False), strict=True):
        lines.append(",".join([csv_field(str(name))]
                              + [cell(v, w) for v, w in zip(row, integral, strict=True)]))
    lines.append(",".join([AVERAGE_ROW] + [cell(v, False) for v in average]))
    return ("\n".join(lines) + "\n").encode()


def write_run_outputs(
    run_dir: str | os.PathLike,
    y_true: np.ndarray,
    y_prob: np.ndarray,
    class_names: Sequence[str],
    thresholds: float | Sequence[float] | np.ndarray | None = None,
    extra: Mapping | None = None,
) -> dict:
    """Score one run and write its five result files, each atomically.

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
        tmp.write_text(evaluation_text(metrics, extra), encoding="utf-8")
    document = {
        "format": RUN_FORMAT,
        "version": RUN_FORMAT_VERSION,
        "classes": names,
        "metrics": metrics,
        "extra": extra,
    }
    with atomic_path(run_dir / METRICS) as tmp:
        tmp.write_text(json.dumps(document, sort_keys=True, indent=2, allow_nan=False) + "\n",
                       encoding="utf-8")
    return metrics


def _load_matrix(path: Path) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            values = np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float64)
    except OSError as err:
        raise DataError(f"cannot read: {err}", file=path) from err
    except ValueError as err:
        raise DataError(f"not a comma-separated table of numbers: {err}", file=path) from err
    if values.size == 0:
        raise DataError("no rows", file=path)
    return values


def read_predictions(
    run_dir: str | os.PathLike, class_names: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(y_true, y_prob)`` of a run folder, from its two ``np.savetxt`` files.

    Raises:
        DataError: naming the file, if one is missing, not numeric, of the wrong shape, or
            holds a label other than 0/1 or a probability outside [0, 1].
    """
    run_dir = Path(run_dir)
    truth_path, prob_path = run_dir / GROUND_TRUTH, run_dir / PREDICTIONS
    truth, prob = _load_matrix(truth_path), _load_matrix(prob_path)
    if prob.shape != truth.shape:
        raise DataError(f"shape {prob.shape} differs from {truth_path.name}'s {truth.shape}",
                        file=prob_path)
    names = class_names if class_names is not None else [str(c) for c in range(truth.shape[1])]
    if len(names) != truth.shape[1]:
        raise DataError(f"{truth.shape[1]} columns for {len(names)} class names", file=truth_path)
    for path, bad in (
        (truth_path, ~((truth == 0) | (truth == 1))),
        (prob_path, ~(np.isfinite(prob) & (prob >= 0) & (prob <= 1))),
    ):
        if bad.any():
            r, c = np.argwhere(bad)[0]
            value = (truth if path == truth_path else prob)[r, c]
            what = "not 0 or 1" if path == truth_path else "not a probability in [0, 1]"
            raise DataError(f"value {value!r} is {what}", file=path, row=int(r) + 1,
                            column=str(names[c]))
    return truth.astype(np.uint8), prob


def run_layout(run_dir: str | os.PathLike) -> str | None:
    """``"mlml-tf"``, ``"original"`` (only the two np.savetxt files) or None (not a run, or a run
    of mlml-tf still being written or killed before its ``complete.json``)."""
    run_dir = Path(run_dir)
    if (run_dir / HEAD_WEIGHTS).exists() and not (run_dir / COMPLETE).is_file():
        return None
    if (run_dir / METRICS).is_file():
        return "mlml-tf"
    if (run_dir / PREDICTIONS).is_file() and (run_dir / GROUND_TRUTH).is_file():
        return "original"
    return None


def _read_json(path: Path) -> dict:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"not readable JSON: {err}", file=path) from err
    if not isinstance(document, dict) or document.get("format") != RUN_FORMAT:
        raise DataError(f"not an {RUN_FORMAT} file (no \"format\": \"{RUN_FORMAT}\")", file=path)
    metrics, classes = document.get("metrics"), document.get("classes")
    if not isinstance(metrics, dict) or not isinstance(classes, list):
        raise DataError("needs a \"metrics\" object and a \"classes\" list", file=path)
    missing = [key for key in SCORE_KEYS if key not in metrics and key not in _SINCE_0_2]
    if missing:
        raise DataError(f"metrics lack {', '.join(missing)}", file=path)
    return document


#: Metrics that runs of mlml-tf 0.2 did not record: recomputed from their predictions.
_SINCE_0_2: tuple[str, ...] = ("map",)


def read_run(run_dir: str | os.PathLike, class_names: Sequence[str] | None = None,
             report: bool = True) -> dict:
    """Read one run folder, written by mlml-tf or by the original code.

    Args:
        run_dir: a folder holding ``metrics.json`` (mlml-tf) or at least ``predictions.out`` and
            ``test_ground_truth_classes.txt`` (the original, whose metrics are recomputed from
            them as they are, trailing all-zero rows included, at threshold 0.5).
        class_names: names for a run of the original layout, which stores none (default
            ``"0"``, ``"1"``, ...); a run written by mlml-tf carries its own.
        report: also compute the per-class report. It comes from the two ``np.savetxt`` files
            (full precision), at the run's thresholds; ``results_report.csv`` is for people and
            rounds to two decimals as the original's did. False leaves it out (None), which
            spares reading the predictions of an mlml-tf run.

    Returns:
        ``{"run_dir", "layout", "metrics", "classes", "extra", "report"}``: ``metrics`` as
        :func:`mlml_tf.metrics.evaluate` returns them, ``report`` the per-class DataFrame of
        :func:`mlml_tf.metrics.per_class_report`.

    Raises:
        DataError: naming the file, if a file is missing or malformed.
    """
    run_dir = Path(run_dir)
    layout = run_layout(run_dir)
    if layout is None:
        raise DataError(f"not a run folder: neither {METRICS} nor both {PREDICTIONS} and "
                        f"{GROUND_TRUTH}", file=run_dir)
    if layout == "mlml-tf":
        document = _read_json(run_dir / METRICS)
        classes = [str(c) for c in document["classes"]]
        metrics, extra = document["metrics"], document.get("extra") or {}
        per_class = None
        if report or any(key not in metrics for key in _SINCE_0_2):
            truth, prob = read_predictions(run_dir, classes)
            fresh = evaluate(truth, prob, classes, metrics["threshold"])
            metrics = {**{k: fresh[k] for k in fresh if k not in metrics}, **metrics}
            if report:
                per_class = per_class_report(truth, prob, classes, metrics["threshold"])
    else:
        truth, prob = read_predictions(run_dir, class_names)
        classes = [str(c) for c in
                   (range(truth.shape[1]) if class_names is None else class_names)]
        metrics, extra = evaluate(truth, prob, classes), {}
        per_class = per_class_report(truth, prob, classes) if report else None
    return {"run_dir": str(run_dir), "layout": layout, "metrics": metrics,
            "classes": classes, "extra": extra, "report": per_class}
