"""One run and the grid, on a feature cache made from real COCO label rows."""

import dataclasses
import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures import feature_cache, learnable_features, split_folder, top_classes

from mlml_tf.apps.grid import grid_cells, run_cells
from mlml_tf.apps.tables import collect_runs
from mlml_tf.errors import DataError
from mlml_tf.features.cache import build_feature_cache
from mlml_tf.files.tables import read_table
from mlml_tf.runs.names import experiment_name
from mlml_tf.settings import RunConfig
from mlml_tf.training.data import load_run_data
from mlml_tf.training.runs import train_run

N_ROWS, N_CLASSES, FEATURES = 256, 12, (2, 2, 8)


@pytest.fixture(scope="module")
def data_and_cache(tmp_path_factory, coco_reference):
    root = tmp_path_factory.mktemp("grid")
    labels = top_classes(coco_reference, N_ROWS, N_CLASSES, keep_empty=True)
    split_folder(root, labels, ratios=[0.0, 0.5], seed=0)
    x = learnable_features(labels.to_numpy(), FEATURES)
    cache = feature_cache(root / "cache", labels.index, x, {"backbone": "projection", "seed": 0},
                          batches=5)
    return root, cache, x


def test_cache_round_trip_and_settings_check(data_and_cache, tmp_path):
    root, cache, x = data_and_cache
    assert len(cache) == N_ROWS and cache.shape == FEATURES
    rows = np.array([5, 0, 200])
    np.testing.assert_array_equal(cache.read(rows), x[rows].astype(np.float16).astype(np.float32))
    assert np.load(root / "cache" / "features.npy", mmap_mode="r").dtype == np.float16
    calls = []

    def extractor(b):
        calls.append(len(b))
        return b

    again = build_feature_cache(root / "cache", cache.ids, lambda: iter([x]), extractor,
                                settings={"backbone": "projection", "seed": 0}, progress=False)
    assert calls == [] and again.ids == cache.ids, "same settings: reused, not recomputed"
    copy = tmp_path / "c"
    build_feature_cache(copy, cache.ids, lambda: iter([x]), extractor,
                        settings={"backbone": "projection", "seed": 0}, progress=False)
    other = build_feature_cache(copy, cache.ids, lambda: iter([x]), extractor,
                                settings={"backbone": "projection", "seed": 1}, progress=False)
    assert calls == [N_ROWS, N_ROWS], "other settings: rebuilt"
    assert other.settings["seed"] == 1
    with pytest.raises(DataError, match="id 'nope'"):
        other.rows_of(["nope"])


def test_a_float32_cache_keeps_the_features_and_trains_apart_from_the_float16_one(
        data_and_cache, tmp_path):
    from mlml_tf.features.cache import cache_key, dtype_settings
    from mlml_tf.training.record import run_digest
    from mlml_tf.training.stream import training_stream

    root, cache, x = data_and_cache
    settings = {"backbone": "projection", "seed": 0}
    wide = build_feature_cache(tmp_path / "c32", cache.ids, lambda: iter([x]), lambda b: b,
                               settings=settings, progress=False, dtype="float32")
    rows = np.array([5, 0, 200])
    np.testing.assert_array_equal(wide.read(rows), x[rows])
    assert wide.dtype == np.float32 and wide.read_stored(rows).dtype == np.float32
    assert wide.nbytes() == 2 * cache.nbytes() and wide.settings["feature_dtype"] == "float32"
    assert cache.dtype == np.float16 and "feature_dtype" not in cache.settings
    assert np.abs(cache.read(rows) - x[rows]).max() > 0, "float16 rounds"
    # The default leaves the settings, the cache's folder name and the runs' digests as they
    # were before the choice existed; float32 changes all three.
    assert dtype_settings() == {} and cache_key(settings) != cache_key(
        {**settings, **dtype_settings("float32")})
    config = RunConfig(method="ce", ratio=0.5, fold=1, epochs=1, batch_size=16)
    run_data = load_run_data(root / "data", config)
    assert run_digest(config, run_data, cache) != run_digest(config, run_data, wide)
    _, _, held = training_stream(wide, rows, 2, 0, lambda: 0, in_memory=True)
    assert held.dtype == np.float32
    config = dataclasses.replace(config, epochs=3, learning_rate=1.0)
    for features, name in ((cache, "16"), (wide, "32")):
        train_run(root / "data", features, tmp_path / name, config, verbose=0)
    narrow, full = (np.loadtxt(tmp_path / name / "predictions.out", delimiter=",")
                    for name in ("16", "32"))
    assert 0 < np.abs(narrow - full).max() < 1e-3, "float16's rounding moves them, a little"
    with pytest.raises(DataError, match="feature dtype 'float64'"):
        dtype_settings("float64")


