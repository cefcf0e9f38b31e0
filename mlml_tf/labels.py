"""Label arithmetic of the paper on numpy arrays: folds, hidden positives and loss weights.

Layer 1 of the package: numpy only (no TensorFlow), no file I/O. Every function takes a
(rows, classes) 0/1 array and, where chance enters, a ``seed``.
"""

from __future__ import annotations

import numpy as np

from mlml_tf.errors import DataError

#: The missing-label ratios of the paper (SPEC section 3).
PAPER_RATIOS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75)
#: Bounds of the class-balance weight P_c (SPEC section 6).
CLASS_BALANCE_MIN, CLASS_BALANCE_MAX = 1, 10


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


def check_ratio(ratio: float) -> float:
    ratio = float(ratio)
    if not 0.0 <= ratio < 1.0:
        raise DataError(f"ratio {ratio!r} is outside [0, 1): a ratio of 1 would hide every label")
    return ratio


def hidden_counts(labels: np.ndarray, ratio: float) -> np.ndarray:
    """How many positives each row loses: numpy's round(ratio * n_i), half to even (SPEC 3)."""
    n = check_labels(labels).sum(axis=1)
    return np.round(check_ratio(ratio) * n).astype(np.int64)


def hide_positives(
    labels: np.ndarray, ratio: float, seed: int | np.random.SeedSequence = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Hide round(ratio * n_i) positives of every row, chosen uniformly at random (SPEC 3).

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


def ignore_missing_weights(hidden: np.ndarray) -> np.ndarray:
    """IM-WCE negative weights: 0 where a positive was hidden, 1 elsewhere (an oracle, SPEC 3)."""
    return (~check_labels(hidden, "hidden")).astype(np.float32)


def class_balance_weights(labels: np.ndarray) -> np.ndarray:
    """Positive weights P_c = clip(round(1 / (2 freq_c)), 1, 10) (SPEC 6), float32 of shape (C,).

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
    labels: np.ndarray, source: np.ndarray | None = None, *, block: int = 1 << 22
) -> np.ndarray:
    """CB-WCE negative weights w̄_ic = P(y_c = 0 | positives of row i), paper eq. 3 (SPEC 4).

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
        block: upper bound on the number of (pattern, source row) matches held at once.

    Returns:
        (n, C) float32 array in [0, 1].

    Example:
        >>> y = np.array([[1, 1, 0], [1, 0, 0], [1, 0, 1]])
        >>> confidence_weights(y)[1].tolist()   # of the 3 rows holding class 0, one has 1, one 2
        [0.0, 0.6666666865348633, 0.6666666865348633]
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

    with np.errstate(divide="ignore", invalid="ignore"):
        pattern_weights = np.where(
            total[:, None] > 0, (total[:, None] - per_class) / total[:, None], 1.0
        )
    pattern_weights[pattern_sets] = 0.0
    return pattern_weights[inverse].astype(np.float32)


def confidence_weights_reference(
    labels: np.ndarray, source: np.ndarray | None = None
) -> np.ndarray:
    """The definition of :func:`confidence_weights`, entry by entry: slow, for tests only."""
    query = check_labels(labels)
    base = query if source is None else check_labels(source, "source")
    out = np.zeros(query.shape, dtype=np.float64)
    for i, row in enumerate(query):
        holders = base[base[:, row].all(axis=1)]
        for c in np.flatnonzero(~row):
            out[i, c] = 1.0 - holders[:, c].sum() / len(holders) if len(holders) else 1.0
    return out.astype(np.float32)


def _two_way_split(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Iterative stratification (Sechidis et al. 2011) of the rows into two sorted halves."""
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

    if len(labels) < 2:
        raise DataError(f"cannot split {len(labels)} row(s) into two stratified parts")
    splitter = MultilabelStratifiedKFold(n_splits=2, shuffle=True, random_state=seed)
    first, second = next(splitter.split(np.zeros(len(labels)), labels.astype(np.int8)))
    return np.sort(second), np.sort(first)


def stratified_parts(labels: np.ndarray, n_parts: int = 4, seed: int = 0) -> list[np.ndarray]:
    """Cut the rows into ``n_parts`` stratified parts by repeated halving (SPEC 2).

    The original cut the set in two halves, then each half in two quarters, with iterative
    stratification; ``n_parts`` must be a power of two. Each part holds sorted row indices.
    """
    full = check_labels(labels)
    if n_parts < 2 or n_parts & (n_parts - 1):
        raise DataError(f"the halving scheme needs a power of two parts, got {n_parts}")
    seeds = iter(np.random.SeedSequence(seed).generate_state(n_parts - 1))
    parts = [np.arange(len(full))]
    while len(parts) < n_parts:
        halved = []
        for part in parts:
            a, b = _two_way_split(full[part], int(next(seeds)))
            halved += [part[a], part[b]]
        parts = halved
    return parts


def kfold_parts(labels: np.ndarray, n_parts: int, seed: int = 0) -> list[np.ndarray]:
    """Cut the rows into ``n_parts`` parts with multilabel-stratified k-fold in one go."""
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

    full = check_labels(labels)
    if n_parts < 2 or len(full) < n_parts:
        raise DataError(f"cannot cut {len(full)} rows into {n_parts} stratified parts")
    splitter = MultilabelStratifiedKFold(n_splits=n_parts, shuffle=True, random_state=seed)
    return [np.sort(test) for _, test in splitter.split(np.zeros(len(full)), full.astype(np.int8))]


def fold_indices(parts: list[np.ndarray], fold: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and test rows of ``fold`` (1-based), as the original did (SPEC 2).

    Fold k tests on part n + 1 - k (fold 1 on the last quarter) and trains on the other parts
    concatenated in part order.
    """
    n = len(parts)
    if not 1 <= fold <= n:
        raise DataError(f"fold {fold} does not exist; folds run from 1 to {n}")
    test = n - fold
    train = np.concatenate([p for i, p in enumerate(parts) if i != test])
    return train, parts[test]


def iterative_folds(
    labels: np.ndarray, n_folds: int = 4, seed: int = 0, scheme: str = "halves"
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) row indices of folds 1..n_folds.

    ``scheme="halves"`` is the original's halves-then-quarters iterative stratification;
    ``scheme="kfold"`` a multilabel-stratified k-fold for any number of folds.
    """
    if scheme == "halves":
        parts = stratified_parts(labels, n_folds, seed)
    elif scheme == "kfold":
        parts = kfold_parts(labels, n_folds, seed)
    else:
        raise DataError(f"unknown fold scheme {scheme!r}; use 'halves' or 'kfold'")
    return [fold_indices(parts, k) for k in range(1, n_folds + 1)]
