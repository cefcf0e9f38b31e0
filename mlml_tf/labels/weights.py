"""Per-entry loss weights of the paper: ignore-missing, class balance, confidence (eq. 3).
"""

from __future__ import annotations

import numpy as np

from mlml_tf.errors import DataError
from mlml_tf.labels.checks import check_labels

#: Bounds of the class-balance weight P_c (docs/original.md section 6).
CLASS_BALANCE_MIN, CLASS_BALANCE_MAX = 1, 10


def ignore_missing_weights(hidden: np.ndarray) -> np.ndarray:
    """IM-WCE negative weights: 0 where a positive was hidden, 1 elsewhere (an oracle,
    docs/original.md section 3)."""
    return (~check_labels(hidden, "hidden")).astype(np.float32)


def class_balance_weights(labels: np.ndarray) -> np.ndarray:
    """Positive weights P_c = clip(round(1 / (2 freq_c)), 1, 10) (docs/original.md section 6),
    float32 of shape (C,).

    A class with no positive at all has freq_c = 0 and gets the cap, 10: it is as rare as a class
    can be, and the weight only ever multiplies positive entries, of which it has none here.
    """

    full = check_labels(labels)
    if full.shape[0] == 0:
        raise DataError("class_balance_weights needs at least one row")
    freq = full.mean(axis=0)
    with np.errstate(divide="ignore"):
        p = np.round(1.0 / (2.0 * freq))
    return np.clip(p, CLASS_BALANCE_MIN, CLASS_BALANCE_MAX).astype(np.float32)