@pytest.mark.parametrize("method", ["ce", "im-wce", "cb-wce"])
def test_entry_weights_of_each_method(data_and_cache, method):
    root, _, _ = data_and_cache
    data = load_run_data(root / "data", RunConfig(method=method, ratio=0.5, fold=1))
    y = data.train_labels
    p = data.pos_weight
    assert np.allclose(data.weights[y == 1], np.broadcast_to(p, y.shape)[y == 1])
    negative = data.weights[y == 0]
    if method == "ce":
        assert (negative == 1).all()
    elif method == "im-wce":
        assert set(np.unique(negative)) == {0.0, 1.0}
    else:
        assert ((negative >= 0) & (negative <= 1)).all() and len(np.unique(negative)) > 2


def test_one_run_writes_the_original_outputs(data_and_cache, tmp_path):
    root, cache, _ = data_and_cache
    config = RunConfig(method="cb-wce", ratio=0.5, fold=1, epochs=20, learning_rate=1.0,
                       batch_size=8, validation_fraction=0.2)
    metrics = train_run(root / "data", cache, tmp_path / "run", config, verbose=0)
    for name in ("predictions.out", "test_ground_truth_classes.txt", "evaluation_results.txt",
                 "results_report.csv", "results_extra.csv", "evaluation_extra.txt",
                 "metrics.json", "training_log.csv", "head.weights.h5"):
        assert (tmp_path / "run" / name).exists(), name
    pred = np.loadtxt(tmp_path / "run" / "predictions.out", delimiter=",")
    data = load_run_data(root / "data", config)
    assert pred.shape == (len(data.test_ids), N_CLASSES), "every test row is predicted"
    assert metrics["roc_auc_micro"] > 0.75
    log = pd.read_csv(tmp_path / "run" / "training_log.csv")
    assert len(log) == 20 and log["loss"].iloc[-1] < log["loss"].iloc[0]
    extra = json.loads((tmp_path / "run" / "metrics.json").read_text())["extra"]
    assert extra["validation_rows"] > 0 and "tensorflow" in extra["versions"]


def test_grid_skips_complete_runs_and_separates_settings(data_and_cache, tmp_path, caplog):
    root, cache, _ = data_and_cache
    cells = grid_cells(["ce", "im-wce", "cb-wce"], [0.0, 0.5], [1, 2])
    assert len(cells) == 12
    assert grid_cells(["ce"], [0.5], [1, 2, 3], shard=(2, 2)) == [("ce", 0.5, 2, "paper", 1000)]
    chosen = [("ce", 0.5, 1), ("cb-wce", 0.5, 1)]
    out = tmp_path / "out"
    caplog.set_level(logging.INFO, logger="mlml_tf")
    first = run_cells(root / "data", out, cache, chosen, epochs=1, verbose=0,
                      config_overrides={"head": "gap"})
    lines = caplog.messages
    assert first["trained"] == 2
    assert [line.split(" -> ")[0] for line in lines if " -> " in line] == [
        "ce ratio=0.5 fold=1", "cb-wce ratio=0.5 fold=1"], "each run named in the log"
    again = run_cells(root / "data", out, cache, chosen, epochs=1, verbose=0,
                      config_overrides={"head": "gap"})
    assert again == {"trained": 0, "already_complete": 2, "running_elsewhere": 0}
    other = run_cells(root / "data", out, cache, chosen[:1], epochs=2, verbose=0,
                      config_overrides={"head": "gap"})
    assert other["trained"] == 1
    folders = list((out / experiment_name("ce", 0.5, 1)).iterdir())
    assert len([f for f in folders if f.is_dir()]) == 2, "other settings, other folder"
    runs = collect_runs(out)
    assert set(runs["method"]) == {"ce", "cb-wce"}


