"""Numerical safety: extreme logits, probabilities of exactly 0 or 1, weights of exactly 0 or 1,
all-zero weights in a batch and classes without a positive keep losses and gradients finite,
through the loss functions, through ``model.fit`` and through a whole run; metrics are either
defined or name the classes that make them undefined."""

import json

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mlml_tf.errors import DataError
from mlml_tf.features.cache import build_feature_cache
from mlml_tf.files.layout import write_groundtruth
from mlml_tf.files.split import split
from mlml_tf.labels.weights import class_balance_weights, confidence_weights, ignore_missing_weights
from mlml_tf.losses.weighted import (
    EPSILON,
    ClassBalancedCrossentropy,
    WeightedBinaryCrossentropy,
    class_balanced_crossentropy,
    entry_weights,
    weighted_binary_crossentropy,
)
from mlml_tf.metrics.report import per_class_report, tune_thresholds
from mlml_tf.metrics.scores import evaluate
from mlml_tf.runs.outputs import write_run_outputs
from mlml_tf.runs.reading import read_run
from mlml_tf.settings import RunConfig
from mlml_tf.training.heads import build_head
from mlml_tf.training.runs import train_run

FEW = settings(max_examples=40, deadline=None, derandomize=True,
               suppress_health_check=[HealthCheck.too_slow])
EXTREMES = [-1e4, -100.0, -30.0, -17.0, -1e-3, 0.0, 1e-3, 17.0, 30.0, 100.0, 1e4]


def _softplus64(z):
    return np.logaddexp(0.0, np.asarray(z, dtype=np.float64))


def _loss_and_gradient(loss, y, z, w=None):
    z = tf.Variable(np.asarray(z, dtype=np.float32))
    with tf.GradientTape() as tape:
        value = loss(y, z) if w is None else loss(y, z, sample_weight=w)
    return value.numpy(), tape.gradient(value, z).numpy()


logits = hnp.arrays(np.float32, (4, 5), elements=st.one_of(
    st.sampled_from(EXTREMES), st.floats(-1e4, 1e4, width=32)))
labels = hnp.arrays(np.float32, (4, 5), elements=st.sampled_from([0.0, 1.0]))
weights = hnp.arrays(np.float32, (4, 5), elements=st.one_of(
    st.sampled_from([0.0, 1.0, 10.0]), st.floats(0, 10, width=32)))


@FEW
@given(y=labels, z=logits, w=weights)
def test_weighted_loss_from_logits_is_finite_and_exact_at_any_logit(y, z, w):
    per_entry, grad = _loss_and_gradient(
        lambda a, b: weighted_binary_crossentropy(a, b, from_logits=True), y, z)
    assert np.isfinite(per_entry).all() and (per_entry >= 0).all()
    assert np.isfinite(grad).all() and (np.abs(grad) <= 1).all()
    expected = y * _softplus64(-z) + (1 - y) * _softplus64(z)
    np.testing.assert_allclose(per_entry, expected, rtol=1e-6, atol=1e-6)
    # Keras' reduction with a (B, C) weight: the mean over B x C entries of W * entry loss.
    value, grad = _loss_and_gradient(WeightedBinaryCrossentropy(from_logits=True), y, z, w)
    assert np.isfinite(value) and np.isfinite(grad).all()
    np.testing.assert_allclose(value, np.mean(w * expected), rtol=1e-5, atol=1e-6)


@FEW
@given(y=labels, z=logits, p=hnp.arrays(np.float32, 5, elements=st.floats(1, 10, width=32)))
def test_class_balanced_ce_matches_tensorflow_at_extreme_logits(y, z, p):
    value, grad = _loss_and_gradient(ClassBalancedCrossentropy(p.tolist()), y, z)
    reference = tf.nn.weighted_cross_entropy_with_logits(y, z, pos_weight=p).numpy()
    assert np.isfinite(value) and np.isfinite(grad).all() and np.isfinite(reference).all()
    np.testing.assert_allclose(value, reference.mean(), rtol=1e-5, atol=1e-6)
    per_entry = class_balanced_crossentropy(y, z, p).numpy()
    np.testing.assert_allclose(per_entry, reference, rtol=1e-5, atol=1e-5)


def test_probabilities_of_exactly_0_and_1_are_clipped_as_the_original():
    y = np.array([[1, 0, 1, 0]], np.float32)
    p = np.array([[0.0, 1.0, 1.0, 0.0]], np.float32)
    per_entry, grad = _loss_and_gradient(
        lambda a, b: weighted_binary_crossentropy(a, b, from_logits=False), y, p)
    # In float32, as the original computed it: p is clipped to [1e-7, 1 - 1e-7] first.
    low, high = np.float32(EPSILON), np.float32(1) - np.float32(EPSILON)
    expected = [[-np.log(low), -np.log(1 - high), -np.log(high), -np.log(1 - low)]]
    np.testing.assert_allclose(per_entry, expected, rtol=1e-5)
    assert np.isfinite(grad).all()
    value, _ = _loss_and_gradient(WeightedBinaryCrossentropy(), y, p, np.ones_like(y))
    assert np.isfinite(value) and value > 0


