"""The field's losses (docs/methods.md section 3) equal the authors' formulas: values, which factors
carry no gradient, CSL's selection, and the Keras reduction to the mean over B x C entries."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from mlml_tf.errors import DataError  # noqa: E402
from mlml_tf.losses.field import (  # noqa: E402
    AssumeNegative,
    AsymmetricLoss,
    BalancedCrossentropy,
    ExpectedPositiveRegularization,
    PartialSelectiveLoss,
    class_positive_rates,
)

EPS = 1e-5


def batch(seed, b=12, c=9, scale=2.0):
    rng = np.random.default_rng(seed)
    z = rng.normal(0, scale, (b, c)).astype(np.float32)
    y01 = (rng.random((b, c)) < 0.3).astype(np.float32)
    y3 = rng.choice([1.0, 0.0, -1.0], size=(b, c), p=[0.2, 0.3, 0.5]).astype(np.float32)
    return z, y01, y3, rng


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.asarray(z, np.float64)))


def asl_sum(y, z, gamma_pos=1.0, gamma_neg=4.0, clip=0.05, eps=1e-8):
    """The authors' ASL, written out: the sum over the batch, focusing factors as constants."""
    p = sigmoid(z)
    negative = np.minimum(1 - p + clip, 1) if clip > 0 else 1 - p
    loss = y * np.log(np.maximum(p, eps)) + (1 - y) * np.log(np.maximum(negative, eps))
    pt = p * y + negative * (1 - y)
    return -(loss * (1 - pt) ** (gamma_pos * y + gamma_neg * (1 - y))).sum()


def value_and_gradient(loss, y, x):
    v = tf.Variable(x)
    with tf.GradientTape() as tape:
        out = loss(y, v)
    return float(out), tape.gradient(out, v).numpy()


@pytest.mark.parametrize("seed, settings", [(0, {}), (1, {"gamma_pos": 0.0, "clip": 0.2}),
                                            (2, {"gamma_neg": 0.0, "gamma_pos": 0.0})])
def test_asl_is_the_authors_sum_over_b_times_c(seed, settings):
    z, y, _, _ = batch(seed)
    loss = AsymmetricLoss(**settings)
    assert float(loss(y, z)) * y.size == pytest.approx(asl_sum(y, z, **settings), rel=1e-5)


def test_asl_focusing_factors_carry_no_gradient():
    z, y, _, _ = batch(3)
    _, grad = value_and_gradient(AsymmetricLoss(gamma_pos=1, gamma_neg=4, clip=0.05), y, z)
    p = sigmoid(z)
    pm = np.maximum(p - 0.05, 0)
    # d/dz of -[y w+ log p + (1-y) w- log(1 - p_m)] with w+ = (1-p), w- = p_m^4 held constant.
    d_neg = np.where(p > 0.05, p * (1 - p) / (1 - pm), 0.0)
    expected = -(y * (1 - p) * (1 - p) - (1 - y) * pm ** 4 * d_neg) / y.size
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-7)


def csl_sum(y, z, mode, gamma_pos=0.0, gamma_neg=1.0, gamma_unann=2.0, alpha_pos=1.0,
            alpha_neg=1.0, alpha_unann=1.0, clip=0.0, likelihood_topk=5, prior=None,
            prior_threshold=0.05):
    p = sigmoid(z)
    pos, neg, unk = (y == 1), (y == 0), (y == -1)
    negative = np.minimum(1 - p + clip, 1) if clip > 0 else 1 - p
    w = np.ones_like(p)
    if mode == "ignore":
        w[unk] = 0
    if mode == "selective":
        if prior is not None and prior_threshold:
            w[:, np.asarray(prior) > prior_threshold] = 0
            w[~unk] = 1
        flat = np.flatnonzero(unk.ravel())
        chosen = flat[np.argsort(negative.ravel()[flat], kind="stable")[: likelihood_topk * len(y)]]
        w.ravel()[chosen] = 0
    bce = (alpha_pos * pos * np.log(np.maximum(p, 1e-8))
           + (alpha_neg * neg + alpha_unann * unk) * np.log(np.maximum(negative, 1e-8)))
    focus = (1 - p * pos - negative * (neg | unk)) ** (gamma_pos * pos + gamma_neg * neg
                                                       + gamma_unann * unk)
    return -(bce * focus * w).sum()


@pytest.mark.parametrize("mode", ["negative", "ignore", "selective"])
@pytest.mark.parametrize("seed", [4, 5])
def test_csl_is_the_authors_sum_in_each_mode(mode, seed):
    z, _, y, rng = batch(seed, b=20, c=11)
    settings = {"gamma_unann": 4.0, "clip": 0.05, "likelihood_topk": 2,
                "prior": rng.random(11), "prior_threshold": 0.5}
    loss = PartialSelectiveLoss(mode, **settings)
    assert float(loss(y, z)) * y.size == pytest.approx(csl_sum(y, z, mode, **settings),
                                                       rel=1e-5)


