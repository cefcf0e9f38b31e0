"""A run's rows, targets and weights.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import numpy as np

from mlml_tf.files.global_weights import read_global_weights, weights_of_rows
from mlml_tf.files.layout import (
    GLOBAL_WEIGHTS,
    GROUNDTRUTH,
    data_classes,
    run_files,
)
from mlml_tf.files.protocols import protocol
from mlml_tf.files.published import complete_labels_sha256, read_complete_labels
from mlml_tf.files.tables import read_table
from mlml_tf.methods.method import RunLabels
from mlml_tf.methods.registry import method, method_params
from mlml_tf.settings import RunConfig


@dataclasses.dataclass
class RunData:
    """Arrays of one run: rows, the method's targets and entry weights W, and what its loss
    needs besides (``record``: P for the paper's methods, CSL's prior, EPR's k)."""
    classes: list[str]
    train_ids: np.ndarray
    train_labels: np.ndarray
    weights: np.ndarray
    pos_weight: np.ndarray | None
    test_ids: np.ndarray
    test_labels: np.ndarray
    label_digest: str
    record: dict = dataclasses.field(default_factory=dict)


def _files_digest(paths: list[Path]) -> str:
    """The digest of the files a run read. ``groundtruth.csv`` counts by its content, the same
    whether the file is there or derived from a published folder's test files."""
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        if p.name == GROUNDTRUTH:
            h.update(bytes.fromhex(complete_labels_sha256(p.parent)))
        else:
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def protocol_value(config: RunConfig):
    """The value of the run's protocol: its ratio (paper, RPS), its count (FPC) or None."""
    return protocol(config.protocol).value_of(config.ratio, config.count)


def run_files_of(data: str | os.PathLike, config: RunConfig) -> dict[str, Path]:
    """The paths of the run's label files under its protocol."""
    return protocol(config.protocol).files(data, protocol_value(config), config.fold)


def run_params(config: RunConfig) -> dict:
    """The hyper-parameters of the run's method: its defaults and the run's ``params``."""
    return method_params(config.method, dict(config.params))


def load_run_data(data: str | os.PathLike, config: RunConfig,
                  prior: str | os.PathLike | None = None) -> RunData:
    """Read the run's files and compute its method's targets and weights
    (:mod:`mlml_tf.methods`); ``prior``: CSL's class prior file when its ``prior`` is "auto"."""

    data = Path(data)
    chosen = protocol(config.protocol)
    files = chosen.read(data, protocol_value(config), config.fold)
    paths = run_files_of(data, config)
    # The files the run's digest counts, in this order.
    used = [paths[k] for k in ("train", "negative_weights", "test") if k in paths]
    train, test = files["train"], files["test"]
    first = run_files(data, 0.0, 1)["train"]
    if config.steps_per_epoch == "original":
        used.append(first)

    def groundtruth():
        used.append(data / GROUNDTRUTH)
        return read_complete_labels(data)

    def hidden_positives():
        if chosen.original_layout:
            # The paper's oracle file: 0 where a positive was hidden (docs/original.md section 3).
            return files["negative_weights"].to_numpy() == 0
        return (train.to_numpy() == -1) & (labels.complete() == 1)

    def first_fold_labels():
        used.append(first)
        return read_table(first).to_numpy()

    read = {}

    def global_weights():
        used.append(data / GLOBAL_WEIGHTS)
        weights, read["global_weights"] = global_confidence_weights(data, train, paths["train"])
        return weights

    labels = RunLabels(train, chosen.original_layout, config, used, groundtruth, hidden_positives,
                       first_fold_labels, global_weights,
                       None if prior is None else Path(prior))
    y, weights, record = method(config.method).targets(labels, run_params(config))
    record = {**record, **read}
    # NUS-WIDE files name their columns 0..80; the manifest knows the concepts.
    names = data_classes(data)
    pos_weight = record.get("pos_weight")
    return RunData(
        classes=names if len(names) == train.shape[1] else list(train.columns),
        train_ids=train.index.to_numpy(),
        train_labels=np.asarray(y, dtype=np.float32),
        weights=np.asarray(weights, dtype=np.float32),
        pos_weight=None if pos_weight is None else np.asarray(pos_weight, np.float32),
        test_ids=test.index.to_numpy(),
        test_labels=test.to_numpy().astype(np.float32),
        label_digest=_files_digest(used),
        record=record,
    )


def global_confidence_weights(data: str | os.PathLike, train,
                              train_path: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """The authors' CB-WCE weights, ``negative_weights_global.csv`` of a published data folder,
    for the rows of ``train`` (looked up by id), and what the run records of the file.

    The file holds one row per image of the filtered set (docs/original.md section 4); its
    classes are read by position or by name (:mod:`mlml_tf.files.global_weights`) and its ids
    must cover the training ids. The loss uses a weight only where the run's label is 0.
    """

    path = Path(data) / GLOBAL_WEIGHTS
    frame, record = read_global_weights(path, list(train.columns), train_path,
                                        data_classes(data))
    return weights_of_rows(frame, path, train.index, train_path), record


def drop_skipped_images(run_data: RunData, skipped) -> tuple[RunData, dict]:
    """Leave out the rows whose images were skipped as unreadable when the cache was built."""
    if not len(skipped):
        return run_data, {"train": 0, "test": 0}
    keep_train = ~np.isin(run_data.train_ids, skipped)
    keep_test = ~np.isin(run_data.test_ids, skipped)
    kept = dataclasses.replace(
        run_data,
        train_ids=run_data.train_ids[keep_train],
        train_labels=run_data.train_labels[keep_train],
        weights=run_data.weights[keep_train],
        test_ids=run_data.test_ids[keep_test],
        test_labels=run_data.test_labels[keep_test],
    )
    return kept, {"train": int((~keep_train).sum()), "test": int((~keep_test).sum())}