@pytest.mark.parametrize("from_logits", [True, False])
def test_all_zero_weights_give_a_zero_loss_and_a_zero_gradient(from_logits):
    y = np.array([[1, 0, 1], [0, 0, 0]], np.float32)
    z = np.array([[1e4, -1e4, -1e4], [1e4, 0.0, -3.0]], np.float32)
    if not from_logits:
        z = np.array([[1.0, 0.0, 0.0], [1.0, 0.5, 0.0]], np.float32)
    value, grad = _loss_and_gradient(WeightedBinaryCrossentropy(from_logits=from_logits), y, z,
                                     np.zeros_like(y))
    assert value == 0.0 and (grad == 0).all()


def test_weights_of_a_fold_with_missing_classes_are_finite():
    # Class 2 has no positive in this fold, row 3 has no positive at all (every positive hidden).
    observed = np.array([[1, 1, 0, 0], [1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 0, 0]], np.uint8)
    hidden = np.zeros_like(observed, dtype=bool)
    hidden[3, 0] = True
    p = class_balance_weights(observed)
    assert p.tolist() == [1, 1, 10, 2]
    for negative in (np.ones(observed.shape, np.float32), ignore_missing_weights(hidden),
                     confidence_weights(observed)):
        w = entry_weights(observed, p, negative)
        assert np.isfinite(w).all() and (w >= 0).all()
    cb = confidence_weights(observed)
    assert ((cb >= 0) & (cb <= 1)).all() and cb[3].tolist() == [0.5, 0.5, 1.0, 0.75]
    with pytest.raises(DataError, match="not a finite weight"):
        entry_weights(observed, p, np.full(observed.shape, np.nan))


def _fit_and_check(model, x, y, w, loss, batch_size):
    model.compile(optimizer=keras.optimizers.Adadelta(learning_rate=1.0), loss=loss)
    history = model.fit(x, y, sample_weight=w, batch_size=batch_size, epochs=3, shuffle=False,
                        verbose=0)
    assert np.isfinite(history.history["loss"]).all(), history.history
    for variable in model.weights:
        assert np.isfinite(variable.numpy()).all(), variable.name
    return history.history["loss"]


def test_fit_with_saturated_logits_zero_weight_batches_and_empty_classes():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 6)).astype(np.float32)
    y = (rng.random((32, 4)) < 0.5).astype(np.float32)
    y[:, 2] = 0  # a class without a positive in the training rows
    w = entry_weights(y, class_balance_weights(y), confidence_weights(y))
    w[:8] = 0  # the whole first batch weighs nothing
    w[8:16, 1] = 1.0
    # Logits of +-1e4 and more: a dense layer with an enormous kernel.
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(
        4, kernel_initializer=keras.initializers.Constant(5e3))])
    assert np.abs(model.predict(x, verbose=0)).max() > 1e4
    _fit_and_check(model, x, y, w, WeightedBinaryCrossentropy(from_logits=True), 8)
    # The same through probabilities that saturate to exactly 0 and 1, as the original's loss.
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(
        4, activation="sigmoid", kernel_initializer=keras.initializers.Constant(5e3))])
    probabilities = model.predict(x, verbose=0)
    assert ((probabilities == 0) | (probabilities == 1)).any()
    _fit_and_check(model, x, y, w, WeightedBinaryCrossentropy(from_logits=False), 8)


def test_fit_of_the_paper_head_on_a_batch_that_weighs_nothing():
    x = np.random.default_rng(1).normal(size=(16, 2, 2, 3)).astype(np.float32) * 100
    y = np.zeros((16, 3), np.float32)
    w = np.zeros((16, 3), np.float32)
    model = build_head((2, 2, 3), 3, seed=0)
    before = [v.numpy().copy() for v in model.trainable_weights]
    losses = _fit_and_check(model, x, y, w, WeightedBinaryCrossentropy(from_logits=True), 8)
    assert losses == [0.0, 0.0, 0.0]
    after = [v.numpy() for v in model.trainable_weights]
    unchanged = [np.array_equal(a, b) for a, b in zip(before, after, strict=True)]
    assert all(unchanged), "no gradient, no update"


# ---------------------------------------------------------------------------------- metrics


