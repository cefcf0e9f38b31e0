"""Second-order iterative stratification: the algorithm, what it promises, what it does to real
labels."""

import io
import itertools
import os
import subprocess
import sys

import numpy as np
import pytest

from mlml_tf import DataError, iterative_folds
from mlml_tf.labels.folds import iterative_stratification, kfold_parts, stratified_parts


def _transcription(labels, share, seed, order):
    """The algorithm row by row, with the same random draws as iterative_stratification."""
    y = np.asarray(labels, dtype=bool)
    n, k = len(y), len(share)
    rng = np.random.default_rng(seed)
    rank, draw = rng.permutation(n), rng.random(n)
    combos_of = [
        list(itertools.combinations_with_replacement(np.flatnonzero(r).tolist(), order))
        if order == 2 else [(a, a) for a in np.flatnonzero(r).tolist()]
        for r in y
    ]
    combos = sorted({c for cs in combos_of for c in cs}, key=lambda c: c[0] * y.shape[1] + c[1])
    comb_rank = dict(zip(combos, rng.permutation(len(combos)).tolist(), strict=True))
    holders = {c: [] for c in combos}
    for i in sorted(range(n), key=lambda i: rank[i]):
        for c in combos_of[i]:
            holders[c].append(i)
    desire = {c: [len(holders[c]) * s for s in share] for c in combos}
    desire_rows = [n * s for s in share]
    part = [-1] * n

    def pick(scores, tie_scores, row):
        cands = [j for j in range(k) if scores[j] == max(scores)]
        if len(cands) > 1 and tie_scores is not None:
            best = max(tie_scores[j] for j in cands)
            cands = [j for j in cands if tie_scores[j] == best]
        return cands[int(draw[row] * len(cands))]

    while True:
        left = {c: sum(part[i] < 0 for i in holders[c]) for c in combos}
        live = [c for c in combos if left[c]]
        if not live:
            break
        rarest = min(live, key=lambda c: (left[c], c[0] == c[1], comb_rank[c]))
        for i in holders[rarest]:
            if part[i] < 0:
                part[i] = j = pick(desire[rarest], desire_rows, i)
                desire_rows[j] -= 1
                for c in combos_of[i]:
                    desire[c][j] -= 1
    for i in sorted((i for i in range(n) if part[i] < 0), key=lambda i: rank[i]):
        part[i] = j = pick(desire_rows, None, i)
        desire_rows[j] -= 1
    return [np.flatnonzero(np.array(part) == j) for j in range(k)]


def _pair_rate_deviation(labels, parts):
    """Mean over test parts of the mean |pair rate in part - pair rate in all| over co-occurring
    pairs (a < b)."""
    y = labels.astype(np.float64)
    whole = y.T @ y / len(y)
    pairs = np.triu(whole > 0, k=1)
    return np.mean([np.abs((y[p].T @ y[p] / len(p) - whole)[pairs]).mean() for p in parts])


def _class_rate_deviation(labels, parts):
    rate = labels.mean(axis=0)
    return np.mean([np.abs(labels[p].mean(axis=0) - rate).mean() for p in parts])


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("share", [(0.5, 0.5), (0.25, 0.25, 0.5), (0.2,) * 5])
def test_the_vectorized_split_is_the_algorithm_row_by_row(coco_labels, order, share):
    rng = np.random.default_rng(11)
    rows = coco_labels[rng.choice(len(coco_labels), 500, replace=False)]
    rows[:25] = 0  # unlabelled rows take the last step of the algorithm
    for seed in (0, 1):
        got = iterative_stratification(rows, share, seed, order)
        want = _transcription(rows, share, seed, order)
        assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))


@pytest.mark.parametrize("name", ["coco", "nus"])
def test_second_order_quarters_hold_label_pair_rates_closer_than_first_order(request, name):
    frame = request.getfixturevalue(f"{name}_reference")
    labels = frame.drop(columns="fold").to_numpy(np.uint8)
    second = _pair_rate_deviation(labels, stratified_parts(labels, 4, seed=0, order=2))
    first = _pair_rate_deviation(labels, stratified_parts(labels, 4, seed=0, order=1))
    # Measured 0.00014 vs 0.00031 (COCO) and 0.00010 vs 0.00025 (NUS-WIDE); first-order is no
    # better than a random cut on pairs.
    assert second < 0.6 * first


def test_second_order_still_holds_single_label_rates_far_closer_than_a_random_cut(coco_labels):
    parts = stratified_parts(coco_labels, 4, seed=0, order=2)
    perm = np.random.default_rng(0).permutation(len(coco_labels))
    shuffled = [np.sort(perm[i::4]) for i in range(4)]
    # Measured 0.0009 vs 0.0014; first-order iterative stratification reaches 0.0004, as pairs
    # are not its concern.
    assert _class_rate_deviation(coco_labels, parts) < 0.75 * _class_rate_deviation(
        coco_labels, shuffled
    )


