"""Confidence weights estimated from the observed labels alone (docs/methods.md section 6), the
oracle without each row's own row, and both where CB-WCE is used: a run and ``mlml-tf weights``.
"""

from __future__ import annotations

import doctest
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures import feature_cache, learnable_features, split_folder, top_classes

import mlml_tf
from mlml_tf.cli import build_parser, main
from mlml_tf.datasets.digits import make_digit_mosaics
from mlml_tf.errors import DataError
from mlml_tf.files.layout import read_groundtruth
from mlml_tf.files.tables import read_table
from mlml_tf.labels import (
    confidence_weights,
    estimate_confidence,
    estimated,
    estimated_confidence_weights,
    hide_positives,
    random_per_sample,
    single_positive,
)
from mlml_tf.settings import FitSettings, RunConfig
from mlml_tf.training.data import load_run_data
from mlml_tf.training.record import run_digest
from mlml_tf.training.runs import train_run


def _auc(weights: np.ndarray, positive: np.ndarray) -> float:
    """P(weight of a true negative > weight of a hidden positive), ties one half."""
    _, inverse, counts = np.unique(weights, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2.0)[inverse.reshape(-1)]
    n_neg, n_pos = int((~positive).sum()), int(positive.sum())
    return float((ranks[~positive].sum() - n_neg * (n_neg + 1) / 2.0) / (n_neg * n_pos))


def _scenes(rows: int = 400, seed: int = 0) -> np.ndarray:
    """Two scenes of four classes each, two rare classes of their own."""
    rng = np.random.default_rng(seed)
    scene = rng.integers(0, 2, rows)
    full = np.zeros((rows, 10), dtype=np.int8)
    full[scene == 0, 0:4] = rng.random(((scene == 0).sum(), 4)) < 0.8
    full[scene == 1, 4:8] = rng.random(((scene == 1).sum(), 4)) < 0.8
    full[:, 8:] = rng.random((rows, 2)) < 0.1
    full[full.sum(axis=1) == 0, 8] = 1
    return full


@pytest.fixture(scope="module")
def coco_slice(coco_reference) -> np.ndarray:
    """The first 8,000 published COCO rows, complete labels."""
    return coco_reference.drop(columns="fold").to_numpy(np.int8)[:8000]


def test_weights_are_zero_on_positives_and_probabilities_elsewhere():
    observed, _ = hide_positives(_scenes(), 0.5, seed=1)
    w = estimated_confidence_weights(observed, seed=0)
    assert w.shape == observed.shape and w.dtype == np.float32
    assert ((w >= 0) & (w <= 1)).all()
    assert (w[observed == 1] == 0).all() and (w[observed == 0] > 0).all()


def test_a_scene_mate_is_more_likely_a_hidden_positive_than_a_stranger():
    observed, hidden = hide_positives(_scenes(600), 0.5, seed=2)
    # 600 rows of counts 1 to 5 leave ratios 0.13 to 0.72 possible: the mean over them, so
    # that the weights' level shows the order.
    w = estimated_confidence_weights(observed, seed=0, level="expected")
    rows = np.flatnonzero((observed[:, 0:4].sum(axis=1) > 0) & (observed[:, 4:8].sum(axis=1) == 0))
    mates = w[rows, 0:4][observed[rows, 0:4] == 0]
    assert mates.mean() < w[rows, 4:8].mean() - 0.05
    assert _auc(w[observed == 0], hidden[observed == 0]) > 0.85


def test_partial_labels_keep_annotated_negatives_at_one():
    full = _scenes()
    partial = random_per_sample(full, 0.5, seed=3)
    est = estimate_confidence(partial, seed=0)
    assert est.mode == "partial"
    assert (est.weights[partial == 0] == 1).all() and (est.weights[partial == 1] == 0).all()
    unknown = partial == -1
    assert _auc(est.weights[unknown], full[unknown] == 1) > 0.8
    assert abs(est.ratio - 0.5) < 0.1


def test_ones_and_unknowns_only_read_as_ones_and_zeros():
    observed, _ = hide_positives(_scenes(), 0.5, seed=4)
    coded = np.where(observed == 1, 1, -1).astype(np.int8)
    a, b = estimate_confidence(observed, seed=0), estimate_confidence(coded, seed=0)
    assert a.mode == b.mode == "hidden"
    np.testing.assert_array_equal(a.weights, b.weights)


def test_the_same_seed_gives_byte_identical_weights():
    observed, _ = hide_positives(_scenes(500), 0.25, seed=5)
    digests = {hashlib.sha256(estimated_confidence_weights(m, seed=7).tobytes()).hexdigest()
               for m in (observed, observed.copy(), observed.astype(np.float64),
                         observed.astype(bool))}
    assert len(digests) == 1
    other = estimated_confidence_weights(observed, seed=8)
    assert hashlib.sha256(other.tobytes()).hexdigest() not in digests


