"""Label arithmetic of the paper on numpy arrays: folds, hidden positives and loss weights.

Layer 1 of the package: numpy only (no TensorFlow), no file I/O. Every function takes a
(rows, classes) 0/1 array and, where chance enters, a ``seed``. Partial labels have three
states (METHODS.md section 1): ``1`` annotated positive, ``0`` annotated negative, ``-1``
unknown (:data:`UNKNOWN`, :func:`check_partial_labels`).
"""

from __future__ import annotations

import numpy as np

from mlml_tf.errors import DataError

#: The missing-label ratios of the paper (SPEC section 3).
PAPER_RATIOS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75)
#: Bounds of the class-balance weight P_c (SPEC section 6).
CLASS_BALANCE_MIN, CLASS_BALANCE_MAX = 1, 10
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


#: The protocols that simulate missing labels on complete training labels (METHODS.md section
#: 2): the paper's (hidden positives become 0), random per sample (RPS), fixed per class (FPC)
#: and single positive (the last three mark entries unknown, -1).
PROTOCOLS: tuple[str, ...] = ("paper", "rps", "fpc", "single-positive")
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


#: Label orders that :func:`iterative_stratification` balances: single labels, or labels and pairs.
STRATIFICATION_ORDERS: tuple[int, ...] = (1, 2)


def _check_order(order: int) -> int:
    if order not in STRATIFICATION_ORDERS:
        raise DataError(f"stratification order must be 1 or 2, got {order!r}")
    return int(order)


def _label_combinations(full: np.ndarray, order: int) -> tuple[np.ndarray, np.ndarray]:
    """The (row, combination) incidence of ``full``, sorted by row.

    A combination is coded ``a * classes + b`` with ``a <= b``: order 1 has only the singletons
    ``(a, a)``; order 2 has every pair of a row's positives and every singleton, which is
    ``itertools.combinations_with_replacement(positives, 2)`` row by row.
    """
    rows, labels = np.nonzero(full)
    n_classes = full.shape[1]
    if order == 1:
        return rows, labels.astype(np.int64) * (n_classes + 1)
    # Entry e of row r pairs with itself and with the later entries of r: ``partners`` of them.
    row_end = np.cumsum(np.bincount(rows, minlength=full.shape[0]))[rows]
    partners = row_end - np.arange(len(rows))
    first = np.repeat(np.arange(len(rows)), partners)
    group_start = np.repeat(np.cumsum(partners) - partners, partners)
    second = first + np.arange(len(first)) - group_start
    return rows[first], labels[first].astype(np.int64) * n_classes + labels[second]