def test_same_seed_gives_identical_parts_in_another_process(coco_labels):
    rows = coco_labels[:3000]
    here = stratified_parts(rows, 4, seed=7)
    code = (
        "import io, sys, numpy as np; from mlml_tf.labels import stratified_parts; "
        "y = np.load(io.BytesIO(sys.stdin.buffer.read())); "
        "print([p.tolist() for p in stratified_parts(y, 4, seed=7)])"
    )
    buffer = io.BytesIO()
    np.save(buffer, rows)
    out = subprocess.run(
        [sys.executable, "-c", code], input=buffer.getvalue(), capture_output=True, check=True,
        env={**os.environ, "PYTHONHASHSEED": "123"},
    ).stdout.decode()
    assert out.strip() == str([p.tolist() for p in here])
    again = stratified_parts(rows, 4, seed=7)
    assert all(np.array_equal(a, b) for a, b in zip(here, again, strict=True))
    other = stratified_parts(rows, 4, seed=8)
    assert any(not np.array_equal(a, b) for a, b in zip(here, other, strict=True))


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("scheme, n_folds", [("halves", 4), ("halves", 8), ("kfold", 5)])
def test_parts_partition_the_rows(coco_labels, order, scheme, n_folds):
    rows = coco_labels[:2000]
    folds = iterative_folds(rows, n_folds=n_folds, seed=3, scheme=scheme, order=order)
    tested = np.concatenate([test for _, test in folds])
    assert np.array_equal(np.sort(tested), np.arange(len(rows)))
    for train, test in folds:
        assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == len(rows)


def test_part_sizes_follow_the_proportions_but_are_not_exact(coco_labels, nus_reference):
    # A labelled row goes where its combination is wanted, even into a full part: the algorithm
    # does not promise n/4 +- 1. The original's published COCO quarters are off by up to 58 rows.
    for labels in (coco_labels, nus_reference.drop(columns="fold").to_numpy(np.uint8)):
        sizes = np.array([len(p) for p in stratified_parts(labels, 4, seed=0)])
        assert np.abs(sizes - len(labels) / 4).max() < 0.025 * len(labels) / 4


def test_unlabelled_rows_even_out_the_part_sizes(coco_labels):
    rows = np.concatenate([coco_labels[:1001], np.zeros((600, coco_labels.shape[1]), np.uint8)])
    first, second = iterative_stratification(rows, (0.5, 0.5), seed=2)
    assert abs(len(first) - len(second)) <= 1
    parts = stratified_parts(rows, 4, seed=2)
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert [len(p) for p in iterative_stratification(np.zeros((7, 3)), (0.5, 0.5))] in (
        [3, 4], [4, 3]
    )


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize(
    "rows", [[[1, 0], [1, 0]], [[1, 0], [0, 1]], [[0, 0], [0, 0]], [[1, 1], [0, 0]]]
)
def test_two_rows_split_into_one_row_each(rows, order):
    for seed in range(4):
        a, b = stratified_parts(np.array(rows), 2, seed=seed, order=order)
        assert sorted([a.tolist(), b.tolist()]) == [[0], [1]]


def test_tiny_inputs_are_split_or_refused_with_a_reason():
    assert [p.tolist() for p in iterative_stratification(np.zeros((1, 4)), (0.5, 0.5))] in (
        [[0], []], [[], [0]]
    )
    assert [len(p) for p in iterative_stratification(np.zeros((4, 0)), (0.5, 0.5))] == [2, 2]
    with pytest.raises(DataError, match="cannot split 1 row"):
        stratified_parts(np.array([[1, 0]]), 2)
    with pytest.raises(DataError, match="cannot split 1 row"):
        stratified_parts(np.eye(3), 4)
    with pytest.raises(DataError, match="cannot cut 2 rows"):
        kfold_parts(np.eye(2), 3)


def test_bad_order_or_proportions_are_refused():
    with pytest.raises(DataError, match="order must be 1 or 2"):
        stratified_parts(np.eye(4), 2, order=3)
    with pytest.raises(DataError, match="sum to 1"):
        iterative_stratification(np.eye(4), (0.5, 0.6))
    with pytest.raises(DataError, match="non-negative"):
        iterative_stratification(np.eye(4), (1.5, -0.5))
    with pytest.raises(DataError, match="0 or 1"):
        iterative_stratification(np.eye(4) * 2)


def test_first_order_gives_the_parts_of_earlier_versions(coco_labels):
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

    rows = coco_labels[:1500]
    seed = int(np.random.SeedSequence(4).generate_state(1)[0])
    splitter = MultilabelStratifiedKFold(n_splits=2, shuffle=True, random_state=seed)
    train, test = next(splitter.split(np.zeros(len(rows)), rows.astype(np.int8)))
    first, second = stratified_parts(rows, 2, seed=4, order=1)
    assert np.array_equal(first, np.sort(test)) and np.array_equal(second, np.sort(train))
