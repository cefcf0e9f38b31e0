"""The authors' CB-WCE weight file, ``negative_weights_global.csv``, as they wrote it.

One row per image of the filtered set, its id in the first column, one column per class
(docs/original.md section 4). The authors' NUS-WIDE preprocessing named that first column
``index`` and the classes after the 81 concepts of ``Concepts81.txt``, while every label file
numbers them ``0``..``80``; COCO's file names the classes as the label files do. So the classes
are read **by position** when the label files number them ``0``..``C-1`` and the file has C
class columns, and **by name** otherwise; which of the two was done is logged and recorded in
each run's ``metrics.json`` (``global_weights``).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mlml_tf.errors import DataError
from mlml_tf.files.atomic import file_state
from mlml_tf.files.published import table_ids
from mlml_tf.files.tables import read_table, table_classes

log = logging.getLogger(__name__)

BY_POSITION = "by position"
BY_NAME = "by name"


def weight_columns(header: Sequence[str], classes: Sequence[str], path: str | os.PathLike,
                   labels_path: str | os.PathLike,
                   class_names: Sequence[str] | None = None) -> tuple[list[int], str]:
    """For each class of the label files, the column of the weight file that holds it (0 = its
    first class column), and how they were matched.

    Args:
        header: the weight file's class columns (its header but the first field).
        classes: the label files' class columns.
        path, labels_path: the two files, named in errors.
        class_names: the data folder's names for ``classes`` (its manifest's), if any: a file
            whose header holds these names in another order is read by name through them.

    Raises:
        DataError: naming both files, where the columns match neither way.
    """

    header, classes = [str(h) for h in header], [str(c) for c in classes]
    count = len(classes)
    if header == classes:
        return list(range(count)), BY_NAME
    numbered = classes == [str(i) for i in range(count)]
    if numbered and len(header) == count:
        names = [str(n) for n in class_names or ()]
        if header != names and len(names) == count and sorted(header) == sorted(names):
            return [header.index(n) for n in names], f"{BY_NAME} (the manifest's class names)"
        return list(range(count)), BY_POSITION
    labels = Path(labels_path).name
    extra = [h for h in header if h not in classes]
    missing = [c for c in classes if c not in header]
    if numbered and (extra or missing):
        by_name = (f"column {extra[0]!r} is not one of them" if extra else
                   f"class {missing[0]!r} has no column")
        raise DataError(f"{len(header)} class columns where {labels} has {count}, numbered 0 to "
                        f"{count - 1}: read by position only when the counts match, and by name "
                        f"{by_name}", file=path, row=1)
    counts = f"{len(header)} class columns against the {count} of {labels}"
    if extra:
        raise DataError(f"column {extra[0]!r} is not a class of {labels} ({counts})", file=path,
                        row=1, column=extra[0])
    if missing:
        raise DataError(f"class {missing[0]!r} of {labels} has no column ({counts})", file=path,
                        row=1)
    return [header.index(c) for c in classes], BY_NAME


def read_global_weights(path: str | os.PathLike, classes: Sequence[str],
                        labels_path: str | os.PathLike,
                        class_names: Sequence[str] | None = None) -> tuple[pd.DataFrame, dict]:
    """The weight file as a table of the label files' classes, indexed by id, and what
    ``metrics.json`` records of it (``file``, ``columns``: "by position" or "by name", ``rows``).

    Raises:
        DataError: as :func:`weight_columns`; a value that is not a number in [0, 1] (NaN, an
            empty cell), naming its line and column; an id twice.
    """

    path = Path(path)
    order, how = weight_columns(table_classes(path), classes, path, labels_path, class_names)
    table = _read_weights(path, file_state(path))
    frame = pd.DataFrame(table.to_numpy()[:, order], index=table.index,
                         columns=[str(c) for c in classes])
    log.info("%s: %d rows, classes read %s", path, len(frame), how)
    return frame, {"file": path.name, "columns": how, "rows": int(len(frame))}


@functools.lru_cache(maxsize=2)
def _read_weights(path: Path, state: tuple) -> pd.DataFrame:
    """The file's table, read once for the runs of a grid (24,624 x 81 numbers for NUS-WIDE)."""
    del state
    return read_table(path, "weights")


def weights_of_rows(frame: pd.DataFrame, path: str | os.PathLike, ids: Sequence[str],
                    labels_path: str | os.PathLike) -> np.ndarray:
    """The rows of ``frame`` (:func:`read_global_weights`) for ``ids``, the ids of
    ``labels_path`` in its order; an id without a row stops with its line."""

    ids = pd.Index([str(i) for i in ids])
    rows = frame.index.get_indexer(ids)
    lacking = np.flatnonzero(rows < 0)
    if len(lacking):
        first = int(lacking[0])
        positions = list(frame.index) == [str(j) for j in range(len(frame))]
        hint = ("; its first column counts 0 to N-1: row positions, not the ids of the label "
                "files" if positions else "")
        raise DataError(f"id {ids[first]!r} of {Path(labels_path).name} (line {first + 2}) has "
                        f"no row (ids without one: {len(lacking)} of {len(ids)}{hint})",
                        file=path)
    return frame.to_numpy()[rows]


def check_global_weights(path: str | os.PathLike, labels_paths: Sequence[str | os.PathLike],
                         class_names: Sequence[str] | None = None) -> dict:
    """Read the weight file once against the classes of ``labels_paths[0]`` and check that it has
    a row for every id of each of ``labels_paths`` (the training files of the runs that read it),
    before anything is trained or written. Returns the record of :func:`read_global_weights`."""

    first = Path(labels_paths[0])
    frame, record = read_global_weights(path, table_classes(first), first, class_names)
    for labels in labels_paths:
        weights_of_rows(frame, path, table_ids(Path(labels)), labels)
    return record