def test_csl_selects_the_top_k_unknown_entries_of_the_batch_prior_removed_ones_counted():
    # Unknown entries only, so that every entry's weight shows in its own loss.
    z = np.array([[3.0, 2.0, -1.0], [1.0, 0.5, 2.5]], np.float32)
    y = -np.ones_like(z)
    values = PartialSelectiveLoss("selective", likelihood_topk=1, prior=[0.9, 0.0, 0.0],
                                  prior_threshold=0.5, reduction=None)(y, z).numpy()
    # K = 1 x B = 2 entries of highest p: 3.0 (already removed by the prior) and 2.5.
    assert (values == 0).tolist() == [[True, False, False], [True, False, True]]
    alone = PartialSelectiveLoss("selective", likelihood_topk=1, reduction=None)(y, z).numpy()
    assert (alone == 0).tolist() == [[True, False, False], [False, False, True]]


def cole_mean(y, p, kind, ls=0.1, k=None):
    """Cole et al.'s batch loss on labels 1 (positive) / -1 (unknown): the mean over B x C."""
    pos = y == 1
    lp, ln = -np.log(p + EPS), -np.log(1 - p + EPS)
    if kind == "an":
        m = np.where(pos, lp, ln)
    elif kind == "an_ls":
        m = np.where(pos, (1 - ls) * lp + ls * ln, (1 - ls) * ln + ls * lp)
    elif kind == "wan":
        m = np.where(pos, lp, ln / (y.shape[1] - 1))
    else:
        m = np.where(pos, lp, 0.0)
    out = m.sum() / m.size
    if kind == "epr":
        out += (p.sum(1).mean() - k) ** 2 / y.shape[1] ** 2
    return out


@pytest.mark.parametrize("kind, loss", [
    ("an", AssumeNegative()), ("an_ls", AssumeNegative(label_smoothing=0.1)),
    ("wan", AssumeNegative(weak=True)), ("epr", ExpectedPositiveRegularization(2.5)),
])
def test_single_positive_baselines_are_the_authors_mean(kind, loss):
    z, _, _, rng = batch(6, b=16, c=10)
    y = np.where(rng.random(z.shape) < 0.15, 1.0, -1.0).astype(np.float32)
    p = sigmoid(z).astype(np.float32)
    assert float(loss(y, p)) == pytest.approx(cole_mean(y, p.astype(np.float64), kind, k=2.5),
                                              rel=1e-5)


def test_annotated_negatives_are_certain_for_wan_and_epr():
    p = np.full((2, 3), 0.4, np.float32)
    y = np.array([[1, 0, -1], [0, -1, -1]], np.float32)
    wan = AssumeNegative(weak=True, reduction=None)(y, p).numpy()
    assert wan[0, 1] == pytest.approx(-np.log(0.6 + EPS), rel=1e-6)
    assert wan[0, 2] == pytest.approx(-np.log(0.6 + EPS) / 2, rel=1e-6)
    epr = ExpectedPositiveRegularization(1.0, reduction=None)(y, p).numpy()
    r = (1.2 - 1.0) ** 2 / 9
    assert epr[1, 2] == pytest.approx(r, rel=1e-5) and epr[0, 1] == pytest.approx(
        -np.log(0.6 + EPS) + r, rel=1e-5)


@pytest.mark.parametrize("loss", [
    AsymmetricLoss(gamma_pos=0.0), PartialSelectiveLoss("selective", prior=[0.1] * 9),
    AssumeNegative(label_smoothing=0.1, weak=True), ExpectedPositiveRegularization(2.0),
    BalancedCrossentropy(np.linspace(0.05, 0.6, 9), max_weight=5.0, unknown_weight=0.5),
])
def test_field_losses_weigh_entries_reduce_to_the_mean_and_save(loss, tmp_path):
    z, y01, y3, rng = batch(7)
    y = y01 if isinstance(loss, AsymmetricLoss) else y3
    on_logits = isinstance(loss, AsymmetricLoss | PartialSelectiveLoss | BalancedCrossentropy)
    x = z if on_logits else sigmoid(z).astype(np.float32)
    w = rng.random(z.shape).astype(np.float32)
    per_entry = type(loss).from_config({**loss.get_config(), "reduction": None})(y, x).numpy()
    assert per_entry.shape == z.shape
    assert float(loss(y, x)) == pytest.approx(per_entry.mean(), rel=1e-6)
    assert float(loss(y, x, sample_weight=w)) == pytest.approx((w * per_entry).mean(), rel=1e-5)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert float(again(y, x)) == float(loss(y, x))
    # Finite values and gradients at saturated inputs: logits of +-1e4, probabilities 0 and 1.
    sign = np.where(rng.random(z.shape) < 0.5, 1.0, -1.0)
    extreme = (1e4 * sign if on_logits else (sign + 1) / 2).astype(np.float32)
    value, grad = value_and_gradient(loss, y, extreme)
    assert np.isfinite(value) and np.isfinite(grad).all()