def iterative_stratification(
    labels: np.ndarray,
    proportions: tuple[float, ...] | list[float] | np.ndarray = (0.5, 0.5),
    seed: int | np.random.SeedSequence = 0,
    order: int = 2,
) -> list[np.ndarray]:
    """Cut the rows into parts of the given sizes by iterative stratification of label combinations.

    This is the iterative stratification of Sechidis et al. (2011) over label combinations
    (Szymański & Kajdanowicz 2017), the method of scikit-multilearn's ``IterativeStratification``
    that the original called through ``iterative_train_test_split(X, y, test_size=0.5)``
    (order 2, proportions 0.5/0.5):

    1. The combinations are every label present (order 1), or every label and every pair of
       labels that occur together in a row (order 2). Each part j desires ``p_j * count`` rows
       holding each combination, and ``p_j * rows`` rows in all.
    2. While some labelled row is left, take the combination held by the fewest rows not yet
       placed (ties: a pair before a single label, then a seeded random order of the
       combinations). Place its remaining rows one by one into the part that most desires that
       combination; ties go to the part that desires the most rows, then to a seeded random
       draw. Each placement lowers, in that part, the desire for every combination of the row
       and the desired number of rows.
    3. Rows with no label go one by one to the part that desires the most rows (ties: seeded
       random draw), which evens out the part sizes as far as the labelled rows allow.

    scikit-multilearn departs from the papers in three places, and this follows the papers: it
    takes the first combination of a dictionary that passes a two-sided test rather than the
    rarest one, sends unlabelled rows to a random part that is not yet full rather than to the
    emptiest one, and (scikit-multilearn-ng 0.0.8) given a ``random_state`` returns positions in
    its shuffled copy of the rows instead of row indices. Here the rows of a combination are
    taken in an order drawn once from ``seed``.

    Rarest first serves the rare labels and pairs: the frequent ones come last, when most of
    their rows are already placed, and their rates in a part stay about as close to the whole
    set's as in a random cut (``benchmarks/bench_stratification.py``).

    The rows of one combination only change that combination's desires and the row desires, so
    each combination's rows are placed by a short scalar loop, and the desires of all the other
    combinations those rows hold are lowered in one vectorized step.

    Args:
        labels: (rows, classes) 0/1 array. Rows with no positive are allowed.
        proportions: the fraction of the rows each part should hold; non-negative, summing to 1.
        seed: seed of every random choice (the row order and the ties). The same seed and labels
            give the same parts, in any process.
        order: 2 balances label pairs as well as single labels; 1 balances single labels only.

    Returns:
        One sorted array of row indices per proportion, together a partition of the rows. Part
        sizes follow the proportions but are not exact: a labelled row goes where its
        combination is wanted even if that part is already full.

    Example:
        >>> y = np.array([[1, 0], [1, 0], [0, 1], [0, 1], [1, 1], [1, 1]])
        >>> [y[p].sum(axis=0).tolist() for p in iterative_stratification(y, (0.5, 0.5), seed=0)]
        [[2, 2], [2, 2]]
    """
    full = check_labels(labels)
    order = _check_order(order)
    share = np.asarray(proportions, dtype=np.float64)
    if share.ndim != 1 or len(share) < 1 or not np.isfinite(share).all() or (share < 0).any():
        raise DataError(f"proportions must be non-negative numbers, got {proportions!r}")
    if not np.isclose(share.sum(), 1.0):
        raise DataError(f"proportions must sum to 1, got {share.sum()!r}")
    n_rows, n_parts = full.shape[0], len(share)
    rng = np.random.default_rng(seed)
    # Every draw is made up front, in a fixed sequence: the parts depend on seed and labels only.
    row_rank = rng.permutation(n_rows)
    tie_draw = rng.random(n_rows).tolist()

    entry_row, entry_code = _label_combinations(full, order)
    codes, entry_comb = np.unique(entry_code, return_inverse=True)
    entry_comb = entry_comb.reshape(-1)
    n_comb = len(codes)
    comb_order = rng.permutation(n_comb)

    # Rows -> combinations (entries are sorted by row already).
    row_ptr = np.concatenate([[0], np.cumsum(np.bincount(entry_row, minlength=n_rows))])
    # Combinations -> rows, each combination's rows in the seeded row order.
    by_comb = np.lexsort((row_rank[entry_row], entry_comb))
    comb_rows = entry_row[by_comb]
    comb_ptr = np.concatenate([[0], np.cumsum(np.bincount(entry_comb, minlength=n_comb))])

    count = np.diff(comb_ptr)
    desire = count[:, None] * share[None, :]
    desire_rows = (n_rows * share).tolist()
    remaining = count.copy()
    part_of = np.full(n_rows, -1, dtype=np.int64)
    # Rarest first; on equal counts a pair (2 labels) before a single label, then seeded order.
    is_single = codes // full.shape[1] == codes % full.shape[1] if n_comb else np.zeros(0, bool)
    tie_key = is_single.astype(np.int64) * n_comb + comb_order
    no_key = np.iinfo(np.int64).max
    parts_range = range(n_parts)

    for _ in range(n_comb):
        key = np.where(remaining > 0, remaining * (2 * n_comb) + tie_key, no_key)
        comb = int(np.argmin(key))
        if remaining[comb] == 0:
            break
        rows = comb_rows[comb_ptr[comb] : comb_ptr[comb + 1]]
        rows = rows[part_of[rows] < 0]
        want = desire[comb].tolist()
        chosen = []
        for row in rows.tolist():
            best = max(want)
            cands = [j for j in parts_range if want[j] == best]
            if len(cands) > 1:
                most = max(desire_rows[j] for j in cands)
                cands = [j for j in cands if desire_rows[j] == most]
            j = cands[int(tie_draw[row] * len(cands))] if len(cands) > 1 else cands[0]
            want[j] -= 1
            desire_rows[j] -= 1
            chosen.append(j)
        part_of[rows] = chosen
        # Lower the desires of every combination of the placed rows, in their parts.
        starts, lengths = row_ptr[rows], row_ptr[rows + 1] - row_ptr[rows]
        offsets = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
        hit = entry_comb[offsets + np.arange(int(lengths.sum()))]
        np.subtract.at(desire, (hit, np.repeat(chosen, lengths)), 1.0)
        np.subtract.at(remaining, hit, 1)

    # Rows with no label (no combination) even out the part sizes, in the seeded row order.
    unlabelled = np.flatnonzero(part_of < 0)
    for row in unlabelled[np.argsort(row_rank[unlabelled], kind="stable")].tolist():
        most = max(desire_rows)
        cands = [j for j in parts_range if desire_rows[j] == most]
        j = cands[int(tie_draw[row] * len(cands))]
        desire_rows[j] -= 1
        part_of[row] = j
    return [np.flatnonzero(part_of == j) for j in parts_range]


