"""Reading run folders.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mlml_tf.errors import DataError
from mlml_tf.metrics.report import per_class_report
from mlml_tf.metrics.scores import SCORE_KEYS, evaluate
from mlml_tf.runs.outputs import (
    COMPLETE,
    GROUND_TRUTH,
    HEAD_WEIGHTS,
    METRICS,
    PREDICTIONS,
    RUN_FORMAT,
)


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

    Only ``metrics.json`` and the two ``np.savetxt`` files are read: the original's
    ``evaluation_results.txt`` and ``results_report.csv`` are for the original's readers, and
    the run folders of earlier versions, whose two files held more than the original's, read
    the same.

    Returns:
        ``{"run_dir", "layout", "faithful", "metrics", "classes", "extra", "report"}``:
        ``faithful`` whether an mlml-tf run was made as the original (``mlml-tf run
        --faithful``; None where not recorded: a run of mlml-tf 0.5 or earlier, a folder of the
        original), ``metrics`` as :func:`mlml_tf.metrics.evaluate` returns them, ``report`` the
        per-class DataFrame of :func:`mlml_tf.metrics.per_class_report`.

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
        faithful = document.get("faithful")
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
        metrics, extra, faithful = evaluate(truth, prob, classes), {}, None
        per_class = per_class_report(truth, prob, classes) if report else None
    return {"run_dir": str(run_dir), "layout": layout, "faithful": faithful, "metrics": metrics,
            "classes": classes, "extra": extra, "report": per_class}
