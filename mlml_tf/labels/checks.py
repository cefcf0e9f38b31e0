"""Checks of label arrays: 0/1 labels, partial labels 1 / 0 / -1, ratios.
"""

from __future__ import annotations

import numpy as np

from mlml_tf.errors import DataError

#: The label of an entry whose state is not known (neither annotated positive nor negative).
UNKNOWN = -1


def check_labels(labels: np.ndarray, name: str = "labels") -> np.ndarray:
    """Return ``labels`` as a 2-D bool array, or raise DataError if it is not a 0/1 matrix."""

    arr = np.asarray(labels)
    if arr.ndim != 2:
        raise DataError(f"{name} must be a 2-D (rows, classes) array, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr
    if not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"{name} must be numeric 0/1, got dtype {arr.dtype}")
    bad = ~((arr == 0) | (arr == 1))
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DataError(f"{name}[{r}, {c}] = {arr[r, c].item()!r} is not 0 or 1")
    return arr.astype(bool)


def check_partial_labels(labels: np.ndarray, name: str = "labels") -> np.ndarray:
    """Return ``labels`` as a 2-D int8 array of 1, 0 and -1 (unknown), or raise DataError
    naming the first entry that is none of them."""

    arr = np.asarray(labels)
    if arr.ndim != 2:
        raise DataError(f"{name} must be a 2-D (rows, classes) array, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr.astype(np.int8)
    if not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"{name} must be numeric 1/0/-1, got dtype {arr.dtype}")
    bad = ~((arr == 0) | (arr == 1) | (arr == UNKNOWN))
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DataError(f"{name}[{r}, {c}] = {arr[r, c].item()!r} is not 1, 0 or -1 (unknown)")
    return arr.astype(np.int8)


def check_ratio(ratio: float) -> float:
    ratio = float(ratio)
    if not 0.0 <= ratio < 1.0:
        raise DataError(f"ratio {ratio!r} is outside [0, 1): a ratio of 1 would hide every label")
    return ratio
