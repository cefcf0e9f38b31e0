"""Methods that revise their labels while they train (docs/methods.md section 3): ROLE, Large Loss
Matters and PL-Shrink, as their papers state them, and their state across epochs and resumes."""

import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures import feature_cache, learnable_features, split_folder, top_classes

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from mlml_tf.errors import DataError  # noqa: E402
from mlml_tf.files.split import split_protocol  # noqa: E402
from mlml_tf.losses.field import balanced_crossentropy  # noqa: E402
from mlml_tf.losses.rules import (  # noqa: E402
    large_loss_flips,
    large_loss_matters,
    pseudo_labels,
    role_initial_logits,
    role_loss,
)
from mlml_tf.settings import RunConfig  # noqa: E402
from mlml_tf.training.runs import train_run  # noqa: E402

EPS = 1e-5


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z.astype(np.float64)))


def _bce(target, z):
    z = np.asarray(z, np.float64)
    return np.maximum(z, 0) - z * target + np.log1p(np.exp(-np.abs(z)))


def _close(got, want, z):
    """Equal to float32 rounding: the losses are rounded as the authors' PyTorch rounds them,
    (1 - t) z - log_sigmoid(z), which cancels to within a unit in the last place of z."""
    z = np.asarray(z, np.float64)
    assert (np.abs(got - want) <= 1e-5 * np.abs(want) + 2.4e-7 * (1 + np.abs(z))).all()


# ------------------------------------------------------------------------------------- ROLE


def test_role_loss_equals_its_formula_on_a_batch():
    rng = np.random.default_rng(0)
    y = np.where(rng.random((9, 7)) < 0.25, 1.0, -1.0)
    y[0, :2] = 0.0  # annotated negatives: certain negatives of both the classifier and estimator
    p, e = _sigmoid(rng.normal(0, 2, (9, 7))), _sigmoid(rng.normal(0, 2, (9, 7)))
    k = 2.5

    def nl(x):
        return -np.log(x + EPS)

    def reg(x):
        return (x.sum(1).mean() - k) ** 2 / 7 ** 2

    main = (0.5 * ((y == 1) * (nl(p) + nl(e)) + (y == 0) * (nl(1 - p) + nl(1 - e)))
            + 0.5 * (e * nl(p) + (1 - e) * nl(1 - p) + p * nl(e) + (1 - p) * nl(1 - e)))
    want = main.sum() / y.size + 0.5 * (reg(p) + reg(e))
    got = float(tf.reduce_mean(role_loss(y, p.astype(np.float32), e.astype(np.float32), k)))
    assert got == pytest.approx(want, rel=1e-5)


def test_role_gradients_reach_each_side_only_through_the_other_held_constant():
    rng = np.random.default_rng(1)
    y = np.where(rng.random((5, 4)) < 0.3, 1.0, -1.0).astype(np.float32)
    z = tf.Variable(rng.normal(size=(5, 4)).astype(np.float32))
    g = tf.Variable(rng.normal(size=(5, 4)).astype(np.float32))
    with tf.GradientTape(persistent=True) as tape:
        p, e = tf.sigmoid(z), tf.sigmoid(g)
        cross_only = tf.reduce_mean(role_loss(-np.ones_like(y), p, e, 0.0)) - tf.reduce_mean(
            role_loss(-np.ones_like(y), p, tf.stop_gradient(e), 0.0))
    # The estimator's part of the loss does not move the classifier, and the other way round.
    assert np.abs(tape.gradient(cross_only, z).numpy()).max() < 1e-7
    assert np.abs(tape.gradient(cross_only, g).numpy()).max() > 1e-3


def test_role_estimator_starts_as_the_authors_set_it():
    observed = np.array([[1, -1, 0], [-1, -1, 1]] * 50, dtype=np.int8)
    logits = role_initial_logits(observed, seed=3)
    assert np.allclose(_sigmoid(logits[observed == 1]), 0.995)
    assert np.allclose(_sigmoid(logits[observed == 0]), 0.005)
    unknown = _sigmoid(logits[observed == -1])
    assert unknown.min() > 0.4 and unknown.max() < 0.6 and unknown.std() > 0.05
    assert np.array_equal(logits, role_initial_logits(observed, seed=3))


# ------------------------------------------------------------------------ Large Loss Matters