@pytest.mark.parametrize("bad, match", [
    (np.array([[1, 2], [0, 1]]), r"observed\[0, 1\] = 2 is not 1, 0 or -1"),
    (np.array([[1.0, np.nan], [0.0, 1.0]]), r"observed\[0, 1\] = nan is not 1, 0 or -1"),
    (np.zeros((0, 3), dtype=int), "observed has no row"),
    (np.zeros((4, 3), dtype=int), "observed has no positive"),
    (np.ones((4, 1), dtype=int), "observed has 1 class"),
    (np.array([1, 0, 1]), "observed must be a 2-D"),
    (np.array([["1", "0"]]), "observed must be numeric"),
])
def test_bad_input_is_refused_naming_the_argument(bad, match):
    with pytest.raises(DataError, match=match):
        estimated_confidence_weights(bad)


def test_on_real_labels_it_beats_counting_and_the_class_frequency_and_finds_the_ratio(
        coco_slice):
    """Half of each row's positives hidden on COCO rows: the estimator ranks true negatives
    above hidden positives far better than eq. 3 counted over the observed labels and than the
    class frequency, and reads the ratio off the matrix."""
    observed, hidden = hide_positives(coco_slice, 0.5, seed=0)
    est = estimate_confidence(observed, seed=0)
    zeros = observed == 0
    got = _auc(est.weights[zeros], hidden[zeros])
    counted = _auc(confidence_weights(observed)[zeros], hidden[zeros])
    frequency = _auc(np.broadcast_to(1 - observed.mean(axis=0), zeros.shape)[zeros],
                     hidden[zeros])
    assert got > 0.90 and got > counted + 0.15 and got > frequency + 0.08, (got, counted,
                                                                             frequency)
    assert est.ratio == pytest.approx(0.5, abs=0.03)
    assert est.weights[hidden].mean() < est.weights[zeros & ~hidden].mean() - 0.15
    # Under single positive the matrix holds no co-occurrence: no worse than the frequency.
    single = single_positive(coco_slice, seed=0)
    est = estimate_confidence(single, seed=0)
    unknown = single == -1
    truth = coco_slice[unknown] == 1
    frequency = _auc(np.broadcast_to(1 - (single == 1).mean(axis=0), unknown.shape)[unknown],
                     truth)
    assert np.isnan(est.ratio) and _auc(est.weights[unknown], truth) >= frequency - 1e-3


def test_complete_labels_keep_their_weights_unless_told_otherwise(coco_slice):
    """Nothing hidden: the histogram of positives per row cannot rule out that nothing is
    missing, and the default level takes none missing (weights of CE); ``level="expected"``
    takes the likelihood-weighted mean over the ratios, which assumes a share missing, and a
    known ratio is taken as given."""
    least = estimate_confidence(coco_slice, seed=0)
    zeros = coco_slice == 0
    assert least.level == "least" and least.ratio_interval[0] == 0.0
    assert least.missing_fraction < 1e-3 and least.weights[zeros].min() > 0.999
    expected = estimate_confidence(coco_slice, seed=0, level="expected")
    assert expected.level == "expected" and expected.missing_fraction > 0.2
    assert expected.weights[zeros].mean() < least.weights[zeros].mean() - 0.05
    given = estimate_confidence(coco_slice, seed=0, ratio=0.0)
    assert given.level == "given" and given.ratio == 0.0 and given.missing_fraction < 1e-3
    # Where the histogram tells the ratio, the two levels agree.
    observed, _ = hide_positives(coco_slice, 0.5, seed=0)
    a = estimate_confidence(observed, seed=0)
    b = estimate_confidence(observed, seed=0, level="expected")
    c = estimate_confidence(observed, seed=0, ratio=0.5)
    assert a.ratio_interval == (0.5, 0.5)
    assert a.missing_fraction == pytest.approx(b.missing_fraction, abs=0.01)
    assert a.missing_fraction == pytest.approx(c.missing_fraction, abs=0.01)
    # Single positive: one label per row says nothing of how many are missing.
    single = single_positive(coco_slice, seed=0)
    assert estimate_confidence(single, seed=0).missing_fraction < 1e-2
    assert estimate_confidence(single, seed=0, level="expected").missing_fraction > 0.3


