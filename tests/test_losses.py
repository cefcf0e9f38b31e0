"""The losses equal the original's TF formulas (docs/original.md section 6), also through
compile/fit/save."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from mlml_tf.errors import DataError  # noqa: E402
from mlml_tf.losses.weighted import (  # noqa: E402
    ClassBalancedCrossentropy,
    WeightedBinaryCrossentropy,
    class_balanced_crossentropy,
    entry_weights,
    weighted_binary_crossentropy,
)


def original_loss(y, pred, pos_weight, neg_weight, from_logits):
    """The original's IM-/CB-WCE in numpy: mean over B x C of -[P y log p + w̄ (1-y) log(1-p)]."""
    y = np.asarray(y, np.float64)
    pred = np.asarray(pred, np.float64)
    p = 1.0 / (1.0 + np.exp(-pred)) if from_logits else pred
    # The original clipped float32 tensors: 1 - 1e-7 is 1 - 2**-23 there.
    p = np.clip(p.astype(np.float32), np.float32(1e-7), np.float32(1 - 1e-7)).astype(np.float64)
    return np.mean(-(pos_weight * y * np.log(p) + neg_weight * (1 - y) * np.log(1 - p)))


def random_batch(seed, b=16, c=7):
    rng = np.random.default_rng(seed)
    y = (rng.random((b, c)) < 0.3).astype(np.float32)
    logits = rng.normal(0, 3, (b, c)).astype(np.float32)
    pos = rng.integers(1, 11, c).astype(np.float32)
    neg = rng.random((b, c)).astype(np.float32)
    return y, logits, pos, neg


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("from_logits", [True, False])
def test_weighted_loss_equals_original_formula(seed, from_logits):
    y, logits, pos, neg = random_batch(seed)
    pred = logits if from_logits else tf.sigmoid(logits).numpy()
    loss = WeightedBinaryCrossentropy(from_logits=from_logits)
    value = loss(y, pred, sample_weight=entry_weights(y, pos, neg))
    expected = original_loss(y, pred, pos, neg, from_logits)
    assert float(value) == pytest.approx(expected, rel=1e-6, abs=1e-6)