def _pack_rows(full: np.ndarray) -> np.ndarray:
    """Each row's positive set as (rows, words) uint64 bit masks."""
    n, c = full.shape
    words = max(1, -(-c // 64))
    padded = np.zeros((n, words * 64), dtype=bool)
    padded[:, :c] = full
    return np.packbits(padded, axis=1, bitorder="little").view("<u8").reshape(n, words)


def confidence_weights(
    labels: np.ndarray,
    source: np.ndarray | None = None,
    *,
    own: np.ndarray | None = None,
    block: int = 1 << 22,
) -> np.ndarray:
    """CB-WCE negative weights w̄_ic = P(y_c = 0 | positives of row i), paper eq. 3
    (docs/original.md section 4).

    With S_i the positive classes of row i of ``labels`` and j running over the rows of
    ``source``::

        w̄_ic = 0                                                 if labels_ic = 1
        w̄_ic = 1 - |{j : S_i ∪ {c} ⊆ S_j}| / |{j : S_i ⊆ S_j}|    otherwise

    A pattern that no row of ``source`` contains gets 1 everywhere it is negative, as a pattern
    that only its own row contains does.

    The counts are exact integers: rows of ``labels`` are grouped by positive pattern, each
    pattern is matched (64 classes per machine word) only against the rows of ``source`` that
    hold its rarest class, and the per-class counts of the matches come from one matrix product.
    Memory stays at ``block`` match entries at a time, far below a rows x rows matrix.

    Args:
        labels: (n, C) 0/1 array; one weight row is returned for each of its rows.
        source: (m, C) 0/1 array to count over; default ``labels`` itself. The paper's oracle
            counts over the complete labels of the whole set; a real user has only the observed
            training labels.
        own: (n, C) 0/1, for each row of ``labels`` its own row of ``source`` (its complete
            labels, which hold its observed positives), left out of its own counts. The
            oracle counted so ("oracle-loo") no longer reads a row's hidden positives off its
            own complete row (docs/methods.md section 6).
        block: upper bound on the number of (pattern, source row) matches held at once.

    Returns:
        (n, C) float32 array in [0, 1].

    Example:
        >>> y = np.array([[1, 1, 0], [1, 0, 0], [1, 0, 1]])
        >>> confidence_weights(y)[1].tolist()   # of the 3 rows holding class 0, one has 1, one 2
        [0.0, 0.6666666865348816, 0.6666666865348816]
    """

    query = check_labels(labels)
    base = query if source is None else check_labels(source, "source")
    if base.shape[1] != query.shape[1]:
        raise DataError(
            f"source has {base.shape[1]} classes but labels have {query.shape[1]}"
        )
    n_classes = query.shape[1]
    if base.shape[0] >= 1 << 24:
        raise DataError("source has 2^24 rows or more; float32 counts would not be exact")

    patterns, inverse = np.unique(_pack_rows(query), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    pattern_sets = np.unpackbits(
        patterns.view(np.uint8), axis=1, count=n_classes, bitorder="little"
    ).astype(bool)
    base_words = _pack_rows(base)
    base_f32 = base.astype(np.float32)
    freq = base.sum(axis=0)

    # Group the patterns by the rarest of their classes (in source); -1 for the empty pattern,
    # which every row contains.
    rarity = np.where(pattern_sets, freq[None, :], np.iinfo(np.int64).max)
    rarest = np.where(pattern_sets.any(axis=1), rarity.argmin(axis=1), -1)

    total = np.zeros(len(patterns), dtype=np.float64)
    per_class = np.zeros((len(patterns), n_classes), dtype=np.float64)
    for r in np.unique(rarest):
        group = np.flatnonzero(rarest == r)
        rows = np.arange(base.shape[0]) if r < 0 else np.flatnonzero(base[:, r])
        if len(rows) == 0:
            continue
        cand_words = base_words[rows]
        cand_f32 = base_f32[rows]
        step = max(1, block // len(rows))
        for start in range(0, len(group), step):
            chunk = group[start : start + step]
            want = patterns[chunk]
            match = np.ones((len(chunk), len(rows)), dtype=bool)
            for w in range(want.shape[1]):
                match &= (cand_words[None, :, w] & want[:, None, w]) == want[:, None, w]
            total[chunk] = match.sum(axis=1)
            per_class[chunk] = match.astype(np.float32) @ cand_f32

    if own is not None:
        return _leave_own_out(query, total[inverse], per_class[inverse], own)
    with np.errstate(divide="ignore", invalid="ignore"):
        pattern_weights = np.where(
            total[:, None] > 0, (total[:, None] - per_class) / total[:, None], 1.0
        )
    pattern_weights[pattern_sets] = 0.0
    return pattern_weights[inverse].astype(np.float32)


def _leave_own_out(query: np.ndarray, total: np.ndarray, per_class: np.ndarray,
                   own: np.ndarray) -> np.ndarray:
    """Eq. 3 with each row's own row of the source taken out of its counts."""
    mine = check_labels(own, "own")
    if mine.shape != query.shape:
        raise DataError(f"own has shape {mine.shape} but labels have {query.shape}")
    outside = query & ~mine
    if outside.any():
        r, c = np.argwhere(outside)[0]
        raise DataError(f"own[{r}, {c}] = 0 where labels[{r}, {c}] = 1: own must hold each "
                        "row's complete labels")
    total = total - 1.0
    per_class = per_class - mine
    absent = np.flatnonzero((total < 0) | (per_class < 0).any(axis=1))
    if len(absent):
        raise DataError(f"own row {absent[0]} is not a row of source")
    with np.errstate(divide="ignore", invalid="ignore"):
        weights = np.where(total[:, None] > 0, 1.0 - per_class / total[:, None], 1.0)
    weights[query] = 0.0
    return weights.astype(np.float32)


def entry_weights(y, pos_weight, neg_weight=1.0):
    """The per-entry weight W = y * P + (1 - y) * w̄ that Keras takes as ``sample_weight``.

    Positive entries get their class's balance weight P_c, negative entries their own weight
    w̄_ic: 1 for CE, the 0/1 "ignore missing" mask for IM-WCE, the confidence of paper eq. 3 for
    CB-WCE. A numpy float32 array, checked: shapes must broadcast to ``y``'s and weights must be
    finite and non-negative; handy to build a ``tf.data.Dataset`` of (x, y, W).
    (:func:`mlml_tf.losses.entry_weights` takes tensors too.)

    Args:
        y: labels, shape (B, C).
        pos_weight: P, shape (C,) or scalar.
        neg_weight: w̄, shape (B, C), (C,) or scalar.

    Returns:
        W, shape (B, C).

    Example:
        >>> entry_weights(np.array([[1, 0], [0, 1]]), pos_weight=[10, 2], neg_weight=0.5)
        array([[10. ,  0.5],
               [ 0.5,  2. ]], dtype=float32)
    """

    y = np.asarray(y, dtype=np.float32)
    pos = check_weight(pos_weight, "pos_weight", y.shape)
    neg = check_weight(neg_weight, "neg_weight", y.shape)
    return (y * pos + (1.0 - y) * neg).astype(np.float32)


def check_weight(weight, name: str, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(weight, dtype=np.float32)
    try:
        broadcast = np.broadcast_shapes(arr.shape, shape)
    except ValueError:
        broadcast = None
    if broadcast != tuple(shape):
        raise DataError(f"{name} of shape {arr.shape} does not fit labels of shape {shape}")
    bad = ~np.isfinite(arr) | (arr < 0)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise DataError(f"{name}{list(where)} = {arr[where].item()!r} is not a finite weight >= 0")
    return arr
