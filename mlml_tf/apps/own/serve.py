"""Predict, evaluate, export.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from mlml_tf.apps.own.folder import CLASSES, THRESHOLDS, TrainedModel, _as_model
from mlml_tf.apps.own.images import (
    _probability_batches,
    checked_images,
    image_probabilities,
    list_images,
    resized_image,
)
from mlml_tf.apps.own.save import _csv
from mlml_tf.errors import DataError
from mlml_tf.files.atomic import atomic_path, write_bytes_atomic
from mlml_tf.files.own_table import read_label_table
from mlml_tf.runs.outputs import write_run_outputs


@dataclasses.dataclass(frozen=True)
class Predictions:
    """What :func:`predict_images` wrote: the file, the rows, and the images it left out."""
    path: Path
    rows: int
    skipped: tuple


def decision_thresholds(trained: TrainedModel, threshold: str | float = "tuned") -> np.ndarray:
    """Per-class thresholds: the tuned ones of the model folder, or one number for all."""
    if threshold == "tuned":
        return trained.thresholds
    value = float(threshold)
    if not 0.0 <= value <= 1.0:
        raise DataError(f"threshold {value!r} is outside [0, 1]")
    return np.full(len(trained.classes), value)


def predict_images(model, images: Sequence[str | os.PathLike] | str | os.PathLike,
                   out: str | os.PathLike, threshold: str | float = "tuned",
                   top_k: int | None = None, batch_size: int = 32, skip_bad_images: bool = False,
                   progress: bool = True) -> Predictions:
    """Tag image files with a saved model and write one CSV row per image.

    Columns: ``image`` (the file), the probability of every class (named by the class), then
    ``labels``: the predicted classes joined by ``;``, those above their threshold (the
    tuned ones by default, or ``threshold`` for all) or, with ``top_k``, the ``top_k`` most
    probable. Images are read in batches as they are scored and each row is written at once:
    memory does not grow with the number of images. An unreadable file stops everything
    (nothing is written) unless ``skip_bad_images``, which leaves it out and lists it in
    ``<out>.skipped.csv``.

    Args:
        model: a model folder or a :class:`TrainedModel`.
        images: image files and folders (every image under a folder).
        out: the CSV file to write.

    Example:
        >>> predict_images("tagger", ["holiday/"], "tags.csv", top_k=3)
        Predictions(path=PosixPath('tags.csv'), rows=212, skipped=())
    """

    trained = _as_model(model)
    if top_k is not None and not 1 <= int(top_k) <= len(trained.classes):
        raise DataError(f"top-k {top_k!r} is outside [1, {len(trained.classes)}]")
    thresholds = decision_thresholds(trained, threshold)
    sources = [images] if isinstance(images, (str, os.PathLike)) else list(images)
    paths = list_images(sources)
    keep, bad = checked_images(paths, skip_bad_images)
    if not len(keep):
        raise DataError(f"none of the {len(paths)} images can be read")
    paths = [paths[i] for i in keep]
    out = Path(out)
    classes = trained.classes
    bar = tqdm(total=len(paths), desc="predict", unit="img", disable=not progress)
    with atomic_path(out) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["image", *classes, "labels"])
        done = 0
        for probabilities in _probability_batches(trained, paths, batch_size):
            for path, p in zip(paths[done: done + len(probabilities)], probabilities,
                               strict=True):
                if top_k is not None:
                    chosen = np.argsort(-p, kind="stable")[: int(top_k)]
                else:
                    chosen = np.flatnonzero(p > thresholds)
                writer.writerow([os.fspath(path), *(f"{v:.6f}" for v in p),
                                 ";".join(classes[i] for i in chosen)])
            done += len(probabilities)
            bar.update(len(probabilities))
        bar.close()
        fh.flush()
    skipped = tuple(bad)
    listing = out.with_name(out.name + ".skipped.csv")
    if skipped:
        write_bytes_atomic(listing, _csv(["image", "reason"],
                                         [[b.path, b.reason] for b in skipped]).encode())
    elif listing.exists():
        listing.unlink()
    return Predictions(out, len(paths), skipped)


def evaluate_model(model, labels: str | os.PathLike, images: str | os.PathLike,
                   out: str | os.PathLike, image_pattern: str | None = None,
                   threshold: str | float = "tuned", batch_size: int = 32) -> dict:
    """Score a saved model on a label table of its classes and write the results as the grid
    writes a run's (``predictions.out``, ``test_ground_truth_classes.txt``,
    ``evaluation_results.txt``, ``results_report.csv``, ``results_extra.csv``,
    ``evaluation_extra.txt``, ``metrics.json``): mAP, micro
    precision / recall / F1 / ROC-AUC and the per-class report, unknown entries counted as
    negatives, and where the table has unknown entries the partial mAP and the micro scores
    over its annotated entries (``metrics["annotated"]``). Returns the metrics."""

    trained = _as_model(model)
    table = read_label_table(labels, images, image_pattern, learnable=False)
    missing = [c for c in trained.classes if c not in table.classes]
    if missing:
        raise DataError(f"the table has no column {missing[0]!r}, a class of the model "
                        f"({len(missing)} missing)", file=table.source, row=1)
    extra = [c for c in table.classes if c not in trained.classes]
    if extra:
        raise DataError(f"column {extra[0]!r} is not a class of the model", file=table.source,
                        row=1, column=extra[0])
    order = [table.classes.index(c) for c in trained.classes]
    checked_images(table.paths, False, np.arange(len(table)) + 2, table.source)
    probabilities = image_probabilities(trained, table.paths, batch_size)
    return write_run_outputs(out, table.labels[:, order], probabilities, trained.classes,
                             thresholds=decision_thresholds(trained, threshold),
                             extra={"model": str(trained.folder), "table": str(table.source),
                                    "rows": list(table.names)})


def serving_function(trained: TrainedModel):
    """``f(encoded) -> {"probabilities": (N, C)}`` on a vector of encoded JPEG / PNG / GIF /
    BMP images, each decoded and resized as :func:`predict_images` does."""
    size, resize, model = trained.image_size, trained.resize, trained.model

    def decode(data):
        return resized_image(data, size, resize)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
    def serve(images):
        batch = tf.map_fn(decode, images, fn_output_signature=tf.TensorSpec(
            (size, size, 3), tf.float32))
        return {"probabilities": model(batch, training=False)}

    return serve


def export_model(model, out: str | os.PathLike) -> Path:
    """Write a TensorFlow SavedModel of a saved model for TF Serving: its ``serving_default``
    signature takes ``images``, a vector of encoded image files (bytes), and returns
    ``probabilities`` (N, C); ``classes.txt`` and ``thresholds.csv`` are copied beside it. The
    folder is written under a temporary name and renamed into place."""

    trained = _as_model(model)
    out = Path(out)
    if out.exists():
        raise DataError("the export folder exists already: choose another", file=out)
    stage = out.parent / f".{out.name}.partial"
    shutil.rmtree(stage, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    archive = keras.export.ExportArchive()
    archive.track(trained.model)
    archive.add_endpoint("serving_default", serving_function(trained))
    archive.write_out(os.fspath(stage), verbose=False)
    for name in (CLASSES, THRESHOLDS):
        shutil.copyfile(trained.folder / name, stage / name)
    stage.rename(out)
    return out