def test_loss_function_returns_one_value_per_entry():
    y, logits, pos, neg = random_batch(3, b=5, c=4)
    per_entry = weighted_binary_crossentropy(y, logits, from_logits=True)
    assert tuple(per_entry.shape) == (5, 4)
    unreduced = WeightedBinaryCrossentropy(from_logits=True, reduction=None)(
        y, logits, sample_weight=entry_weights(y, pos, neg)
    )
    np.testing.assert_allclose(unreduced, per_entry * entry_weights(y, pos, neg), rtol=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_ce_equals_weighted_cross_entropy_with_logits(seed):
    y, logits, pos, _ = random_batch(seed)
    expected = tf.reduce_mean(
        tf.nn.weighted_cross_entropy_with_logits(labels=y, logits=logits, pos_weight=pos)
    )
    ce = ClassBalancedCrossentropy(pos)(y, logits)
    assert float(ce) == pytest.approx(float(expected), rel=1e-6)
    per_entry = class_balanced_crossentropy(y, logits, pos)
    assert float(tf.reduce_mean(per_entry)) == pytest.approx(float(expected), rel=1e-6)


def test_ce_is_the_weighted_loss_with_negatives_weighted_one():
    y, logits, pos, _ = random_batch(5)
    ce = ClassBalancedCrossentropy(pos)(y, logits)
    weighted = WeightedBinaryCrossentropy(from_logits=True)(
        y, logits, sample_weight=entry_weights(y, pos, 1.0)
    )
    assert float(ce) == pytest.approx(float(weighted), rel=1e-6)
    probs = tf.sigmoid(logits).numpy()
    ce_probs = ClassBalancedCrossentropy(pos, from_logits=False)(y, probs)
    assert float(ce_probs) == pytest.approx(original_loss(y, probs, pos, 1.0, False), rel=1e-6)


def test_finite_at_the_edges():
    y = np.array([[1, 0, 1, 0]], np.float32)
    probs = np.array([[0.0, 1.0, 1.0, 0.0]], np.float32)
    w = entry_weights(y, [10, 10, 1, 1], 1.0)
    value = WeightedBinaryCrossentropy()(y, probs, sample_weight=w)
    # Clipping caps each wrong certainty at -log(1e-7).
    assert float(value) == pytest.approx(original_loss(y, probs, w, w, False), rel=1e-6)
    assert np.isfinite(float(value))

    zero = WeightedBinaryCrossentropy()(y, probs, sample_weight=np.zeros_like(y))
    assert float(zero) == 0.0

    logits = np.array([[-100.0, 100.0, 100.0, -100.0]], np.float32)
    stable = WeightedBinaryCrossentropy(from_logits=True)(y, logits)
    assert float(stable) == pytest.approx(50.0, rel=1e-6)  # two entries of 100, two of 0
    ce = ClassBalancedCrossentropy([1.0] * 4)(y, logits)
    assert np.isfinite(float(ce))


def test_entry_weights_definition_and_broadcasting():
    y = np.array([[1, 0, 0], [0, 1, 1]])
    pos = np.array([10, 2, 1])
    neg = np.array([[0.5, 0.0, 1.0], [0.25, 0.75, 1.0]])
    w = entry_weights(y, pos, neg)
    assert w.dtype == np.float32
    np.testing.assert_array_equal(w, np.where(y == 1, pos, neg))
    np.testing.assert_array_equal(entry_weights(y, pos, 1.0), np.where(y == 1, pos, 1.0))
    as_tensor = entry_weights(tf.constant(y), pos, neg)
    assert tf.is_tensor(as_tensor)
    np.testing.assert_array_equal(as_tensor.numpy(), w)


def test_entry_weights_rejects_bad_weights():
    y = np.zeros((2, 3))
    with pytest.raises(DataError, match="pos_weight"):
        entry_weights(y, [1.0, 2.0], 1.0)
    with pytest.raises(DataError, match=r"neg_weight\[1, 2\]"):
        entry_weights(y, 1.0, np.array([[1, 1, 1], [1, 1, -1.0]]))
    with pytest.raises(DataError, match="pos_weight"):
        ClassBalancedCrossentropy([1.0, np.nan])


def tiny_data(n=50, c=5, d=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = (rng.random((n, c)) < 0.3).astype(np.float32)
    pos = rng.integers(1, 11, c).astype(np.float32)
    neg = (rng.random((n, c)) < 0.8).astype(np.float32)  # an IM-WCE style 0/1 mask
    return x, y, entry_weights(y, pos, neg), pos, neg


def tiny_model(c=5, d=6, activation=None):
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [keras.Input((d,)), keras.layers.Dense(c, activation=activation)], name="tiny"
    )


@pytest.mark.parametrize("from_logits", [True, False])
def test_compile_fit_evaluate_with_entry_weights(from_logits):
    x, y, w, pos, neg = tiny_data()
    model = tiny_model(activation=None if from_logits else "sigmoid")
    model.compile(optimizer="adadelta", loss=WeightedBinaryCrossentropy(from_logits=from_logits))
    # 50 rows in batches of 16: a short last batch must not bias the mean.
    data = tf.data.Dataset.from_tensor_slices((x, y, w)).batch(16)
    history = model.fit(data, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    loss = model.evaluate(data, verbose=0)
    expected = original_loss(y, model.predict(x, verbose=0), pos, neg, from_logits)
    assert loss == pytest.approx(expected, rel=1e-5)


def test_compile_with_ce(tmp_path):
    x, y, _, pos, _ = tiny_data()
    model = tiny_model()
    model.compile(optimizer="adadelta", loss=ClassBalancedCrossentropy(pos))
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    loss = model.evaluate(x, y, batch_size=16, verbose=0)
    expected = original_loss(y, model.predict(x, verbose=0), pos, 1.0, True)
    assert loss == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(
    "loss",
    [WeightedBinaryCrossentropy(from_logits=True), ClassBalancedCrossentropy([2.0, 1.0, 10.0])],
    ids=["weighted", "ce"],
)
def test_saved_model_keeps_its_loss(tmp_path, loss):
    x, y, w, _, _ = tiny_data(c=3)
    model = tiny_model(c=3)
    model.compile(optimizer="adadelta", loss=loss)
    model.fit(x, y, sample_weight=w, epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded.loss) is type(loss)
    assert loaded.loss.get_config() == loss.get_config()
    assert loaded.evaluate(x, y, sample_weight=w, verbose=0) == pytest.approx(
        model.evaluate(x, y, sample_weight=w, verbose=0), rel=1e-6
    )


def test_config_round_trip_and_registered_name():
    ce = ClassBalancedCrossentropy(np.array([1, 10]), from_logits=False, name="ce")
    assert ce.get_config()["pos_weight"] == [1.0, 10.0]
    again = ClassBalancedCrossentropy.from_config(ce.get_config())
    assert again.get_config() == ce.get_config()
    serialized = keras.losses.serialize(WeightedBinaryCrossentropy(from_logits=True))
    assert serialized["registered_name"] == "mlml_tf>WeightedBinaryCrossentropy"
    assert keras.losses.deserialize(serialized).from_logits is True