def test_a_narrow_histogram_does_not_rule_out_complete_labels():
    """The demo's rows hold 3 to 6 labels; complete, their histogram is fitted a little better
    by a ratio near 0.6 than by 0 (a log-likelihood drop of about 6 under the two-parameter
    prior), which the test of "nothing missing" allows: nothing is taken as missing. Half of
    the positives hidden, the same rows rule it out."""
    _, frame = make_digit_mosaics(2000, seed=2)
    complete = frame.to_numpy()[:1500]
    estimate = estimate_confidence(complete, seed=0)
    assert estimate.ratio_interval[0] == 0.0 and estimate.missing_fraction < 1e-3
    observed, _ = hide_positives(complete, 0.5, seed=2)
    hidden = estimate_confidence(observed, seed=0)
    assert hidden.ratio_interval[0] >= 0.3 and hidden.missing_fraction > 0.3


@pytest.mark.parametrize("kwargs, match", [
    ({"level": "most"}, "level must be one of least, expected, got 'most'"),
    ({"ratio": 0.95}, r"ratio must be in \[0, 0.9\], got 0.95"),
    ({"ratio": -0.1}, r"ratio must be in \[0, 0.9\], got -0.1"),
])
def test_a_bad_level_or_ratio_is_refused_naming_it(kwargs, match):
    observed, _ = hide_positives(_scenes(), 0.5, seed=1)
    with pytest.raises(DataError, match=match):
        estimate_confidence(observed, **kwargs)
    with pytest.raises(DataError, match="ratio is the paper's protocol's, for a 1/0 matrix"):
        estimate_confidence(random_per_sample(_scenes(), 0.5, seed=3), ratio=0.5)


def test_the_oracle_without_its_own_row_counts_every_other_row():
    rng = np.random.default_rng(0)
    whole = rng.random((60, 5)) < 0.4
    rows = np.arange(0, 60, 2)
    observed, _ = hide_positives(whole[rows], 0.5, seed=0)
    got = confidence_weights(observed, whole, own=whole[rows])
    for n, i in enumerate(rows):
        others = np.delete(whole, i, axis=0)
        holders = others[others[:, observed[n] == 1].all(axis=1)]
        for c in np.flatnonzero(observed[n] == 0):
            expected = 1 - holders[:, c].mean() if len(holders) else 1.0
            assert got[n, c] == pytest.approx(expected, abs=1e-6)
    assert (got[observed == 1] == 0).all()
    with pytest.raises(DataError, match=r"own\[0, \d\] = 0 where labels"):
        confidence_weights(whole[rows], whole, own=observed)


def test_the_readme_example_is_true(coco_slice):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    example = re.search(r"## CB-WCE without an oracle.*?```python\n(.*?)```", readme,
                        re.S).group(1)
    scope = {"labels": coco_slice}
    exec(example, scope)
    assert scope["w_bar"].shape == coco_slice.shape and scope["w_bar"].dtype == np.float32
    assert (scope["w_bar"][scope["observed"] == 1] == 0).all()
    assert scope["estimate"].ratio == pytest.approx(0.5, abs=0.03)
    assert np.isfinite(scope["W"]).all()


def test_public_names_and_doctests():
    assert mlml_tf.estimated_confidence_weights is estimated_confidence_weights
    assert mlml_tf.estimate_confidence is estimate_confidence
    assert mlml_tf.ConfidenceEstimate is estimated.ConfidenceEstimate
    assert doctest.testmod(estimated).failed == 0


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory, coco_reference):
    root = tmp_path_factory.mktemp("estimated")
    labels = top_classes(coco_reference, 256, 12, keep_empty=True)
    split_folder(root, labels, ratios=[0.0, 0.5], seed=0)
    cache = feature_cache(root / "cache", labels.index,
                          learnable_features(labels.to_numpy(), (2, 2, 8)),
                          {"backbone": "projection", "seed": 0}, batches=5)
    return root / "data", cache


