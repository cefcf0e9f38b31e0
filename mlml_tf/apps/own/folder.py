"""Reading a model folder.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import tempfile
import zipfile
from pathlib import Path

import keras
import numpy as np

from mlml_tf.errors import DataError
from mlml_tf.files.atomic import atomic_path

MODEL_FILE = "model.keras"


MANIFEST = "model.json"


CLASSES = "classes.txt"


THRESHOLDS = "thresholds.csv"


TRAINING_LOG = "training_log.csv"


VALIDATION = "validation"


CARD = "README.md"


MODEL_FORMAT = "mlml-tf model"


MODEL_FORMAT_VERSION = 1


#: The files without which a model folder cannot be used.
MODEL_FILES: tuple[str, ...] = (MANIFEST, MODEL_FILE, CLASSES, THRESHOLDS)


@dataclasses.dataclass
class TrainedModel:
    """A model folder read back (:func:`load_model`): the Keras model, its classes, its
    per-class thresholds and its manifest."""
    folder: Path
    model: object
    classes: list[str]
    thresholds: np.ndarray
    manifest: dict

    @property
    def image_size(self) -> int:
        return int(self.manifest["preprocessing"]["image_size"])

    @property
    def resize(self) -> str:
        return self.manifest["preprocessing"]["resize"]

    def predict(self, images, batch_size: int = 32) -> np.ndarray:
        """Probabilities of a batch of images, (N, H, W, 3) values in [0, 255]."""
        return np.asarray(self.model.predict(np.asarray(images), batch_size=batch_size,
                                             verbose=0))


def save_keras(model, path: Path) -> None:
    """``model.save(path)``, made byte-identical for the same model: Keras writes the time of
    saving (``date_saved``, never read back), the weights' entry with the time of day, and
    ``shared_object_id`` values that are memory addresses. Here the addresses become their
    order of appearance (which is all a load compares), the time is left out and every entry
    of the archive is dated as Keras dates its first ones."""
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".tmp.") as folder:
        raw = Path(folder) / path.name
        model.save(raw)
        with zipfile.ZipFile(raw) as source:
            entries = [(info, source.read(info.filename)) for info in source.infolist()]
    ids: dict[int, int] = {}

    def renumber(node):
        if isinstance(node, dict):
            return {key: (ids.setdefault(value, len(ids)) if key == "shared_object_id"
                          else renumber(value)) for key, value in node.items()}
        if isinstance(node, list):
            return [renumber(value) for value in node]
        return node

    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w") as target:
        for info, data in entries:
            if info.filename == "config.json":
                data = json.dumps(renumber(json.loads(data))).encode()
            elif info.filename == "metadata.json":
                metadata = json.loads(data)
                metadata.pop("date_saved", None)
                data = json.dumps(metadata).encode()
            target.writestr(zipfile.ZipInfo(info.filename, (1980, 1, 1, 0, 0, 0)), data,
                            compress_type=info.compress_type)


def load_model(folder: str | os.PathLike) -> TrainedModel:
    """Read a model folder written by :func:`fit_model`, checking it first: a missing file,
    a manifest of another format or version, classes or thresholds that do not match, or a
    ``model.keras`` Keras cannot read is a DataError naming the file."""

    folder = Path(folder)
    if not folder.is_dir():
        raise DataError("model folder not found" if not folder.exists() else "not a folder",
                        file=folder)
    for name in MODEL_FILES:
        if not (folder / name).is_file():
            raise DataError(f"incomplete model folder: {name} is missing", file=folder)
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"corrupt model manifest ({exc})", file=path) from None
    if not isinstance(manifest, dict) or manifest.get("format") != MODEL_FORMAT:
        raise DataError(f"not a model manifest of mlml-tf (format {MODEL_FORMAT!r})",
                        file=path)
    if manifest.get("version") != MODEL_FORMAT_VERSION:
        raise DataError(f"written by an incompatible version of mlml-tf (model format version "
                        f"{manifest.get('version')!r}, "
                        f"{manifest.get('versions', {}).get('mlml_tf', '?')}); this one reads "
                        f"version {MODEL_FORMAT_VERSION}: train the model again", file=path)
    classes = manifest.get("classes")
    listed = (folder / CLASSES).read_text(encoding="utf-8").splitlines()
    if listed != classes:
        raise DataError(f"classes differ from those of {MANIFEST}", file=folder / CLASSES)
    thresholds = _read_thresholds(folder / THRESHOLDS, classes)
    model = _read_keras(folder / MODEL_FILE)
    if tuple(model.output_shape[1:]) != (len(classes),):
        raise DataError(f"the model gives {model.output_shape[1:]} outputs for "
                        f"{len(classes)} classes", file=folder / MODEL_FILE)
    return TrainedModel(folder, model, classes, thresholds, manifest)


def _read_keras(path: Path):
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001 - zip, HDF5, JSON or Keras errors of a bad file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DataError(f"cannot be read as a Keras model ({first})", file=path) from None


def _read_thresholds(path: Path, classes: list[str]) -> np.ndarray:
    rows = list(csv.reader(path.read_text(encoding="utf-8").splitlines()))
    if not rows or rows[0] != ["class", "threshold"]:
        raise DataError("the header must be 'class,threshold'", file=path, row=1)
    if [r[0] if r else "" for r in rows[1:]] != classes:
        raise DataError(f"one row per class of {MANIFEST}, in its order", file=path)
    values = []
    for line, row in enumerate(rows[1:], start=2):
        try:
            value = float(row[1])
        except (IndexError, ValueError):
            raise DataError("the threshold is not a number", file=path, row=line) from None
        if not 0.0 <= value <= 1.0:
            raise DataError(f"threshold {value!r} is outside [0, 1]", file=path, row=line)
        values.append(value)
    return np.asarray(values, dtype=np.float64)


def _as_model(model) -> TrainedModel:
    return model if isinstance(model, TrainedModel) else load_model(model)