def test_balanced_crossentropy_weighs_each_class_against_its_share_of_positives():
    # Two classes, rates 0.1 and 0.5: positives weigh min(1 / (2 pi), 10), negatives
    # min(1 / (2 (1 - pi)), 10), unknown entries as negatives times unknown_weight.
    y = np.array([[1.0, 0.0], [0.0, -1.0], [-1.0, 1.0]], np.float32)
    z = np.array([[0.5, -1.0], [2.0, 0.3], [-0.7, 1.5]], np.float32)
    loss = BalancedCrossentropy([0.1, 0.5], max_weight=4.0, unknown_weight=0.25,
                                reduction=None)
    softplus = np.log1p(np.exp(z))
    softplus_neg = np.log1p(np.exp(-z))
    w_pos, w_neg = np.array([4.0, 1.0]), np.array([1 / 1.8, 1.0])
    expected = ((y == 1) * w_pos * softplus_neg
                + ((y == 0) + 0.25 * (y == -1)) * w_neg * softplus)
    np.testing.assert_allclose(loss(y, z).numpy(), expected, rtol=1e-6)
    # The rates it is meant to take: each class's share of positives in its loss.
    labels = np.array([[1, 0], [0, -1], [-1, 1], [0, 0]])
    np.testing.assert_allclose(class_positive_rates(labels, unknown_weight=0.25),
                               [1 / 3.25, 1 / 3.25], rtol=1e-12)
    with pytest.raises(DataError, match="positive_rate"):
        BalancedCrossentropy([0.0, 0.5])


def test_bad_loss_arguments_are_named():
    with pytest.raises(DataError, match="mode must be one of"):
        PartialSelectiveLoss("select")
    with pytest.raises(DataError, match="gamma_neg"):
        AsymmetricLoss(gamma_neg=-1)
    with pytest.raises(DataError, match="likelihood_topk"):
        PartialSelectiveLoss("selective", likelihood_topk=1.5)
    with pytest.raises(DataError, match="prior"):
        PartialSelectiveLoss("selective", prior=[0.1, float("nan")])
    with pytest.raises(DataError, match="label_smoothing"):
        AssumeNegative(label_smoothing=1.0)
    with pytest.raises(DataError, match="expected_positives"):
        ExpectedPositiveRegularization(-1.0)



def test_heads_side_by_side_each_get_the_loss_of_their_run_alone():
    from mlml_tf.losses.objectives import LossObjective
    from mlml_tf.losses.weighted import WeightedBinaryCrossentropy
    from mlml_tf.training.heads import build_heads
    from mlml_tf.training.trainer import HeadTrainer, TrainingRows, _groups

    rng = np.random.default_rng(3)
    per_head = [(WeightedBinaryCrossentropy(from_logits=True), False),
                (WeightedBinaryCrossentropy(from_logits=True), False),
                (AsymmetricLoss(), False), (AsymmetricLoss(gamma_neg=2), False),
                (PartialSelectiveLoss("selective", prior=[0.5] * 6), False),
                (AssumeNegative(weak=True), True), (AssumeNegative(weak=True), True),
                (ExpectedPositiveRegularization(1.5), True)]
    # Equal entry-wise losses next to each other share one call; CSL and EPR read the batch.
    objectives = [LossObjective(loss, on_probabilities) for loss, on_probabilities in per_head]
    assert [h for h, _ in _groups(objectives)] == [[0, 1], [2], [3], [4], [5, 6], [7]]
    H = len(per_head)
    labels = rng.choice([1.0, 0.0, -1.0], size=(12, H, 6)).astype(np.float32)
    labels[:, :4] = labels[:, :4] == 1  # the paper's methods and ASL read 0/1 targets
    weights = rng.random((12, H, 6)).astype(np.float32)
    trainer = HeadTrainer(build_heads((2, 2, 3), 6, n_heads=H, head="gap"),
                          TrainingRows(labels, weights), objectives)
    outputs = tf.constant(rng.normal(0, 2, (12, H, 6)), tf.float32)
    got = trainer.head_loss(tf.constant(labels), outputs, tf.constant(weights))
    for h, (loss, on_probabilities) in enumerate(per_head):
        predicted = tf.sigmoid(outputs[:, h]) if on_probabilities else outputs[:, h]
        alone = float(loss(labels[:, h], predicted, sample_weight=weights[:, h]))
        assert float(got[h]) == pytest.approx(alone, rel=1e-6), h
