"""Writing a model folder: the Keras model, its manifest, thresholds, log, validation results and
card.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd

from mlml_tf.apps.own.card import model_card
from mlml_tf.apps.own.folder import (
    CARD,
    CLASSES,
    MANIFEST,
    MODEL_FILE,
    MODEL_FORMAT,
    MODEL_FORMAT_VERSION,
    THRESHOLDS,
    TRAINING_LOG,
    VALIDATION,
    TrainedModel,
    save_keras,
)
from mlml_tf.apps.own.images import image_probabilities
from mlml_tf.files.own_table import LabelTable
from mlml_tf.labels.checks import UNKNOWN
from mlml_tf.metrics.report import tune_thresholds
from mlml_tf.metrics.scores import DEFAULT_THRESHOLD, annotated_metrics, evaluate
from mlml_tf.runs.outputs import write_run_outputs
from mlml_tf.settings import FitSettings
from mlml_tf.training.runs import library_versions


def _counts(table: LabelTable, train_rows, val_rows, bad) -> dict:
    def entries(rows):
        part = table.labels[rows]
        return {"rows": int(len(rows)), "positive": int((part == 1).sum()),
                "negative": int((part == 0).sum()), "unknown": int((part == UNKNOWN).sum())}

    return {"table": str(table.source), "rows": len(table), "classes": len(table.classes),
            "train": entries(train_rows), "validation": entries(val_rows),
            "left_out": [{"image": b.path, "reason": b.reason} for b in bad],
            "positives_per_class": {c: int(n) for c, n in zip(
                table.classes, (table.labels[train_rows] == 1).sum(0), strict=True)}}


def _save(stage: Path, model, table: LabelTable, settings: FitSettings, counts: dict,
          work: Path, val_rows: np.ndarray) -> TrainedModel:
    """Write every file of a model folder into ``stage``, the validation results included."""

    classes = list(table.classes)
    manifest = {
        "format": MODEL_FORMAT,
        "version": MODEL_FORMAT_VERSION,
        "classes": classes,
        "preprocessing": {"image_size": settings.image_size, "resize": settings.resize,
                          "scaling": settings.scaling, "input": "images, values in [0, 255]"},
        "settings": dataclasses.asdict(settings),
        "counts": counts,
        "versions": library_versions(),
    }
    save_keras(model, stage / MODEL_FILE)
    trained = TrainedModel(stage, model, classes, np.full(len(classes), DEFAULT_THRESHOLD),
                           manifest)
    metrics = None
    if len(val_rows):
        truth = table.labels[val_rows]
        probabilities = image_probabilities(trained, [table.paths[i] for i in val_rows],
                                            settings.batch_size)
        # Tuned to two decimals, the grid of tune_thresholds: thresholds.csv holds them exactly.
        trained.thresholds = np.round(tune_thresholds(truth, probabilities), 2)
        metrics = write_run_outputs(stage / VALIDATION, truth, probabilities, classes,
                                    thresholds=trained.thresholds,
                                    extra={"rows": [table.names[i] for i in val_rows]})
        manifest["validation"] = {"tuned": _headline(metrics),
                                  "at_0.5": _headline(_scores(truth, probabilities))}
    manifest["thresholds"] = "tuned on the validation rows" if metrics else "0.5 (no validation)"
    (stage / CLASSES).write_text("".join(f"{c}\n" for c in classes), encoding="utf-8")
    (stage / THRESHOLDS).write_text(_thresholds_text(classes, trained.thresholds),
                                    encoding="utf-8")
    logs = [work / "head" / TRAINING_LOG, work / "fine-tune" / TRAINING_LOG]
    (stage / TRAINING_LOG).write_text(_training_log(logs), encoding="utf-8")
    (stage / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n",
                                  encoding="utf-8")
    (stage / CARD).write_text(model_card(manifest, trained.thresholds, stage / VALIDATION),
                              encoding="utf-8")
    return trained


def _scores(truth: np.ndarray, probabilities: np.ndarray,
            threshold: float | np.ndarray = 0.5) -> dict:
    """The scores :func:`mlml_tf.runs.write_run_outputs` gives, without writing them."""

    scores = evaluate(truth == 1, probabilities, threshold=threshold)
    if (truth == UNKNOWN).any():
        scores["annotated"] = annotated_metrics(truth, probabilities, threshold)
    return scores


def _headline(metrics: dict) -> dict:
    keys = ("map", "precision_micro", "recall_micro", "f1_micro", "roc_auc_micro")
    out = {k: metrics[k] for k in keys}
    if "annotated" in metrics:
        out["annotated"] = metrics["annotated"]
    return out


def _csv(header: list[str], rows) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _thresholds_text(classes: list[str], thresholds: np.ndarray) -> str:
    return _csv(["class", "threshold"],
                ([c, f"{t:.2f}"] for c, t in zip(classes, thresholds, strict=True)))


def _training_log(paths: list[Path]) -> str:
    """The head's log, then the fine-tuning's, with a ``phase`` column."""

    frames = []
    for phase, path in zip(("head", "fine-tune"), paths, strict=True):
        if path.exists() and path.stat().st_size:
            frame = pd.read_csv(path)
            frame.insert(0, "phase", phase)
            frames.append(frame)
    return pd.concat(frames).to_csv(index=False) if frames else "phase,epoch,loss\n"