def test_ll_r_zeroes_exactly_the_k_largest_unknown_losses():
    rng = np.random.default_rng(2)
    y = rng.choice([1.0, 0.0, -1.0], size=(16, 10), p=[0.2, 0.2, 0.6])
    z = rng.normal(0, 3, (16, 10)).astype(np.float32)
    for rate in (0.004, 0.05, 0.3):
        got = np.asarray(large_loss_matters(y, z, rate, "rejection"))
        loss = _bce((y == 1).astype(float), z)
        # The authors' k: from their rate of clean entries, 1 - rate (0.05 gives 9 of 160).
        k = math.ceil(y.size * (1 - (1 - rate)))
        unknown = np.flatnonzero(y.ravel() == -1)
        largest = unknown[np.argsort(-loss.ravel()[unknown])[:k]]
        plain = np.asarray(large_loss_matters(y, z, 0.0)).ravel()
        zeroed = np.flatnonzero((got.ravel() == 0) & (plain != 0))
        assert set(zeroed) == set(largest) and len(largest) == k, rate
        keep = np.setdiff1d(np.arange(y.size), largest)
        _close(got.ravel()[keep], loss.ravel()[keep], z.ravel()[keep])
    # The first epoch (rate 0) changes nothing.
    _close(np.asarray(large_loss_matters(y, z, 0.0)), _bce(y == 1, z), z)


def test_ll_ct_corrects_the_same_entries_and_ll_cp_flips_those_strictly_above():
    rng = np.random.default_rng(4)
    y = rng.choice([1.0, 0.0, -1.0], size=(8, 6), p=[0.2, 0.2, 0.6])
    z = np.round(rng.normal(0, 2, (8, 6))).astype(np.float32)  # ties at the threshold
    rate = 0.1
    plain = np.asarray(large_loss_matters(y, z, 0.0))
    rejected = (np.asarray(large_loss_matters(y, z, rate, "rejection")) == 0) & (plain != 0)
    corrected = np.asarray(large_loss_matters(y, z, rate, "correction"))
    _close(corrected[rejected], _bce(1.0, z[rejected]), z[rejected])
    flips = np.asarray(large_loss_flips(y, z, rate))
    loss = np.where(y == -1, _bce((y == 1).astype(float), z), 0)
    threshold = np.sort(loss.ravel())[::-1][math.ceil(y.size * (1 - (1 - rate))) - 1]
    np.testing.assert_array_equal(flips, (y == -1) & (loss > threshold * (1 + 1e-6)))
    assert flips.sum() < rejected.sum(), "ties at the threshold are corrected, never flipped"
    with pytest.raises(DataError, match="mode must be one of rejection, correction"):
        large_loss_matters(y, z, rate, "flip")


# ------------------------------------------------------------------------------ PL-Shrink


def test_pseudo_labels_only_ever_touch_unknown_entries():
    rng = np.random.default_rng(5)
    y = rng.choice([1.0, 0.0, -1.0], size=(50, 8))
    p = rng.random((50, 8)).astype(np.float32)
    got = np.asarray(pseudo_labels(y, p, 0.8, 0.1))
    known = y != -1
    np.testing.assert_array_equal(got[known], y[known])
    unknown = ~known
    np.testing.assert_array_equal(got[unknown & (p >= 0.8)], 1.0)
    np.testing.assert_array_equal(got[unknown & (p <= 0.1)], 0.0)
    np.testing.assert_array_equal(got[unknown & (p > 0.1) & (p < 0.8)], -1.0)


def test_balanced_crossentropy_weighs_each_class_against_its_imbalance():
    y = np.array([[1.0, 0.0], [0.0, -1.0]])
    z = np.array([[0.5, -0.5], [1.0, 2.0]], np.float32)
    rate = np.array([0.1, 0.8])
    got = np.asarray(balanced_crossentropy(y, z, rate, max_weight=10.0, unknown_weight=0.5))
    want = np.array([[5.0 * _bce(1, 0.5), 2.5 * _bce(0, -0.5)],
                     [0.5 / 0.9 * _bce(0, 1.0), 0.5 * 2.5 * _bce(0, 2.0)]])
    np.testing.assert_allclose(got, want, rtol=1e-5)


# ------------------------------------------------------------------- trained, and resumed


N_ROWS, N_CLASSES, FEATURES = 192, 8, (2, 2, 8)


@pytest.fixture(scope="module")
def data_and_cache(tmp_path_factory, coco_reference):
    root = tmp_path_factory.mktemp("revising")
    labels = top_classes(coco_reference, N_ROWS, N_CLASSES)
    split_protocol(split_folder(root, labels, ratios=[0.5], seed=0), "single-positive", seed=0)
    cache = feature_cache(root / "cache", labels.index,
                          learnable_features(labels.to_numpy(), FEATURES))
    return root, cache


