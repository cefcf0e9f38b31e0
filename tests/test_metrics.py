"""Metrics of docs/original.md section 7: scikit-learn's numbers, undefined AUCs named, thresholds
tuned for F1."""

import warnings

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    cohen_kappa_score,
    f1_score,
    hamming_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from mlml_tf import DataError
from mlml_tf.metrics.report import REPORT_COLUMNS, per_class_report, tune_thresholds
from mlml_tf.metrics.scores import (
    average_precisions,
    evaluate,
    faithful_truncation,
    mean_average_precision,
)


def random_predictions(seed, n=300, c=7):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < rng.uniform(0.1, 0.6, c)).astype(int)
    # Scores correlated with the labels, rounded so that ties and exact thresholds occur.
    p = np.clip(np.round(0.35 * y + 0.65 * rng.random((n, c)), 2), 0, 1)
    return y, p


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_evaluate_matches_scikit_learn_on_random_data(seed):
    y, p = random_predictions(seed)
    pred = (p > 0.5).astype(int)
    m = evaluate(y, p)
    assert m["precision_micro"] == pytest.approx(precision_score(y, pred, average="micro"))
    assert m["recall_micro"] == pytest.approx(recall_score(y, pred, average="micro"))
    assert m["f1_micro"] == pytest.approx(f1_score(y, pred, average="micro"))
    for average in ("micro", "macro", "weighted"):
        assert m[f"roc_auc_{average}"] == pytest.approx(roc_auc_score(y, p, average=average))
    assert m["exact_match_accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["hamming_loss"] == pytest.approx(hamming_loss(y, pred))
    assert m["auc_undefined_classes"] == []
    assert m["true_positives"] == int((y & pred).sum())
    assert m["n_positive_labels"] == int(y.sum())
    assert m["true_positives"] + m["false_positives"] + m["false_negatives"] \
        + m["true_negatives"] == y.size


def test_evaluate_hand_computed_tiny_case():
    y = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
    p = np.array([[0.9, 0.2, 0.5], [0.6, 0.7, 0.1], [0.4, 0.8, 0.3], [0.2, 0.1, 0.95]])
    # Positive iff strictly above 0.5: 0.5 itself is negative.
    # Predictions: [[1,0,0],[1,1,0],[0,1,0],[0,0,1]] -> TP 4, FP 1, FN 2, TN 5.
    m = evaluate(y, p, class_names=["a", "b", "c"])
    assert (m["true_positives"], m["false_positives"], m["false_negatives"],
            m["true_negatives"]) == (4, 1, 2, 5)
    assert m["precision_micro"] == pytest.approx(4 / 5)
    assert m["recall_micro"] == pytest.approx(4 / 6)
    assert m["f1_micro"] == pytest.approx(8 / 11)
    assert m["hamming_loss"] == pytest.approx(3 / 12)
    assert m["exact_match_accuracy"] == pytest.approx(1 / 4)  # only row 4 is exact
    # Class a: positives score 0.9, 0.4; negatives 0.6, 0.2 -> 3 of 4 pairs ordered: 0.75.
    # Classes b and c separate perfectly: 1.0.
    assert m["roc_auc_macro"] == pytest.approx((0.75 + 1 + 1) / 3)
    assert m["threshold"] == 0.5


def test_class_without_positive_is_named_not_crashing():
    rng = np.random.default_rng(3)
    y = (rng.random((50, 4)) < 0.4).astype(int)
    y[:, 1] = 0  # no positive
    y[:, 3] = 1  # no negative
    p = rng.random((50, 4))
    p[:5, 0] = [0.0, 1.0, 0.0, 1.0, 1.0]  # exact 0 and 1 are fine
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = evaluate(y, p, class_names=["cat", "dog", "cow", "emu"])
        report = per_class_report(y, p, ["cat", "dog", "cow", "emu"])
    assert m["auc_undefined_classes"] == ["dog", "emu"]
    defined = [0, 2]
    assert m["roc_auc_macro"] == pytest.approx(roc_auc_score(y[:, defined], p[:, defined]))
    assert m["roc_auc_weighted"] == pytest.approx(
        roc_auc_score(y[:, defined], p[:, defined], average="weighted"))
    assert np.isfinite(m["roc_auc_micro"])
    assert report["auc_defined"].tolist() == [True, False, True, False]
    assert np.isnan(report.loc["dog", "auc"]) and np.isnan(report.loc["dog", "true_positive_rate"])
    assert np.isnan(report.loc["emu", "true_negative_rate"])
    assert report.loc["dog", "recall"] == 0.0


def test_no_defined_auc_at_all_gives_none():
    y = np.zeros((6, 2), dtype=int)
    m = evaluate(y, np.full((6, 2), 0.3))
    assert m["roc_auc_micro"] is None and m["roc_auc_macro"] is None
    assert m["roc_auc_weighted"] is None
    assert m["auc_undefined_classes"] == ["0", "1"]
    assert m["f1_micro"] == 0.0 and m["exact_match_accuracy"] == 1.0


def test_per_class_report_matches_scikit_learn():
    y, p = random_predictions(4)
    names = [f"c{i}" for i in range(y.shape[1])]
    thresholds = np.linspace(0.3, 0.7, y.shape[1])
    report = per_class_report(y, p, names, thresholds)
    assert list(report.columns) == list(REPORT_COLUMNS)
    assert list(report.index) == names
    pred = (p > thresholds).astype(int)
    for j, name in enumerate(names):
        row = report.loc[name]
        assert row["positive_rate"] == pytest.approx(y[:, j].mean())
        assert row["accuracy"] == pytest.approx(accuracy_score(y[:, j], pred[:, j]))
        assert row["true_positive_rate"] == pytest.approx(recall_score(y[:, j], pred[:, j]))
        assert row["true_negative_rate"] == pytest.approx(
            recall_score(1 - y[:, j], 1 - pred[:, j]))
        assert row["auc"] == pytest.approx(roc_auc_score(y[:, j], p[:, j]))
        assert row["precision"] == pytest.approx(precision_score(y[:, j], pred[:, j]))
        assert row["recall"] == pytest.approx(recall_score(y[:, j], pred[:, j]))
        assert row["f1"] == pytest.approx(f1_score(y[:, j], pred[:, j]))
        assert row["kappa"] == pytest.approx(cohen_kappa_score(y[:, j], pred[:, j]))
        assert row["support"] == y[:, j].sum()
        assert row["true_positives"] == ((y[:, j] == 1) & (pred[:, j] == 1)).sum()
        assert row["threshold"] == pytest.approx(thresholds[j])


def test_per_class_thresholds_in_evaluate():
    y, p = random_predictions(5)
    t = np.linspace(0.2, 0.8, y.shape[1])
    m = evaluate(y, p, threshold=t)
    assert m["f1_micro"] == pytest.approx(f1_score(y, (p > t).astype(int), average="micro"))
    assert m["threshold"] == pytest.approx(t.tolist())


def test_tune_thresholds_finds_a_planted_threshold():
    rng = np.random.default_rng(6)
    n, planted = 400, np.array([0.23, 0.5, 0.71, 0.88])
    y = (rng.random((n, 4)) < 0.3).astype(int)
    # Positives score just above the planted threshold, negatives below: F1 = 1 only for the
    # grid values in [max negative, min positive).
    p = np.where(y == 1, planted + rng.uniform(0.005, 0.1, (n, 4)),
                 planted - rng.uniform(0.0, 0.2, (n, 4)))
    p = np.clip(p, 0, 1)
    t = tune_thresholds(y, p)
    assert ((p > t) == y.astype(bool)).all()
    # Closest to 0.5 among the perfect ones: the top of the perfect range (below 0.5) or its
    # bottom (above 0.5); 0.5 itself when it separates.
    assert t == pytest.approx([0.23, 0.5, 0.71, 0.88], abs=0.0051)


def test_tune_thresholds_equals_brute_force_with_scikit_learn():
    y, p = random_predictions(7, n=120, c=5)
    grid = np.arange(0, 1, 0.01)
    t = tune_thresholds(y, p, grid)
    for j in range(y.shape[1]):
        f1 = np.array([f1_score(y[:, j], p[:, j] > g, zero_division=0) for g in grid])
        best = np.flatnonzero(f1 == f1.max())
        expected = grid[best[np.argmin(np.abs(grid[best] - 0.5))]]
        assert t[j] == expected


def test_tune_thresholds_flat_f1_keeps_half():
    y = np.zeros((10, 1), dtype=int)
    assert tune_thresholds(y, np.linspace(0, 1, 10)[:, None])[0] == pytest.approx(0.5)


@pytest.mark.parametrize("n", [64, 65, 95, 3])
def test_faithful_truncation_zeroes_n_mod_32_trailing_rows(n):
    y = np.ones((n, 3), dtype=int)
    p = np.full((n, 3), 0.9)
    t, q = faithful_truncation(y, p)
    zero_rows = np.flatnonzero((t.sum(axis=1) == 0) & (q.sum(axis=1) == 0))
    assert zero_rows.tolist() == list(range(n - n % 32, n))
    assert (t[: n - n % 32] == 1).all() and (q[: n - n % 32] == 0.9).all()
    assert (y == 1).all()  # inputs untouched
    m = evaluate(y, p, faithful=True)
    assert m["n_samples"] == n and m["true_negatives"] == 3 * (n % 32)


def test_bad_input_raises_data_error():
    y = np.zeros((4, 2), dtype=int)
    with pytest.raises(DataError, match="shape"):
        evaluate(y, np.zeros((4, 3)))
    with pytest.raises(DataError, match=r"y_prob\[1, 0\]"):
        evaluate(y, np.array([[0, 0], [1.5, 0], [0, 0], [0, 0]]))
    with pytest.raises(DataError, match="not 0 or 1"):
        evaluate(y + 2, np.zeros((4, 2)))
    with pytest.raises(DataError, match="threshold"):
        evaluate(y, np.zeros((4, 2)), threshold=[0.5, 0.5, 0.5])
    with pytest.raises(DataError, match="class names"):
        evaluate(y, np.zeros((4, 2)), class_names=["a"])
    with pytest.raises(DataError, match="no rows"):
        evaluate(np.zeros((0, 2)), np.zeros((0, 2)))

def test_map_is_the_mean_of_scikit_learns_average_precision_over_classes_x100(coco_reference):
    y = coco_reference.drop(columns="fold").to_numpy()[:2000, :20]
    rng = np.random.default_rng(0)
    p = np.clip(0.6 * y + rng.random(y.shape) * 0.7, 0, 1)
    expected = 100 * average_precision_score(y, p, average="macro")
    assert mean_average_precision(y, p) == pytest.approx(expected, rel=1e-12)
    assert evaluate(y, p)["map"] == pytest.approx(expected, rel=1e-12)
    report = per_class_report(y, p)
    np.testing.assert_allclose(report["average_precision"],
                               average_precision_score(y, p, average=None))


def test_partial_map_leaves_unknown_entries_out_of_their_class_ranking():
    y, p = random_predictions(3)
    partial = y.copy()
    rng = np.random.default_rng(4)
    partial[rng.random(y.shape) < 0.3] = -1
    ap = average_precisions(partial, p)
    for c in range(y.shape[1]):
        known = partial[:, c] != -1
        assert ap[c] == pytest.approx(average_precision_score(y[known, c], p[known, c]))
    assert mean_average_precision(partial, p) == pytest.approx(100 * ap.mean())


def test_a_class_without_positive_is_named_and_left_out_of_the_map():
    y, p = random_predictions(5)
    y[:, 2] = 0
    y[:, 4] = np.where(y[:, 4] == 1, -1, y[:, 4])  # its positives unknown: none left
    ap = average_precisions(y, p)
    assert np.isnan(ap[[2, 4]]).all() and np.isfinite(np.delete(ap, [2, 4])).all()
    assert mean_average_precision(y, p) == pytest.approx(100 * np.delete(ap, [2, 4]).mean())
    names = list("abcdefg")
    metrics = evaluate(np.where(y == -1, 0, y), p, names)
    assert metrics["map_undefined_classes"] == ["c", "e"]
    assert mean_average_precision(np.zeros((3, 2)), np.full((3, 2), 0.5)) is None


def test_map_refuses_labels_other_than_1_0_and_unknown():
    y, p = random_predictions(6)
    y[7, 3] = 2
    with pytest.raises(DataError, match=r"y_true\[7, 3\] = 2 is not 1, 0 or -1"):
        mean_average_precision(y, p)
    with pytest.raises(DataError, match="shape"):
        mean_average_precision(y[:, :3], p)
