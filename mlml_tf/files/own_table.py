"""A user's own label table over an images folder.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from mlml_tf.errors import DataError
from mlml_tf.files.tables import read_table
from mlml_tf.labels.checks import UNKNOWN
from mlml_tf.labels.folds import iterative_stratification

#: File suffixes read as images when a folder is listed.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclasses.dataclass(frozen=True)
class LabelTable:
    """The rows of a label table: ``names`` as the first column writes them, the image
    ``paths`` they name, the ``classes`` and the (rows, classes) int8 ``labels``, 1 / 0 / -1,
    read from the table ``source`` over the images folder ``images``."""
    names: list[str]
    paths: list[Path]
    classes: list[str]
    labels: np.ndarray
    source: Path
    images: Path

    def __len__(self) -> int:
        return len(self.names)


def read_label_table(path: str | os.PathLike, images: str | os.PathLike,
                     image_pattern: str | None = None, learnable: bool = True) -> LabelTable:
    """Read a user's label table and find each row's image under ``images``.

    ``image_pattern`` (e.g. ``"{id}.jpg"``) makes an image path of the first column's id;
    without it the first column is the path itself. Refused, naming the file and the line or
    column: every fault of a table (:func:`mlml_tf.layout.read_table`), a value other than 1, 0,
    -1 or empty, an images folder that is missing or holds no image, a row whose image is not
    there, a class column unknown in every row (nothing to learn it from), and a table without
    any positive label; ``learnable=False`` (a table to evaluate a model on) accepts those last
    two.
    """
    path, root = Path(path), Path(images)
    if not root.is_dir():
        raise DataError("images folder not found" if not root.exists() else "not a folder",
                        file=root)
    if not any(p.suffix.lower() in IMAGE_SUFFIXES for p in root.rglob("*") if p.is_file()):
        raise DataError(f"the images folder holds no image ({', '.join(IMAGE_SUFFIXES)})",
                        file=root)
    table = read_table(path, "own")
    names = [str(n) for n in table.index]
    if image_pattern is not None:
        try:
            relative = [image_pattern.format(id=n) for n in names]
        except (KeyError, IndexError, ValueError) as exc:
            raise DataError(f"--image-pattern {image_pattern!r} cannot name an image ({exc}); "
                            "use {id} for the first column, e.g. '{id}.jpg'") from None
    else:
        relative = names
    paths = [root / r for r in relative]
    for line, (name, written, image) in enumerate(zip(names, relative, paths, strict=True),
                                                  start=2):
        if not image.is_file():
            # As the table (or the pattern) writes it: it may also be an absolute path.
            raise DataError(f"image {written!r} of row {name!r} is not in "
                            f"{root}", file=path, row=line)
    labels = table.to_numpy().astype(np.int8)
    classes = list(table.columns)
    unknown = (labels == UNKNOWN).all(axis=0)
    if not learnable:
        return LabelTable(names, paths, classes, labels, path, root)
    if unknown.any():
        name = classes[int(np.flatnonzero(unknown)[0])]
        raise DataError(f"class {name!r} is unknown (-1 or empty) in every row: nothing to "
                        "learn it from; drop the column or label some rows", file=path, row=1,
                        column=name)
    if not (labels == 1).any():
        raise DataError("no row has a positive label: a model cannot learn from negatives and "
                        "unknown entries alone", file=path)
    return LabelTable(names, paths, classes, labels, path, root)


def validation_rows(labels: np.ndarray, fraction: float, seed: int = 0) -> tuple[np.ndarray,
                                                                                  np.ndarray]:
    """``(train, validation)`` row indices, about ``fraction`` of the rows held out, stratified
    by first-order iterative stratification of the positive labels (unknown entries count as
    not positive; pairs of labels, as the folds balance them, would pull the size of a small
    hold-out away from the fraction asked); seeded. ``fraction`` 0 holds out nothing."""
    if not 0.0 <= fraction < 1.0:
        raise DataError(f"validation fraction {fraction!r} is outside [0, 1)")
    n = len(labels)
    if fraction == 0.0:
        return np.arange(n), np.zeros(0, dtype=np.int64)
    if round(n * fraction) < 1 or round(n * (1 - fraction)) < 1:
        raise DataError(f"a validation fraction of {fraction} of {n} rows leaves a part empty")
    train, held = iterative_stratification((np.asarray(labels) == 1).astype(np.uint8),
                                           (1.0 - fraction, fraction), seed=seed, order=1)
    return np.sort(train), np.sort(held)
