"""A data folder as the authors published it, read as it is.

The label folders published with the original code hold only ``missing_labels{t}/`` with the
``train``, ``negative_weights``, ``positive_weights`` and ``test`` files of every fold (and, at
the root, ``negative_weights_global.csv``): no ``groundtruth.csv``, no ``manifest.json``. Their
complete label table is the test files of ratio 0.0, which partition the set (each row is in the
test part of exactly one fold, docs/original.md section 2): :func:`read_complete_labels` derives
it from them, checked, and writes nothing. ``mlml-tf prepare published DIR``
(:func:`prepare_published`) writes ``groundtruth.csv`` and ``manifest.json`` for those who want
them.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mlml_tf.errors import DataError
from mlml_tf.files.atomic import file_digest, file_state
from mlml_tf.files.layout import (
    GLOBAL_WEIGHTS,
    GROUNDTRUTH,
    LAYOUT_VERSION,
    MANIFEST,
    ratio_folder,
    ratio_from_tag,
    ratio_text,
    read_groundtruth,
    read_manifest,
    run_files,
    write_manifest,
)
from mlml_tf.files.tables import (
    check_same_table,
    read_table,
    table_bytes,
    table_classes,
    write_table,
)

log = logging.getLogger(__name__)

#: The ratio whose test files hold the complete labels.
COMPLETE_RATIO = 0.0
#: The ``split.scheme`` of a manifest written by :func:`prepare_published`.
PUBLISHED_SCHEME = "published"

_RATIO_FOLDER = re.compile(r"^missing_labels(\d+(?:\.\d+)?)$")
_RUN_FILE = re.compile(r"^(?:train|test|negative_weights)(\d+)_\d+(?:\.\d+)?\.csv$")


def _ratio_folders(root: Path) -> dict[float, Path]:
    """The ``missing_labels{t}/`` folders of ``root`` by the ratio each stands for."""
    if not root.is_dir():
        return {}
    found = {ratio_from_tag(m.group(1)): path for path in root.iterdir()
             if path.is_dir() and (m := _RATIO_FOLDER.match(path.name))}
    return dict(sorted(found.items()))


def found_split(root: str | os.PathLike) -> dict:
    """The ratios and folds that the files of a data folder name: ``{"ratios": [...],
    "n_folds": K}``, K the largest fold number of a ``train``, ``test`` or ``negative_weights``
    file; ``{}`` for a folder without ``missing_labels{t}/`` files."""

    folders = _ratio_folders(Path(root))
    folds = {int(m.group(1)) for folder in folders.values() for path in folder.iterdir()
             if (m := _RUN_FILE.match(path.name))}
    if not folds:
        return {}
    return {"ratios": list(folders), "n_folds": max(folds)}


def is_published(root: str | os.PathLike) -> bool:
    """Whether a data folder has ``missing_labels{t}/`` folders but no ``groundtruth.csv``: its
    complete labels are then the test files of ratio 0.0."""
    root = Path(root)
    return not (root / GROUNDTRUTH).exists() and bool(_ratio_folders(root))


def complete_test_files(root: str | os.PathLike) -> list[Path]:
    """The test files of ratio 0.0 of a data folder, folds 1..K; each must exist."""

    root = Path(root)
    folder = root / ratio_folder(COMPLETE_RATIO)
    if not folder.is_dir():
        raise DataError("folder not found: without groundtruth.csv, the complete labels are the "
                        "test files of ratio 0.0 (test1_0.0.csv, ...)", file=folder)
    n_folds = found_split(root).get("n_folds", 0)
    files = [run_files(root, COMPLETE_RATIO, k)["test"] for k in range(1, n_folds + 1)]
    if not files:
        raise DataError("no test file: without groundtruth.csv, the complete labels are the test "
                        "files of ratio 0.0 (test1_0.0.csv, ...)", file=folder)
    for k, path in enumerate(files, start=1):
        if not path.is_file():
            raise DataError(f"file not found: the folder's files name folds 1 to {n_folds}, and "
                            f"the test file of fold {k} at ratio 0.0 holds part of the complete "
                            "labels", file=path)
    return files


def _line(ids: pd.Index, value: str) -> int:
    """The line of id ``value`` in a table whose ids are ``ids`` (the header is line 1)."""
    return int(np.flatnonzero(ids == value)[0]) + 2


def _read_parts(tests: Sequence[Path]) -> list[pd.DataFrame]:
    """The test tables of ratio 0.0: 0/1 labels, the same columns in the same order, each id in
    one file only."""

    parts: list[pd.DataFrame] = []
    for path in tests:
        table = read_table(path, "labels")
        if parts:
            check_same_table(parts[0].iloc[:0], tests[0], table.iloc[:0], path)
        for earlier, part in zip(tests, parts, strict=False):
            both = table.index[table.index.isin(part.index)]
            if len(both):
                raise DataError(f"id {both[0]!r} is also in {earlier.name} (line "
                                f"{_line(part.index, both[0])}): the test files of ratio 0.0 "
                                "must hold each row once", file=path,
                                row=_line(table.index, both[0]))
        parts.append(table)
    return parts


def table_ids(path: Path) -> pd.Index:
    """The ids of a table of the original layout, its values left unread."""
    try:
        ids = pd.read_csv(path, usecols=[0], dtype=str, keep_default_na=False).iloc[:, 0]
    except FileNotFoundError:
        raise DataError("file not found", file=path) from None
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"malformed CSV ({str(exc).strip()})", file=path) from None
    return pd.Index(ids.to_numpy(dtype=str))


def _check_training_rows(root: Path, tests: Sequence[Path], parts: Sequence[pd.DataFrame],
                         complete: pd.Index) -> None:
    """At ratio 0.0, the training and test files of a fold hold the whole set between them and
    nothing else (what a test file cut short, or one of another folder, would break)."""

    for k, (test, part) in enumerate(zip(tests, parts, strict=True), start=1):
        train = run_files(root, COMPLETE_RATIO, k)["train"]
        if not train.is_file():
            continue
        ids = table_ids(train)
        outside = ids[~ids.isin(complete)]
        if len(outside):
            raise DataError(f"id {outside[0]!r} is in no test file of ratio 0.0: the test files "
                            "do not hold the whole set", file=train, row=_line(ids, outside[0]))
        inside = ids[ids.isin(part.index)]
        if len(inside):
            raise DataError(f"id {inside[0]!r} is in both this file and {test.name} (line "
                            f"{_line(part.index, inside[0])})", file=train,
                            row=_line(ids, inside[0]))
        for other, rows in zip(tests, parts, strict=True):
            absent = rows.index[~rows.index.isin(ids)] if other != test else rows.index[:0]
            if len(absent):
                raise DataError(f"id {absent[0]!r} of {other.name} (line "
                                f"{_line(rows.index, absent[0])}) is in neither this file nor "
                                f"{test.name}: the training and test files of a fold hold the "
                                "whole set", file=train)


@functools.lru_cache(maxsize=4)
def _derived(root: str, state: tuple) -> pd.DataFrame:
    """The complete labels of a published folder; ``state`` (the files' sizes and times) keys
    the cache, so that a changed file is read again."""
    del state
    tests = complete_test_files(root)
    parts = _read_parts(tests)
    complete = pd.concat(parts)
    _check_training_rows(Path(root), tests, parts, complete.index)
    log.debug("%s: complete labels of %d rows from the %d test files of ratio 0.0", root,
              len(complete), len(tests))
    return complete


def derive_complete_labels(root: str | os.PathLike) -> pd.DataFrame:
    """The complete label table of a folder in the original's layout: its test files of ratio
    0.0 one under the other, folds in order, rows in file order.

    Raises:
        DataError: naming the file and line where the test files do not partition the set: a
            test file missing, an id in two of them, other columns, a value other than 0/1, a
            training id of ratio 0.0 in no test file.
    """
    root = Path(root)
    tests = complete_test_files(root)
    trains = [run_files(root, COMPLETE_RATIO, k)["train"] for k in range(1, len(tests) + 1)]
    return _derived(str(root), tuple(file_state(p) for p in [*tests, *trains])).copy()


def read_complete_labels(root: str | os.PathLike) -> pd.DataFrame:
    """The complete labels of a data folder: its ``groundtruth.csv`` or, in a folder without it
    that holds the original's layout (the authors' published folders), the test files of ratio
    0.0 (:func:`derive_complete_labels`)."""
    if is_published(root):
        return derive_complete_labels(root)
    return read_groundtruth(root)


def complete_label_classes(root: str | os.PathLike) -> list[str]:
    """The class columns of :func:`read_complete_labels`, from a header."""
    if is_published(root):
        return table_classes(complete_test_files(root)[0])
    return table_classes(Path(root) / GROUNDTRUTH)


def complete_labels_sha256(root: str | os.PathLike) -> str:
    """The SHA-256 of ``groundtruth.csv``, or of the bytes it would have if written from the
    test files (:func:`prepare_published`): a run's digest is the same either way."""
    if is_published(root):
        return hashlib.sha256(table_bytes(derive_complete_labels(root))).hexdigest()
    return file_digest(Path(root) / GROUNDTRUTH)