def test_metrics_name_the_classes_that_make_them_undefined():
    y = np.array([[1, 0, 1, 0], [0, 0, 1, 1], [1, 0, 1, 0]])
    p = np.array([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0], [0.5, 0.0, 1.0, 0.0]])
    names = ["person", "dog", "cat", "tv"]
    m = evaluate(y, p, names)
    assert m["auc_undefined_classes"] == ["dog", "cat"]  # no positive; no negative
    for key in ("precision_micro", "recall_micro", "f1_micro", "roc_auc_micro",
                "roc_auc_macro", "roc_auc_weighted", "exact_match_accuracy", "hamming_loss"):
        assert m[key] is not None and np.isfinite(m[key]), key
    assert m["roc_auc_macro"] == 1.0  # person and tv only
    report = per_class_report(y, p, names)
    assert report.loc[["dog", "cat"], "auc_defined"].tolist() == [False, False]
    assert np.isnan(report.loc["dog", "true_positive_rate"])
    assert np.isnan(report.loc["cat", "true_negative_rate"])
    assert report.loc[["person", "tv"], "auc"].notna().all()
    every = evaluate(np.zeros((3, 2)), np.zeros((3, 2)), ["a", "b"])
    assert every["roc_auc_micro"] is None and every["roc_auc_macro"] is None
    assert every["auc_undefined_classes"] == ["a", "b"]
    assert every["f1_micro"] == 0.0 and every["exact_match_accuracy"] == 1.0
    np.testing.assert_array_equal(tune_thresholds(np.zeros((4, 2)), np.ones((4, 2))), [0.5, 0.5])
    broken = p.copy()
    broken[1, 0] = np.nan
    with pytest.raises(DataError, match=r"y_prob\[1, 0\] = nan is not a probability"):
        evaluate(y, broken, names)


def test_result_files_carry_undefined_metrics_as_null_and_name_the_classes(tmp_path):
    y = np.array([[1, 0], [1, 0], [1, 0]])
    p = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    write_run_outputs(tmp_path, y, p, ["person", "dog"], extra={"loss": float("nan")})
    document = json.loads((tmp_path / "metrics.json").read_text())
    assert document["metrics"]["roc_auc_micro"] is not None
    assert document["metrics"]["roc_auc_macro"] is None
    assert document["metrics"]["auc_undefined_classes"] == ["person", "dog"]
    assert document["extra"]["loss"] is None
    text = (tmp_path / "evaluation_extra.txt").read_text()
    assert "ROC-AUC undefined (no positive or no negative in the ground truth) for: person, dog" \
        in text and "Macro ROC-AUC: n/a" in text
    original = (tmp_path / "evaluation_results.txt").read_text().split("\n")
    assert original[1] == "Area Under the Curve (AUC) is: nan", "what float() reads"
    extra = pd.read_csv(tmp_path / "results_extra.csv", index_col=0)
    assert extra.loc[["person", "dog"], "auc_defined"].tolist() == [0, 0]
    report = pd.read_csv(tmp_path / "results_report.csv", index_col=0)
    assert report.loc[["person", "dog"], "AUC"].isna().all(), "an undefined AUC is left empty"
    assert read_run(tmp_path)["metrics"]["roc_auc_macro"] is None


# ---------------------------------------------------------------------------------- one run


def test_a_run_with_empty_classes_and_hidden_rows_stays_finite(tmp_path):
    rng = np.random.default_rng(5)
    n = 64
    y = (rng.random((n, 5)) < 0.4).astype(np.uint8)
    y[:, 3] = 0  # never positive anywhere
    y[:, 4] = 1  # always positive: AUC undefined, never a negative
    y[0, 4] = 0  # one negative only, so that it is not constant in training
    frame = pd.DataFrame(y, index=[str(i) for i in range(n)], columns=list("abcde"))
    write_groundtruth(tmp_path / "data", frame)
    split(tmp_path / "data", n_folds=2, ratios=[0.75], seed=0)
    x = (rng.normal(size=(n, 2, 2, 4)) * 1e3).astype(np.float32)  # large features
    cache = build_feature_cache(tmp_path / "cache", frame.index, lambda: iter([x]), lambda b: b,
                                {"backbone": "test"}, progress=False)
    for method in ("ce", "im-wce", "cb-wce"):
        run_dir = tmp_path / method
        config = RunConfig(method=method, ratio=0.75, fold=1, epochs=2, batch_size=8,
                           learning_rate=1.0)
        metrics = train_run(tmp_path / "data", cache, run_dir, config, verbose=0)
        log = pd.read_csv(run_dir / "training_log.csv")
        assert np.isfinite(log["loss"]).all()
        assert np.isfinite(np.loadtxt(run_dir / "predictions.out", delimiter=",")).all()
        assert "d" in metrics["auc_undefined_classes"]
        document = json.loads((run_dir / "metrics.json").read_text())
        assert document["metrics"]["auc_undefined_classes"] == metrics["auc_undefined_classes"]
        assert document["extra"]["pos_weight"][3] == 10.0
        for key, value in document["metrics"].items():
            if isinstance(value, float):
                assert np.isfinite(value), key