def _two_way_split(
    labels: np.ndarray, seed: int, order: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Iterative stratification of the rows into two sorted halves.

    ``order=2`` is :func:`iterative_stratification` with proportions 0.5/0.5, as the original's
    ``iterative_train_test_split(X, y, test_size=0.5)``; ``order=1`` is iterstrat's first-order
    ``MultilabelStratifiedKFold`` with two folds, which earlier versions used.
    """
    if len(labels) < 2:
        raise DataError(f"cannot split {len(labels)} row(s) into two stratified parts")
    if _check_order(order) == 2:
        first, second = iterative_stratification(labels, (0.5, 0.5), seed, order=2)
        return first, second
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

    splitter = MultilabelStratifiedKFold(n_splits=2, shuffle=True, random_state=seed)
    first, second = next(splitter.split(np.zeros(len(labels)), labels.astype(np.int8)))
    return np.sort(second), np.sort(first)


def stratified_parts(
    labels: np.ndarray, n_parts: int = 4, seed: int = 0, order: int = 2
) -> list[np.ndarray]:
    """Cut the rows into ``n_parts`` stratified parts by repeated halving (SPEC 2).

    The original cut the set in two halves, then each half in two quarters, with second-order
    iterative stratification; ``n_parts`` must be a power of two.

    Args:
        labels: (rows, classes) 0/1 array.
        n_parts: number of parts, a power of two.
        seed: seed of the whole cut; each halving gets its own seed drawn from it.
        order: 2 (the original's) balances label pairs and single labels; 1 uses the
            first-order splitter of earlier versions and gives their parts back.

    Returns:
        ``n_parts`` arrays of sorted row indices, together a partition of the rows.
    """
    full = check_labels(labels)
    order = _check_order(order)
    if n_parts < 2 or n_parts & (n_parts - 1):
        raise DataError(f"the halving scheme needs a power of two parts, got {n_parts}")
    seeds = iter(np.random.SeedSequence(seed).generate_state(n_parts - 1))
    parts = [np.arange(len(full))]
    while len(parts) < n_parts:
        halved = []
        for part in parts:
            a, b = _two_way_split(full[part], int(next(seeds)), order)
            halved += [part[a], part[b]]
        parts = halved
    return parts


def kfold_parts(
    labels: np.ndarray, n_parts: int, seed: int = 0, order: int = 2
) -> list[np.ndarray]:
    """Cut the rows into ``n_parts`` stratified parts in one go.

    Args:
        labels: (rows, classes) 0/1 array with at least ``n_parts`` rows.
        n_parts: number of parts, any integer from 2.
        seed: seed of the cut.
        order: 2 runs :func:`iterative_stratification` with equal proportions; 1 uses
            iterstrat's first-order ``MultilabelStratifiedKFold``, as earlier versions did.

    Returns:
        ``n_parts`` arrays of sorted row indices, together a partition of the rows.
    """
    full = check_labels(labels)
    order = _check_order(order)
    if n_parts < 2 or len(full) < n_parts:
        raise DataError(f"cannot cut {len(full)} rows into {n_parts} stratified parts")
    if order == 2:
        parts = iterative_stratification(full, np.full(n_parts, 1.0 / n_parts), seed, order=2)
    else:
        from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

        splitter = MultilabelStratifiedKFold(n_splits=n_parts, shuffle=True, random_state=seed)
        split = splitter.split(np.zeros(len(full)), full.astype(np.int8))
        parts = [np.sort(test) for _, test in split]
    # An empty test fold would only fail later, in training or scoring.
    if any(len(p) == 0 for p in parts):
        raise DataError(f"stratifying {len(full)} rows left one of {n_parts} parts empty")
    return parts


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
    labels: np.ndarray,
    n_folds: int = 4,
    seed: int = 0,
    scheme: str = "halves",
    order: int = 2,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) row indices of folds 1..n_folds.

    Args:
        labels: (rows, classes) 0/1 array.
        n_folds: number of folds; a power of two for ``scheme="halves"``.
        seed: seed of the cut.
        scheme: ``"halves"`` is the original's halves-then-quarters iterative stratification
            (:func:`stratified_parts`); ``"kfold"`` cuts any number of parts in one go
            (:func:`kfold_parts`).
        order: 2 (the original's) balances label pairs and single labels; 1 single labels only,
            with the first-order splitter of earlier versions.

    Returns:
        ``n_folds`` pairs ``(train, test)``; fold k tests on part n_folds + 1 - k.
    """
    if scheme == "halves":
        parts = stratified_parts(labels, n_folds, seed, order)
    elif scheme == "kfold":
        parts = kfold_parts(labels, n_folds, seed, order)
    else:
        raise DataError(f"unknown fold scheme {scheme!r}; use 'halves' or 'kfold'")
    return [fold_indices(parts, k) for k in range(1, n_folds + 1)]
