"""Slow reference implementations of the package's fast algorithms, written from their
definitions: what the tests compare the package with."""

from __future__ import annotations

import numpy as np

from mlml_tf.labels.checks import check_labels


def confidence_weights_reference(labels: np.ndarray,
                                 source: np.ndarray | None = None) -> np.ndarray:
    """Paper eq. 3 entry by entry (docs/original.md section 4): for each zero of row i, one
    minus the share of the rows of ``source`` holding row i's positives that hold the class too;
    1 where no row holds them."""
    query = check_labels(labels)
    base = query if source is None else check_labels(source, "source")
    out = np.zeros(query.shape, dtype=np.float64)
    for i, row in enumerate(query):
        holders = base[base[:, row].all(axis=1)]
        for c in np.flatnonzero(~row):
            out[i, c] = 1.0 - holders[:, c].sum() / len(holders) if len(holders) else 1.0
    return out.astype(np.float32)
