"""CSL's class prior file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from mlml_tf.errors import DataError
from mlml_tf.files.tables import _check_field_counts, _read_cells, _read_header, csv_field

PRIOR_COLUMNS = ("class", "prior")


def read_class_prior(path: str | os.PathLike, classes: list[str]) -> np.ndarray:
    """A class prior file: a header ``class,prior``, then one row per class in the order of
    ``classes``, each prior a number in [0, 1]. A file with other classes, another order, a
    value that is not a number in [0, 1], a blank or stray line is a DataError naming the line.
    """

    path = Path(path)
    header = _read_header(path)
    if tuple(header) != PRIOR_COLUMNS:
        raise DataError(f"the header must be {','.join(PRIOR_COLUMNS)}, not {','.join(header)}",
                        file=path, row=1)
    _check_field_counts(path, 2)
    frame = _read_cells(path, 2)
    names = frame.iloc[:, 0].tolist()
    for i, (got, want) in enumerate(zip(names, classes, strict=False)):
        if got != want:
            raise DataError(f"class {got!r} where the data folder has {want!r}", file=path,
                            row=i + 2, column="class")
    if len(names) != len(classes):
        raise DataError(f"{len(names)} classes where the data folder has {len(classes)}",
                        file=path, row=min(len(names), len(classes)) + 2)
    values = pd.to_numeric(frame.iloc[:, 1], errors="coerce").to_numpy(np.float64)
    bad = ~(np.isfinite(values) & (values >= 0) & (values <= 1))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"value {frame.iloc[i, 1]!r} is not a number in [0, 1]", file=path,
                        row=i + 2, column="prior")
    return values


def class_prior_bytes(classes: list[str], prior: np.ndarray) -> bytes:
    lines = [",".join(PRIOR_COLUMNS)] + [f"{csv_field(c)},{float(p):.9g}"
                                         for c, p in zip(classes, prior, strict=True)]
    return ("\n".join(lines) + "\n").encode()


#: The class prior written by CSL's temporary model, in its run folder.
CLASS_PRIOR = "class_prior.csv"
