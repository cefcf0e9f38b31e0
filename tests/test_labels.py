"""The label arithmetic of the paper, checked on the real published COCO and NUS-WIDE labels."""

import numpy as np
import pytest
from reference import confidence_weights_reference

from mlml_tf import (
    DataError,
    class_balance_weights,
    confidence_weights,
    hide_positives,
    ignore_missing_weights,
    iterative_folds,
)
from mlml_tf.labels.folds import fold_indices, stratified_parts


@pytest.mark.parametrize("ratio", [0.0, 0.25, 0.5, 0.75])
def test_hidden_count_equals_numpy_round_of_ratio_times_positives(coco_labels, ratio):
    observed, hidden = hide_positives(coco_labels, ratio, seed=3)
    n = coco_labels.sum(axis=1)
    assert (hidden.sum(axis=1) == np.round(ratio * n)).all()
    assert (coco_labels[hidden] == 1).all(), "only positives are hidden"
    assert (observed == coco_labels - hidden).all()
    assert observed.dtype == coco_labels.dtype


def test_rounding_is_half_to_even():
    labels = np.zeros((3, 8), dtype=np.uint8)
    labels[0, :6] = 1  # 0.25 * 6 = 1.5 -> 2
    labels[1, :2] = 1  # 0.25 * 2 = 0.5 -> 0
    labels[2, :1] = 1  # 0.75 * 1 = 0.75 -> 1: a single positive can be hidden
    _, hidden = hide_positives(labels, 0.25, seed=0)
    assert hidden.sum(axis=1).tolist() == [2, 0, 0]
    _, hidden = hide_positives(labels, 0.75, seed=0)
    assert hidden.sum(axis=1).tolist() == [4, 2, 1]


def test_hidden_positives_are_chosen_uniformly():
    labels = np.zeros((20000, 6), dtype=np.uint8)
    labels[:, :4] = 1
    _, hidden = hide_positives(labels, 0.5, seed=1)
    rate = hidden[:, :4].mean(axis=0)
    # each of the 4 positives is hidden with probability 1/2; 5 standard errors = 0.018
    assert np.abs(rate - 0.5).max() < 0.018
    pairs = np.unique(hidden[:, :4] @ (1 << np.arange(4)), return_counts=True)[1]
    assert len(pairs) == 6 and pairs.min() > 20000 / 6 * 0.9


def test_hiding_is_seeded_and_nested_across_ratios(coco_labels):
    a = hide_positives(coco_labels, 0.5, seed=7)[1]
    assert (a == hide_positives(coco_labels, 0.5, seed=7)[1]).all()
    assert (a != hide_positives(coco_labels, 0.5, seed=8)[1]).any()
    low = hide_positives(coco_labels, 0.25, seed=7)[1]
    high = hide_positives(coco_labels, 0.75, seed=7)[1]
    assert (low <= a).all() and (a <= high).all()


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.5, float("nan")])
def test_ratio_outside_unit_interval_is_refused(ratio):
    with pytest.raises(DataError, match="outside"):
        hide_positives(np.ones((2, 3)), ratio, seed=0)


def test_labels_other_than_zero_one_are_refused():
    with pytest.raises(DataError, match=r"labels\[1, 2\] = 2"):
        hide_positives(np.array([[0, 1, 0], [1, 0, 2]]), 0.5, seed=0)
    with pytest.raises(DataError, match="nan"):
        confidence_weights(np.array([[0.0, np.nan]]))


def test_ignore_missing_weight_is_zero_exactly_where_hidden(coco_labels):
    _, hidden = hide_positives(coco_labels, 0.5, seed=0)
    w = ignore_missing_weights(hidden)
    assert w.dtype == np.float32
    assert ((w == 0) == hidden).all() and ((w == 1) == ~hidden).all()


def test_class_balance_weights_on_complete_coco_fold_1_training_labels(coco_reference):
    # docs/original.md section 6: from the complete labels of fold 1's training rows, 48 of 80
    # classes get 10 and only "person" gets 1.
    train = coco_reference[coco_reference["fold"] != 1].drop(columns="fold")
    p = class_balance_weights(train.to_numpy())
    assert p.dtype == np.float32 and p.shape == (80,)
    assert (p == 10).sum() == 48
    assert train.columns[p == 1].tolist() == ["person"]
    freq = train.to_numpy().mean(axis=0)
    assert (p == np.clip(np.round(1 / (2 * freq)), 1, 10)).all()


def test_class_without_positive_gets_the_cap():
    p = class_balance_weights(np.array([[1, 0, 1], [1, 0, 0]]))
    assert p.tolist() == [1.0, 10.0, 1.0]