def published_counts(root: str | os.PathLike, split: dict | None = None) -> dict:
    """Per fold, the training and test rows and, at each ratio, the positives hidden (zeros of
    its ``negative_weights`` file), as ``mlml-tf split`` records them; files that are absent are
    left out."""

    root = Path(root)
    split = split or found_split(root)
    counts: dict[str, dict] = {}
    for k in range(1, split.get("n_folds", 0) + 1):
        entry: dict = {"hidden": {}}
        for ratio in split["ratios"]:
            files = run_files(root, ratio, k)
            if "train" not in entry and files["train"].is_file():
                entry["train"] = len(table_ids(files["train"]))
            if "test" not in entry and files["test"].is_file():
                entry["test"] = len(table_ids(files["test"]))
            if files["negative_weights"].is_file():
                weights = read_table(files["negative_weights"], "weights").to_numpy()
                entry["hidden"][ratio_text(ratio)] = int((weights == 0).sum())
        counts[str(k)] = {"train": entry.get("train", 0), "test": entry.get("test", 0),
                          "hidden": entry["hidden"]}
    return counts


def prepare_published(root: str | os.PathLike, class_names: Sequence[str] | None = None,
                      dataset: str | None = None) -> dict:
    """Write ``root/groundtruth.csv`` (:func:`derive_complete_labels`) and ``root/manifest.json``
    for a folder as the authors published it; each file atomically, the manifest last.

    The manifest records the classes (``class_names``: names for the columns, e.g. NUS-WIDE's
    concepts for ``0``..``80``), the folds and ratios found, the counts of every fold, the
    SHA-256 of every file, and ``split.scheme`` "published": ``mlml-tf split`` then refuses to
    draw over the authors' files. Running it again rewrites the same bytes.

    Raises:
        DataError: as :func:`derive_complete_labels`; or when ``groundtruth.csv`` exists and
            differs from the table the test files give. Nothing is written then.
    """

    root = Path(root)
    split = found_split(root)
    if not split:
        raise DataError("no missing_labels{t}/ folder with label files: not a folder in the "
                        "original's layout", file=root)
    complete = derive_complete_labels(root)
    data = table_bytes(complete)
    target = root / GROUNDTRUTH
    if target.exists() and target.read_bytes() != data:
        raise DataError("exists and differs from the complete labels of the test files of ratio "
                        "0.0 (folds in order): `prepare published` is for a folder that holds "
                        "only the authors' files", file=target)
    manifest = read_manifest(root)
    columns = [str(c) for c in complete.columns]
    names = [str(n) for n in class_names] if class_names is not None else columns
    if len(names) != len(columns):
        raise DataError(f"{len(names)} class names for {len(columns)} columns",
                        file=root / MANIFEST)
    checksums = {path.relative_to(root).as_posix(): file_digest(path)
                 for folder in _ratio_folders(root).values()
                 for path in sorted(folder.glob("*.csv")) if not path.name.startswith(".")}
    if (root / GLOBAL_WEIGHTS).is_file():
        checksums[GLOBAL_WEIGHTS] = file_digest(root / GLOBAL_WEIGHTS)
    values = complete.to_numpy()
    manifest = {
        **{key: manifest[key] for key in ("protocols",) if key in manifest},
        "layout_version": LAYOUT_VERSION,
        "classes": columns,
        "class_names": names,
        "groundtruth": {"rows": int(len(complete)), "sha256": hashlib.sha256(data).hexdigest(),
                        "positives_per_row": round(float(values.sum(1).mean()), 6),
                        "from": "the test files of ratio 0.0, folds in order"},
        "source": {**({"dataset": dataset} if dataset else {}),
                   "published": "label files as the authors published them"},
        "split": {
            "scheme": PUBLISHED_SCHEME,
            "n_folds": split["n_folds"],
            "ratios": split["ratios"],
            "ratio_folders": {ratio_text(r): ratio_folder(r) for r in split["ratios"]},
            "fold_scheme": "the authors' folds (scikit-multilearn, unseeded)",
            "hiding": "the authors' draws (unseeded): cannot be drawn again",
            "counts": published_counts(root, split),
            "checksums": dict(sorted(checksums.items())),
        },
    }
    write_table(target, complete)
    write_manifest(root, manifest)
    return manifest
