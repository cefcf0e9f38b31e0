"""Missing labels simulated on complete ones: the paper's hidden positives and the field's
protocols.
"""

from __future__ import annotations

import numpy as np

from mlml_tf.errors import DataError
from mlml_tf.labels.checks import UNKNOWN, check_labels, check_ratio

#: The missing-label ratios of the paper (docs/original.md section 3).
PAPER_RATIOS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75)


def hidden_counts(labels: np.ndarray, ratio: float) -> np.ndarray:
    """How many positives each row loses: numpy's round(ratio * n_i), half to even (docs/original.md
    section 3)."""

    n = check_labels(labels).sum(axis=1)
    return np.round(check_ratio(ratio) * n).astype(np.int64)


def hide_positives(
    labels: np.ndarray, ratio: float, seed: int | np.random.SeedSequence = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Hide round(ratio * n_i) positives of every row, chosen uniformly at random (docs/original.md
    section 3).

    Args:
        labels: (rows, classes) 0/1 array of complete labels.
        ratio: fraction of each row's positives to hide, in [0, 1).
        seed: seed of the random choice. For a fixed seed the hidden sets are nested across
            ratios: what 0.25 hides, 0.5 hides too.

    Returns:
        ``(observed, hidden)``: the labels with hidden positives set to 0 (same dtype as
        ``labels``) and the boolean mask of hidden entries.

    Example:
        >>> obs, hidden = hide_positives(np.eye(3, dtype=int) + np.eye(3, k=1, dtype=int), 0.5, 0)
        >>> hidden.sum(axis=1).tolist()   # round(0.5 * 2) = 1, round(0.5 * 1) = 0
        [1, 1, 0]
    """

    full = check_labels(labels)
    k = hidden_counts(full, ratio)
    # One random key per entry; a row hides its k_i positives with the smallest keys, which is a
    # uniform choice of k_i among its n_i positives.
    keys = np.random.default_rng(seed).random(full.shape)
    keys[~full] = np.inf
    rank = np.empty(full.shape, dtype=np.int64)
    order = np.argsort(keys, axis=1, kind="stable")
    np.put_along_axis(rank, order, np.arange(full.shape[1])[None, :], axis=1)
    hidden = full & (rank < k[:, None])
    observed = np.asarray(labels).copy()
    observed[hidden] = 0
    return observed, hidden


#: FPC's default count of annotated positives and negatives kept per class (CSL's COCO recipe).
FPC_DEFAULT_COUNT = 1000


def random_per_sample(labels: np.ndarray, ratio: float,
                      seed: int | np.random.SeedSequence = 0) -> np.ndarray:
    """RPS: every entry, positive or negative, becomes unknown with probability ``ratio``.

    Args:
        labels: (rows, classes) 0/1 complete labels.
        ratio: the probability that an entry is unknown, in [0, 1).
        seed: seed of the draw; for a fixed seed the unknown sets are nested across ratios.

    Returns:
        int8 partial labels: 1, 0, or -1 (:data:`UNKNOWN`).

    Example:
        >>> y = random_per_sample(np.ones((1000, 4), int), 0.5, seed=0)
        >>> round(float((y == -1).mean()), 1)
        0.5
    """

    full = check_labels(labels).astype(np.int8)
    ratio = check_ratio(ratio)
    full[np.random.default_rng(seed).random(full.shape) < ratio] = UNKNOWN
    return full


def fixed_per_class(labels: np.ndarray, count: int = FPC_DEFAULT_COUNT,
                    seed: int | np.random.SeedSequence = 0) -> np.ndarray:
    """FPC: per class, ``count`` annotated positives and ``count`` annotated negatives are kept,
    drawn uniformly without replacement (all of them where a class has fewer); every other
    entry becomes unknown. For a fixed seed the kept entries are nested across counts.

    Returns:
        int8 partial labels: 1, 0, or -1 (:data:`UNKNOWN`).

    Example:
        >>> y = fixed_per_class(np.eye(4, dtype=int).repeat(5, axis=0), count=2, seed=0)
        >>> (y == 1).sum(axis=0).tolist(), (y == 0).sum(axis=0).tolist()
        ([2, 2, 2, 2], [2, 2, 2, 2])
    """

    full = check_labels(labels)
    if int(count) != count or count < 1:
        raise DataError(f"the FPC count must be a whole number of at least 1, not {count!r}")
    rng = np.random.default_rng(seed)
    out = np.full(full.shape, UNKNOWN, dtype=np.int8)
    for c in range(full.shape[1]):
        for value in (True, False):
            # The first ``count`` of a seeded permutation: nested across counts.
            keep = rng.permutation(np.flatnonzero(full[:, c] == value))[: int(count)]
            out[keep, c] = int(value)
    return out


def single_positive(labels: np.ndarray, seed: int | np.random.SeedSequence = 0) -> np.ndarray:
    """Single positive: one positive per row is kept, drawn uniformly among the row's
    positives; every other entry becomes unknown.

    A row without a positive cannot keep one: it is refused with an error naming the row (the
    protocol is defined on rows with at least one label, as COCO and NUS-WIDE's filtered sets).

    Returns:
        int8 partial labels: one 1 per row, -1 (:data:`UNKNOWN`) elsewhere.

    Example:
        >>> single_positive(np.array([[1, 1, 0], [0, 0, 1]]), seed=0)[1].tolist()
        [-1, -1, 1]
    """

    full = check_labels(labels)
    empty = np.flatnonzero(~full.any(axis=1))
    if len(empty):
        raise DataError(f"row {int(empty[0])} has no positive label to keep under single "
                        f"positive ({len(empty)} of {len(full)} rows have none)")
    keys = np.random.default_rng(seed).random(full.shape)
    keys[~full] = np.inf
    out = np.full(full.shape, UNKNOWN, dtype=np.int8)
    out[np.arange(full.shape[0]), np.argmin(keys, axis=1)] = 1
    return out