def test_batches_held_in_memory_equal_the_batches_streamed_from_the_file(data_and_cache):
    from mlml_tf.training.stream import training_stream
    from mlml_tf.training.trainer import TrainingRows

    _, cache, _ = data_and_cache
    rows = np.arange(0, N_ROWS, 2)[::-1]
    rng = np.random.default_rng(0)
    y = (rng.random((len(rows), 2, N_CLASSES)) < 0.3).astype(np.float32)
    w = rng.random(y.shape).astype(np.float32)
    streams = []
    for held in (True, False):
        stream, steps, features = training_stream(cache, rows, 16, 5, lambda: 3, epochs=2,
                                                  steps_per_epoch=7, shuffle_buffer=10,
                                                  in_memory=held)
        assert (features is not None) == held and steps == 7
        table = TrainingRows(y, w, features)
        streams.append([[t.numpy() for t in table.batch(element)] for element in stream])
    assert len(streams[0]) == 2 * 7 - 3
    for held, streamed in zip(*streams, strict=True):
        for a, b in zip(held, streamed, strict=True):
            np.testing.assert_array_equal(a, b)


def test_runs_trained_side_by_side_get_the_results_they_get_alone(data_and_cache, tmp_path):
    from mlml_tf.training.runs import train_runs

    root, cache, _ = data_and_cache
    configs = [RunConfig(method=m, ratio=r, fold=1, epochs=3, batch_size=16, learning_rate=1.0)
               for r in (0.0, 0.5) for m in ("ce", "im-wce", "cb-wce")]
    together = train_runs(root / "data", cache,
                          [(tmp_path / "together" / str(i), c, None)
                           for i, c in enumerate(configs)], verbose=0)
    for i, config in enumerate(configs):
        alone = train_run(root / "data", cache, tmp_path / "alone" / str(i), config, verbose=0)
        for key in ("roc_auc_micro", "f1_micro", "precision_micro", "recall_micro"):
            assert abs(together[i][key] - alone[key]) <= 1e-5, (config, key)
        p_together, p_alone = (np.loadtxt(tmp_path / kind / str(i) / "predictions.out",
                                          delimiter=",") for kind in ("together", "alone"))
        np.testing.assert_allclose(p_together, p_alone, atol=1e-5)
        logs = [pd.read_csv(tmp_path / kind / str(i) / "training_log.csv")["loss"]
                for kind in ("together", "alone")]
        np.testing.assert_allclose(*logs, rtol=1e-5)
    # Other training rows or other shared settings cannot share a step.
    with pytest.raises(DataError, match="share their training rows"):
        train_runs(root / "data", cache,
                   [(tmp_path / "x1", configs[0], None),
                    (tmp_path / "x2", RunConfig(method="ce", ratio=0.0, fold=2), None)])
    with pytest.raises(DataError, match="share their training rows"):
        train_runs(root / "data", cache,
                   [(tmp_path / "x1", configs[0], None),
                    (tmp_path / "x2", dataclasses.replace(configs[1], epochs=4), None)])


def test_checkpoints_wait_for_backup_minutes_and_runs_of_0_2_keep_their_digest(
        data_and_cache, tmp_path):
    import keras

    from mlml_tf.training.record import run_digest

    root, cache, _ = data_and_cache
    config = RunConfig(method="ce", ratio=0.5, fold=1, epochs=2, batch_size=16)
    seen = {}

    class Backups(keras.callbacks.Callback):
        def __init__(self, run_dir):
            super().__init__()
            self.run_dir = run_dir

        def on_epoch_end(self, epoch, logs=None):
            seen.setdefault(self.run_dir.name, []).append(
                (self.run_dir / "backup" / "latest.weights.h5").exists())

    for name, minutes in (("every", 0), ("default", None)):
        extra = {} if minutes is None else {"backup_minutes": minutes}
        train_run(root / "data", cache, tmp_path / name, config, verbose=0,
                  callbacks=[Backups(tmp_path / name)], **extra)
        assert not (tmp_path / name / "backup").exists(), "deleted once the head is written"
    assert seen == {"every": [True, True], "default": [False, False]}
    # Settings added since 0.2 count in the digest only when they are not at their default.
    run_data = load_run_data(root / "data", config)
    fields_of_0_2 = ("method", "ratio", "fold", "epochs", "batch_size", "learning_rate",
                     "lr_schedule", "decay_rate", "decay_steps", "rho", "epsilon",
                     "steps_per_epoch", "shuffle_buffer", "head", "seed", "cb_source",
                     "pos_weight_source", "validation_fraction", "strategy", "from_logits",
                     "faithful_scoring")
    old = {k: v for k, v in dataclasses.asdict(config).items() if k in fields_of_0_2}
    content = {"config": old, "labels": run_data.label_digest,
               "features": cache.manifest["ids_sha256"]
               + json.dumps(cache.settings, sort_keys=True)}
    assert run_digest(config, run_data, cache) == hashlib.sha256(
        json.dumps(content, sort_keys=True).encode()).hexdigest()
    assert run_digest(dataclasses.replace(config, mixed_precision=True), run_data, cache) != \
        run_digest(config, run_data, cache)