def test_a_run_trains_on_estimated_and_oracle_loo_weights(run_folder, tmp_path):
    data, cache = run_folder
    config = RunConfig(method="cb-wce", ratio=0.5, fold=1, epochs=2, batch_size=16,
                       cb_source="estimated", seed=3)
    run = load_run_data(data, config)
    train = read_table(data / "missing_labels0.5" / "train1_0.5.csv")
    assert list(run.train_ids) == list(train.index)
    expected = estimated_confidence_weights(train.to_numpy(), seed=3)
    zeros = run.train_labels == 0
    np.testing.assert_array_equal(run.weights[zeros], expected[zeros])
    assert run.record["cb_estimate"]["mode"] == "hidden"
    assert 0 <= run.record["cb_estimate"]["ratio"] <= 0.9
    # CB-WCE's power scales the weights: w ** 2.
    squared = load_run_data(data, RunConfig(method="cb-wce", ratio=0.5, fold=1, seed=3,
                                            cb_source="estimated", params=(("power", 2),)))
    np.testing.assert_allclose(squared.weights[zeros], expected[zeros] ** 2, rtol=1e-6)
    # CB-WCE's level reaches the estimator, and is recorded; a word it does not know is refused.
    assert run.record["cb_estimate"]["level"] == "least"
    expected_level = load_run_data(data, RunConfig(method="cb-wce", ratio=0.5, fold=1, seed=3,
                                                   cb_source="estimated",
                                                   params=(("level", "expected"),)))
    assert expected_level.record["cb_estimate"]["level"] == "expected"
    np.testing.assert_array_equal(
        expected_level.weights[zeros],
        estimated_confidence_weights(train.to_numpy(), seed=3, level="expected")[zeros])
    with pytest.raises(DataError, match="hyper-parameter 'level' of method 'cb-wce': 'most'"):
        load_run_data(data, RunConfig(method="cb-wce", ratio=0.5, fold=1, seed=3,
                                      cb_source="estimated", params=(("level", "most"),)))
    # Oracle without the row's own row: eq. 3 for the observed positives over the others.
    loo = load_run_data(data, RunConfig(method="cb-wce", ratio=0.5, fold=1,
                                        cb_source="oracle-loo"))
    truth = read_groundtruth(data)
    counted = confidence_weights(train.to_numpy(), truth.to_numpy(),
                                 own=truth.loc[train.index].to_numpy())
    np.testing.assert_allclose(loo.weights[zeros], counted[zeros], rtol=1e-6)
    # New sources are new runs; the estimator's version is part of the digest.
    observed = RunConfig(method="cb-wce", ratio=0.5, fold=1, epochs=2, batch_size=16, seed=3)
    digests = {run_digest(c, load_run_data(data, c), cache) for c in (config, observed)}
    assert len(digests) == 2
    metrics = train_run(data, cache, tmp_path / "run", config, verbose=0)
    assert 0 <= metrics["map"] <= 100
    extra = json.loads((tmp_path / "run" / "metrics.json").read_text())["extra"]
    assert extra["cb_estimate"]["version"] == estimated.VERSION
    assert FitSettings(cb_source="estimated").run_config().cb_source == "estimated"
    with pytest.raises(DataError, match="cb_source must be one of observed, estimated"):
        FitSettings(cb_source="oracle")


def test_the_demo_compares_the_sources_it_can():
    args = build_parser().parse_args(["demo", "--cb-sources", "estimated", "oracle-loo"])
    assert args.cb_sources == ["estimated", "oracle-loo"]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo", "--cb-sources", "file"])


def _table(path, values: np.ndarray) -> None:
    frame = pd.DataFrame(values, index=[f"r{i}" for i in range(len(values))],
                         columns=[f"c{j}" for j in range(values.shape[1])])
    frame.to_csv(path)


def test_the_weights_command_writes_estimated_weights_or_nothing(tmp_path, capsys):
    observed, _ = hide_positives(_scenes(), 0.5, seed=6)
    _table(tmp_path / "train.csv", observed)
    out = tmp_path / "w.csv"
    assert main(["weights", "--method", "estimated", "--labels", str(tmp_path / "train.csv"),
                 "--out", str(out), "--seed", "2"]) == 0
    written = read_table(out, "weights")
    np.testing.assert_array_equal(written.to_numpy(),
                                  estimated_confidence_weights(observed, seed=2))
    assert "estimated from their labels (hidden mode); missing ratio 0." in capsys.readouterr().out
    assert main(["weights", "--method", "estimated", "--labels", str(tmp_path / "train.csv"),
                 "--out", str(out), "--ratio", "0.5"]) == 0
    assert "(level given)" in capsys.readouterr().out
    for extra, message in ((["--method", "cb", "--level", "expected"], "go with --method "
                            "estimated"),
                           (["--method", "estimated", "--level", "least", "--ratio", "0.5"],
                            "give one of them")):
        target = tmp_path / "refused.csv"
        assert main(["weights", *extra, "--labels", str(tmp_path / "train.csv"),
                     "--out", str(target)]) == 2
        assert message in capsys.readouterr().err and not target.exists()
    bad = observed.astype(object)
    bad[3, 2] = 2
    _table(tmp_path / "bad.csv", bad)
    _table(tmp_path / "empty.csv", np.zeros((5, 3), dtype=int))
    for name, message in (("bad.csv", "bad.csv, line 5, column 'c2': value '2'"),
                          ("empty.csv", "empty.csv: no positive label")):
        target = tmp_path / f"out-{name}"
        assert main(["weights", "--method", "estimated", "--labels", str(tmp_path / name),
                     "--out", str(target)]) == 2
        assert message in capsys.readouterr().err
        assert not target.exists() and not list(tmp_path.glob(f".out-{name}*"))
