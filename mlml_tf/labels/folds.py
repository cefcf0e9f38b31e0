"""Folds by iterative stratification.
"""

from __future__ import annotations

import numpy as np
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

from mlml_tf.errors import DataError
from mlml_tf.labels.checks import check_labels

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

    splitter = MultilabelStratifiedKFold(n_splits=2, shuffle=True, random_state=seed)
    first, second = next(splitter.split(np.zeros(len(labels)), labels.astype(np.int8)))
    return np.sort(second), np.sort(first)


def stratified_parts(
    labels: np.ndarray, n_parts: int = 4, seed: int = 0, order: int = 2
) -> list[np.ndarray]:
    """Cut the rows into ``n_parts`` stratified parts by repeated halving (docs/original.md section
    2).

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

        splitter = MultilabelStratifiedKFold(n_splits=n_parts, shuffle=True, random_state=seed)
        split = splitter.split(np.zeros(len(full)), full.astype(np.int8))
        parts = [np.sort(test) for _, test in split]
    # An empty test fold would only fail later, in training or scoring.
    if any(len(p) == 0 for p in parts):
        raise DataError(f"stratifying {len(full)} rows left one of {n_parts} parts empty")
    return parts


def fold_indices(parts: list[np.ndarray], fold: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and test rows of ``fold`` (1-based), as the original did (docs/original.md section
    2).

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