class Killed(Exception):
    pass


class KillAfter(keras.callbacks.Callback):
    """Raises at the end of epoch ``epoch`` (0-based), after the checkpoint of that epoch."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise Killed(epoch)


class StateLog(keras.callbacks.Callback):
    """Records the state of each objective at every epoch's end."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def on_epoch_end(self, epoch, logs=None):
        self.seen.append([{w.name: w.numpy().copy() for w in o.weights}
                          for o in self.model.objectives])


def _config(method, protocol="paper", **params):
    return RunConfig(method=method, ratio=0.5 if protocol == "paper" else 0.0, fold=1,
                     epochs=4, batch_size=16, learning_rate=1.0, head="gap",
                     protocol=protocol, params=tuple(sorted(params.items())))


def test_ll_cp_flips_persist_across_epochs_and_across_a_kill_and_resume(data_and_cache,
                                                                       tmp_path):
    root, cache = data_and_cache
    config = _config("ll-cp", delta=0.05)
    log = StateLog()
    train_run(root / "data", cache, tmp_path / "whole", config, verbose=0, callbacks=[log],
              backup_minutes=0)
    flips = [state[0]["flipped"] for state in log.seen]
    assert flips[0].sum() == 0, "epoch 1 modifies nothing"
    assert flips[-1].sum() > 0
    for before, after in zip(flips, flips[1:], strict=False):
        assert (after >= before).all(), "a flipped label stays flipped"
    from mlml_tf.training.data import load_run_data

    observed = load_run_data(root / "data", config).train_labels
    assert (observed[flips[-1] > 0] == -1).all(), "only unknown entries are flipped"

    killed = tmp_path / "killed"
    with pytest.raises(Killed):
        train_run(root / "data", cache, killed, config, verbose=0, callbacks=[KillAfter(2)],
                  backup_minutes=0)
    assert (killed / "backup" / "latest.weights.h5").exists()
    resumed = StateLog()
    train_run(root / "data", cache, killed, config, verbose=0, callbacks=[resumed],
              backup_minutes=0)
    assert len(resumed.seen) == 1, "the resumed attempt trained the last epoch only"
    np.testing.assert_array_equal(resumed.seen[0][0]["flipped"], flips[-1])
    # The run keeps the labels it ended with.
    np.testing.assert_array_equal(np.load(killed / "state" / "flipped.npy"), flips[-1])
    for name in ("predictions.out", "head.weights.h5"):
        assert (killed / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name


@pytest.mark.parametrize("method, protocol, params", [
    ("role", "single-positive", {}),
    ("pl-shrink", "paper", {"settle_margin": 0.4, "negative_threshold": 0.3,
                            "positive_threshold": 0.7})])
def test_per_row_state_resumes_to_the_uninterrupted_run(data_and_cache, tmp_path, method,
                                                        protocol, params):
    root, cache = data_and_cache
    config = _config(method, protocol, **params)
    log = StateLog()
    train_run(root / "data", cache, tmp_path / "whole", config, verbose=0, callbacks=[log],
              backup_minutes=0)
    with pytest.raises(Killed):
        train_run(root / "data", cache, tmp_path / "killed", config, verbose=0,
                  callbacks=[KillAfter(1)], backup_minutes=0)
    resumed = StateLog()
    train_run(root / "data", cache, tmp_path / "killed", config, verbose=0, callbacks=[resumed],
              backup_minutes=0)
    for name, value in resumed.seen[-1][0].items():
        np.testing.assert_array_equal(value, log.seen[-1][0][name], err_msg=name)
    for name in ("predictions.out", "head.weights.h5"):
        assert ((tmp_path / "killed" / name).read_bytes()
                == (tmp_path / "whole" / name).read_bytes()), name
    state = log.seen[-1][0]
    if method == "role":
        # The estimator moved: every logit, not only the batch rows of the last step.
        start = role_initial_logits(
            np.where(pd.read_csv(root / "data" / "single_positive" / "train1.csv",
                                 index_col=0).to_numpy() == 1, 1, -1), config.seed)
        assert state["estimator_logits"].shape == start.shape
        assert (state["estimator_logits"] != start).mean() > 0.9
        saved = np.load(tmp_path / "whole" / "state" / "estimator_logits.npy")
        np.testing.assert_array_equal(saved, state["estimator_logits"])
    else:
        from mlml_tf.training.data import load_run_data

        observed = load_run_data(root / "data", config).train_labels
        known = observed != -1
        # Pseudo-labels only ever touch unknown entries; some were made; some entries settled.
        np.testing.assert_array_equal(state["labels"][known], observed[known])
        assert (state["labels"][~known] != -1).any()
        assert state["settled"].sum() > 0 and (state["settled"][observed == 1] == 0).all()


def test_a_checkpoint_of_other_settings_is_refused(data_and_cache, tmp_path):
    import shutil

    root, cache = data_and_cache
    with pytest.raises(Killed):
        train_run(root / "data", cache, tmp_path / "a", _config("ll-r", delta=0.01), verbose=0,
                  callbacks=[KillAfter(0)], backup_minutes=0)
    shutil.copytree(tmp_path / "a" / "backup", tmp_path / "b" / "backup")
    with pytest.raises(DataError, match="latest.weights.h5: the checkpoint holds the state of "
                                        ".* for other settings"):
        train_run(root / "data", cache, tmp_path / "b", _config("ll-r", delta=0.02), verbose=0,
                  backup_minutes=0)
    # A checkpoint with state of other shapes (LL-Cp's flips, not LL-R's nothing).
    with pytest.raises(Killed):
        train_run(root / "data", cache, tmp_path / "c", _config("ll-cp", delta=0.01),
                  verbose=0, callbacks=[KillAfter(0)], backup_minutes=0)
    shutil.copytree(tmp_path / "c" / "backup", tmp_path / "d" / "backup")
    with pytest.raises(DataError, match="latest.weights.h5: cannot resume from this checkpoint"):
        train_run(root / "data", cache, tmp_path / "d", _config("ll-r", delta=0.01), verbose=0,
                  backup_minutes=0)


def test_revising_methods_train_in_the_grid_beside_the_others(data_and_cache, tmp_path, caplog):
    from mlml_tf.apps.grid import grid_cells, run_cells
    from mlml_tf.apps.tables import collect_runs

    root, cache = data_and_cache
    cells = grid_cells(["cb-wce", "role", "ll-r", "ll-ct", "ll-cp", "pl-shrink"], [0.5], [1])
    caplog.set_level(logging.INFO, logger="mlml_tf")
    counts = run_cells(root / "data", tmp_path, cache, cells, epochs=3, verbose=0,
                       config_overrides={"head": "gap", "batch_size": 16})
    assert counts["trained"] == 6 and "training these 6 runs side by side" in caplog.messages
    runs = collect_runs(tmp_path)
    assert sorted(runs["method"]) == sorted(["cb-wce", "role", "ll-r", "ll-ct", "ll-cp",
                                              "pl-shrink"])
    assert runs["map"].notna().all()
    role = runs[runs["method"] == "role"].iloc[0]
    extra = json.loads((Path(role["run_dir"]) / "metrics.json").read_text())["extra"]
    assert extra["expected_positives"] > 1


@pytest.mark.parametrize("name, params, epochs, message", [
    ("ll-r", {"delta": 0}, None, "'delta' of method 'll-r': 0.0 is not in (0, 1)"),
    ("ll-ct", {"delta": 1.5}, None, "'delta' of method 'll-ct': 1.5 is not in (0, 1)"),
    ("ll-r", {"delta": 0.3}, 20, "reaches the rate 5.7 by the last one, which modifies every"),
    ("role", {"expected_positives": -1}, None, "'expected_positives' of method 'role'"),
    ("role", {"expected_positives": 9}, None, "is not in [0, 8] (the number of classes)"),
    ("epr", {"expected_positives": 12}, None, "is not in [0, 8]"),
    ("role", {"lr_multiplier": 0}, None, "'lr_multiplier' of method 'role': 0.0 is not above"),
    ("pl-shrink", {"positive_threshold": 1.2}, None, "'positive_threshold'"),
    ("pl-shrink", {"negative_threshold": 0.95}, None, "below positive_threshold"),
    ("pl-shrink", {"warmup_epochs": 4}, 4, "below the 4 epochs of training"),
])
def test_bad_hyper_parameters_of_revising_methods_are_named(name, params, epochs, message):
    from mlml_tf.methods.registry import check_settings, method_params

    with pytest.raises(DataError) as info:
        check_settings(name, method_params(name, params) if epochs is None else
                       {**method_params(name), **params}, epochs, 8)
    assert message in str(info.value)


def test_end_to_end_training_refuses_methods_that_need_row_indices(data_and_cache):
    from mlml_tf.training.data import load_run_data
    from mlml_tf.training.end_to_end import _image_loss

    root, _ = data_and_cache
    config = _config("role", "single-positive")
    with pytest.raises(DataError, match="needs each row's index in the training stream"):
        _image_loss(config, load_run_data(root / "data", config))