@pytest.mark.parametrize("name", ["coco", "nuswide"])
def test_confidence_weights_match_the_definition_on_real_rows(request, name):
    frame = request.getfixturevalue(f"{'coco' if name == 'coco' else 'nus'}_reference")
    labels = frame.drop(columns="fold").to_numpy(np.uint8)
    fast = confidence_weights(labels)
    sample = np.random.default_rng(0).choice(len(labels), 150, replace=False)
    slow = confidence_weights_reference(labels[sample], labels)
    assert fast.dtype == np.float32 and fast.shape == labels.shape
    np.testing.assert_array_equal(fast[sample], slow)
    assert (fast[labels == 1] == 0).all()
    assert ((fast >= 0) & (fast <= 1)).all()


def test_confidence_weights_over_observed_training_labels(coco_reference):
    full = coco_reference.drop(columns="fold").to_numpy(np.uint8)
    train = full[coco_reference["fold"].to_numpy() != 1]
    observed, _ = hide_positives(train, 0.75, seed=0)
    test = full[coco_reference["fold"].to_numpy() == 1]
    for query, source in ((observed, None), (test, observed)):
        fast = confidence_weights(query, source)
        rows = np.random.default_rng(1).choice(len(query), 100, replace=False)
        slow = confidence_weights_reference(query[rows], query if source is None else source)
        np.testing.assert_array_equal(fast[rows], slow)


def test_confidence_weights_edge_patterns():
    source = np.array([[1, 1, 0, 0], [1, 0, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]])
    query = np.array([[0, 0, 0, 0], [0, 0, 0, 1], [1, 1, 1, 0]])
    w = confidence_weights(query, source)
    # the empty pattern is held by every row: 1 - column frequency
    np.testing.assert_allclose(w[0], [1 - 3 / 4, 1 - 1 / 4, 1 - 1 / 4, 1.0])
    # a pattern no source row holds gets 1 on its negatives
    assert w[1].tolist() == [1.0, 1.0, 1.0, 0.0]
    assert w[2].tolist() == [0.0, 0.0, 0.0, 1.0]
    np.testing.assert_array_equal(w, confidence_weights_reference(query, source))


def test_confidence_weights_beyond_64_classes():
    rng = np.random.default_rng(2)
    labels = (rng.random((400, 150)) < 0.05).astype(np.uint8)
    labels[:, 140] = rng.random(400) < 0.7
    np.testing.assert_array_equal(
        confidence_weights(labels, block=5000), confidence_weights_reference(labels)
    )


def test_folds_partition_the_rows_and_follow_the_quarter_scheme(coco_labels):
    folds = iterative_folds(coco_labels, n_folds=4, seed=0)
    parts = stratified_parts(coco_labels, 4, seed=0)
    n = len(coco_labels)
    tested = np.concatenate([test for _, test in folds])
    assert np.array_equal(np.sort(tested), np.arange(n)), "every row is tested exactly once"
    for k, (train, test) in enumerate(folds, start=1):
        assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == n
        assert np.array_equal(test, parts[4 - k]), "fold k tests on quarter 5 - k"
        others = [p for i, p in enumerate(parts) if i != 4 - k]
        assert np.array_equal(train, np.concatenate(others)), "train quarters in order"
        assert np.array_equal(fold_indices(parts, k)[0], train)


def test_test_folds_are_stratified_on_coco(coco_labels):
    rate = coco_labels.mean(axis=0)
    for _, test in iterative_folds(coco_labels, seed=0):
        assert np.abs(coco_labels[test].mean(axis=0) - rate).max() <= 0.01
        assert abs(len(test) - len(coco_labels) / 4) < 100


def test_folds_are_seeded(coco_labels):
    a = iterative_folds(coco_labels[:4000], seed=5)
    b = iterative_folds(coco_labels[:4000], seed=5)
    c = iterative_folds(coco_labels[:4000], seed=6)
    assert all(np.array_equal(x[1], y[1]) for x, y in zip(a, b, strict=True))
    assert any(not np.array_equal(x[1], y[1]) for x, y in zip(a, c, strict=True))


def test_kfold_scheme_allows_any_number_of_folds(coco_labels):
    folds = iterative_folds(coco_labels[:3000], n_folds=5, seed=0, scheme="kfold")
    assert len(folds) == 5
    assert np.array_equal(np.sort(np.concatenate([t for _, t in folds])), np.arange(3000))
    with pytest.raises(DataError, match="power of two"):
        iterative_folds(coco_labels[:3000], n_folds=5, seed=0)
