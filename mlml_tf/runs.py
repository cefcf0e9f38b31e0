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

import numpy as np
import pandas as pd

from mlml_tf.errors import DataError, atomic_path
from mlml_tf.labels import check_ratio
from mlml_tf.layout import ratio_text
from mlml_tf.metrics import (
    DEFAULT_THRESHOLD,
    REPORT_COLUMNS,
    SCORE_KEYS,
    check_predictions,
    evaluate,
    per_class_report,
)

#: The three training protocols of the paper, in the order tables and figures show them.
METHODS: tuple[str, ...] = ("ce", "im-wce", "cb-wce")
#: Their names in the paper.
METHOD_LABELS: dict[str, str] = {"ce": "CE", "im-wce": "IM-WCE", "cb-wce": "CB-WCE"}
#: Experiment folder names of the original (SPEC 7; "PosLimitited" is spelled as published).
EXPERIMENT_TEMPLATES: dict[str, str] = {
    "ce": "PosLimited_original_CE_balanced_ratio{r}split_{k}",
    "im-wce": "PosLimitited_weighted_CE_balanced_ratio{r}split_{k}",
    "cb-wce": "CORRELATION_weighted_CE_balanced_ratio{r}split_{k}",
}
METRIC_LABELS: dict[str, str] = {
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

_EXPERIMENT_PATTERNS = {
    method: re.compile(
        re.escape(template)
        .replace(re.escape("{r}"), r"(?P<r>\d+\.\d+)")
        .replace(re.escape("{k}"), r"(?P<k>\d+)")
    )
    for method, template in EXPERIMENT_TEMPLATES.items()
}


def _check_method(method: str) -> str:
    if method not in EXPERIMENT_TEMPLATES:
        raise DataError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    return method


def experiment_name(method: str, ratio: float, fold: int) -> str:
    """The original's experiment folder name of one run.

    Example:
        >>> experiment_name("im-wce", 0.25, 1)
        'PosLimitited_weighted_CE_balanced_ratio0.25split_1'
    """
    if int(fold) != fold or fold < 1:
        raise DataError(f"fold must be a positive integer, got {fold!r}")
    template = EXPERIMENT_TEMPLATES[_check_method(method)]
    return template.format(r=ratio_text(check_ratio(ratio)), k=int(fold))


def parse_experiment_name(name: str) -> tuple[str, float, int] | None:
    """``(method, ratio, fold)`` of an experiment folder name, or None if it is not one.

    Example:
        >>> parse_experiment_name("CORRELATION_weighted_CE_balanced_ratio0.5split_3")
        ('cb-wce', 0.5, 3)
    """
    for method, pattern in _EXPERIMENT_PATTERNS.items():
        match = pattern.fullmatch(name)
        if match:
            return method, float(match["r"]), int(match["k"])
    return None


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


def evaluation_text(metrics: Mapping, extra: Mapping | None = None) -> str:
    """The human-readable ``evaluation_results.txt`` of a run."""
    threshold = metrics["threshold"]
    lines = [
        f"Test rows: {metrics['n_samples']}",
        f"Classes: {metrics['n_classes']}",
        "Threshold: " + (_format_value(float(threshold)) if np.ndim(threshold) == 0
                         else f"per class (see {REPORT})"),
    ]
    lines += [f"{METRIC_LABELS[key]}: {_format_value(metrics[key])}" for key in SCORE_KEYS]
    undefined = metrics["auc_undefined_classes"]
    lines.append("ROC-AUC undefined (no positive or no negative in the ground truth) for: "
                 + (", ".join(undefined) if undefined else "no class"))
    lines += [
        f"Positive labels: {metrics['n_positive_labels']}",
        f"Predicted positives: {metrics['n_predicted_positive']}",
        f"True positives: {metrics['true_positives']}",
        f"False positives: {metrics['false_positives']}",
        f"False negatives: {metrics['false_negatives']}",
        f"True negatives: {metrics['true_negatives']}",
    ]
    for key, value in sorted((extra or {}).items()):
        lines.append(f"{key}: {json.dumps(_jsonable(value), sort_keys=True)}")
    return "\n".join(lines) + "\n"


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
        y_true: (rows, classes) 0/1 test labels.
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
    truth, prob = check_predictions(y_true, y_prob)
    names = [str(n) for n in class_names]
    threshold = DEFAULT_THRESHOLD if thresholds is None else thresholds
    metrics = evaluate(truth, prob, names, threshold)
    report = per_class_report(truth, prob, names, threshold)
    extra = _jsonable(dict(extra or {}))

    with atomic_path(run_dir / PREDICTIONS) as tmp:
        np.savetxt(tmp, prob, delimiter=",")
    with atomic_path(run_dir / GROUND_TRUTH) as tmp:
        np.savetxt(tmp, truth.astype(np.float64), delimiter=",")
    with atomic_path(run_dir / REPORT) as tmp:
        report.to_csv(tmp, lineterminator="\n")
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
    missing = [key for key in SCORE_KEYS if key not in metrics]
    if missing:
        raise DataError(f"metrics lack {', '.join(missing)}", file=path)
    return document


def _read_report(path: Path, classes: list[str]) -> pd.DataFrame:
    try:
        report = pd.read_csv(path, dtype={"class": str}).set_index("class")
    except (OSError, ValueError, KeyError) as err:
        raise DataError(f"not a per-class report: {err}", file=path) from err
    if list(report.columns) != list(REPORT_COLUMNS):
        raise DataError(f"columns {list(report.columns)} are not {list(REPORT_COLUMNS)}",
                        file=path)
    if list(report.index) != classes:
        raise DataError(f"classes differ from those of {METRICS}", file=path)
    return report


def read_run(run_dir: str | os.PathLike, class_names: Sequence[str] | None = None) -> dict:
    """Read one run folder, written by mlml-tf or by the original code.

    Args:
        run_dir: a folder holding ``metrics.json`` (mlml-tf) or at least ``predictions.out`` and
            ``test_ground_truth_classes.txt`` (the original, whose metrics are recomputed from
            them as they are, trailing all-zero rows included, at threshold 0.5).
        class_names: names for a run of the original layout, which stores none (default
            ``"0"``, ``"1"``, ...); a run written by mlml-tf carries its own.

    Returns:
        ``{"run_dir", "layout", "metrics", "classes", "extra", "report"}``: ``metrics`` as
        :func:`mlml_tf.metrics.evaluate` returns them, ``report`` the per-class DataFrame.

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
        report = _read_report(run_dir / REPORT, classes)
    else:
        truth, prob = read_predictions(run_dir, class_names)
        classes = [str(c) for c in
                   (range(truth.shape[1]) if class_names is None else class_names)]
        metrics, extra = evaluate(truth, prob, classes), {}
        report = per_class_report(truth, prob, classes)
    return {"run_dir": str(run_dir), "layout": layout, "metrics": metrics,
            "classes": classes, "extra": extra, "report": report}