def test_the_fields_methods_train_on_any_protocol_with_cslss_prior_from_a_temporary_model(
        data_and_cache, tmp_path, caplog):
    from mlml_tf.files.split import split_protocol
    from mlml_tf.methods.prior import read_class_prior

    root, cache, _ = data_and_cache
    split_protocol(root / "data", "rps", [0.5], seed=0)
    cells = (grid_cells(["asl", "csl", "an", "epr"], [0.5], [1], protocol="rps")
             + grid_cells(["csl", "wan"], [0.5], [1]))
    caplog.set_level(logging.INFO, logger="mlml_tf")
    settings = {"config_overrides": {"head": "gap", "batch_size": 16, "learning_rate": 1.0},
                "epochs": 2, "verbose": 0}
    counts = run_cells(root / "data", tmp_path, cache, cells, **settings)
    assert counts["trained"] == 6
    assert "training these 6 runs side by side" in caplog.messages
    priors = sorted(p.parent for p in (tmp_path / "priors").rglob("class_prior.csv"))
    assert [p.parent.name for p in priors] == ["csl-ignore_missing_labels0.5_split_1",
                                               "csl-ignore_rps0.5_split_1"]
    runs = collect_runs(tmp_path)
    assert len(runs) == 6 and set(runs["protocol"]) == {"rps", "paper"}
    # Each learnt its classes (here 37 to 50 mAP, chance 23), in two epochs.
    test = read_table(root / "data" / "rps0.5" / "test1.csv").to_numpy()
    assert (runs["map"] > 100 * test.mean(axis=0).mean() + 10).all(), runs[["method", "map"]]
    csl = runs[(runs["method"] == "csl") & (runs["protocol"] == "rps")].iloc[0]
    extra = json.loads((Path(csl["run_dir"]) / "metrics.json").read_text())["extra"]
    classes = list(pd.read_csv(root / "data" / "rps0.5" / "train1.csv", nrows=0).columns[1:])
    np.testing.assert_allclose(extra["prior"], read_class_prior(
        priors[1] / "class_prior.csv", classes), rtol=1e-6)
    assert dict(extra["config"]["params"]) == {}
    epr = runs[runs["method"] == "epr"].iloc[0]
    assert json.loads((Path(epr["run_dir"]) / "metrics.json").read_text())["extra"][
        "expected_positives"] > 1
    # Complete runs and their temporary models are reused; another hyper-parameter is another
    # run, with another temporary model.
    again = run_cells(root / "data", tmp_path, cache, cells, **settings)
    assert again["already_complete"] == 6
    other = run_cells(root / "data", tmp_path, cache, cells[1:2], **settings,
                      method_overrides={"csl": {"gamma_unann": 4}})
    assert other["trained"] == 1
    assert len(list((tmp_path / "priors").rglob("class_prior.csv"))) == 3


def test_bad_hyper_parameters_and_prior_files_are_named(data_and_cache, tmp_path):
    from mlml_tf.methods.prior import read_class_prior
    from mlml_tf.methods.registry import method_params

    with pytest.raises(DataError, match="unknown hyper-parameter 'gamma' of method 'asl'"):
        method_params("asl", {"gamma": 1})
    with pytest.raises(DataError, match="'likelihood_topk' of method 'csl': '2.5' is not a whole"):
        method_params("csl", {"likelihood_topk": "2.5"})
    with pytest.raises(DataError, match="unknown method 'bce'"):
        method_params("bce")
    prior = tmp_path / "prior.csv"
    for text, where in [("class,prior\na,0.1\nb,nan\n", "line 3, column 'prior'"),
                        ("class,prior\na,0.1\nc,0.2\n", "line 3, column 'class'"),
                        ("class,prior\na,0.1\n", "1 classes where the data folder has 2"),
                        ("class,prior\na,0.1\nb,0.2\nstray\n", "line 4"),
                        ("name,value\na,0.1\nb,0.2\n", "line 1")]:
        prior.write_text(text)
        with pytest.raises(DataError, match=where):
            read_class_prior(prior, ["a", "b"])
