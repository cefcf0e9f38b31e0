"""Reproducibility: the same seed gives byte-identical files in another process, a run records
its seeds and library versions, and two runs that differ in any setting never share a result
folder."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures import (
    feature_cache,
    make_coco_fixture,
    make_nuswide_fixture,
    split_folder,
    tree_digests,
)

import mlml_tf
from mlml_tf.apps.grid import run_cells
from mlml_tf.cli.main import main
from mlml_tf.files.layout import run_files, write_groundtruth
from mlml_tf.files.split import split
from mlml_tf.files.tables import read_table, table_bytes
from mlml_tf.labels.weights import confidence_weights
from mlml_tf.runs.names import experiment_name
from mlml_tf.settings import GridOptions, RunConfig
from mlml_tf.training.data import load_run_data
from mlml_tf.training.record import run_digest

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="-1")


def in_processes(*commands, logs_dir: Path) -> None:
    """Run ``mlml-tf`` commands, each in its own process, all at once."""
    procs = []
    for k, command in enumerate(commands):
        with open(logs_dir / f"p{k}.log", "w") as log:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "mlml_tf.cli", *map(str, command)],
                stdout=log, stderr=subprocess.STDOUT, env=ENV))
    for k, proc in enumerate(procs):
        assert proc.wait(timeout=600) == 0, (logs_dir / f"p{k}.log").read_text()[-3000:]


def correlated_labels(n: int, c: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    scene = rng.integers(0, 3, n)
    p = rng.uniform(0.05, 0.6, (3, c))
    y = (rng.random((n, c)) < p[scene]).astype(np.uint8)
    return pd.DataFrame(y, index=[str(i) for i in range(n)], columns=[f"c{j}" for j in range(c)])


def test_weights_are_byte_identical_across_processes(tmp_path):
    write_groundtruth(tmp_path / "d", correlated_labels(400, 12, 0))
    split(tmp_path / "d", n_folds=2, ratios=[0.5], seed=3)
    files = run_files(tmp_path / "d", 0.5, 1)
    in_processes(*[["weights", "--method", "cb", "--labels", files[name], "--source",
                    files["train"], "--out", tmp_path / f"{name}{k}.csv"]
                   for k in (0, 1) for name in ("train", "test")], logs_dir=tmp_path)
    observed = read_table(files["train"])
    for name in ("train", "test"):
        first = (tmp_path / f"{name}0.csv").read_bytes()
        assert first == (tmp_path / f"{name}1.csv").read_bytes()
        labels = read_table(files[name])
        expected = confidence_weights(labels.to_numpy(), observed.to_numpy())
        frame = pd.DataFrame(expected, index=labels.index, columns=labels.columns)
        assert first == table_bytes(frame), "the same bytes as in this process"
        np.testing.assert_array_equal(read_table(tmp_path / f"{name}0.csv", "weights"),
                                      expected)


def test_kfold_split_and_nuswide_prepare_are_byte_identical_across_processes(tmp_path):
    labels = correlated_labels(600, 10, 1)
    for name in ("a", "b", "c"):
        write_groundtruth(tmp_path / name, labels)
    raw = make_nuswide_fixture(tmp_path / "raw", n_images=30, seed=4)
    in_processes(
        ["split", tmp_path / "a", "--scheme", "kfold", "--folds", "3", "--seed", "9"],
        ["split", tmp_path / "b", "--scheme", "kfold", "--folds", "3", "--seed", "9"],
        ["prepare", "nuswide", "--root", raw["root"], "--out", tmp_path / "n1"],
        ["prepare", "nuswide", "--root", raw["root"], "--out", tmp_path / "n2"],
        logs_dir=tmp_path)
    split(tmp_path / "c", n_folds=3, seed=10, scheme="kfold")
    a, b, c = (tree_digests(tmp_path / name) for name in "abc")
    assert a == b and len(a) == 2 + 4 * 10
    differ = [rel for rel in a if a[rel] != c[rel]]
    assert "missing_labels0.5/train1_0.5.csv" in differ, "another seed, other folds"
    assert "groundtruth.csv" not in differ
    n1, n2 = tree_digests(tmp_path / "n1"), tree_digests(tmp_path / "n2")
    assert n1 == n2 and set(n1) == {"groundtruth.csv", "images.csv", "manifest.json"}


# ---------------------------------------------------------------------------------- runs


@pytest.fixture(scope="module")
def coco_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("repro")
    raw = make_coco_fixture(root / "raw", n_images=48, seed=5)
    assert main(["prepare", "coco", "--annotations", str(raw["annotations"]),
                 "--out", str(root / "data"), "--min-labels", "2"]) == 0
    assert main(["split", str(root / "data"), "--folds", "2", "--ratios", "0", "0.5"]) == 0
    return root, raw


def test_runs_in_two_processes_agree_bit_for_bit_and_record_seed_and_versions(coco_data):
    import keras
    import sklearn
    import tensorflow as tf

    from mlml_tf.features.extract import cache_for_data_folder

    root, raw = coco_data
    args = ["run", "--data", root / "data", "--images", raw["images"], "--backbone", "VGG16",
            "--weights", "none", "--image-size", "32", "--batch-size", "2", "--epochs", "3",
            "--methods", "cb-wce", "--ratios", "0.5", "--folds", "1", "--seed", "3"]
    in_processes([*args, "--out", root / "a"], [*args, "--out", root / "b"], logs_dir=root)
    a, b = tree_digests(root / "a"), tree_digests(root / "b")
    shared = [rel for rel in a if Path(rel).name in (
        "features.npy", "cache.json", "predictions.out", "test_ground_truth_classes.txt",
        "results_report.csv", "evaluation_results.txt", "results_extra.csv",
        "evaluation_extra.txt", "metrics.json", "complete.json")]
    assert len(shared) == 10
    for rel in shared:
        assert a[rel] == b.get(rel), f"{rel} differs between two runs with the same seed"
    (run_dir,) = (root / "a").glob("CORRELATION_*/*")
    logs = [pd.read_csv(d / "training_log.csv") for d in
            (run_dir, root / "b" / run_dir.relative_to(root / "a"))]
    pd.testing.assert_frame_equal(*logs)
    features = np.load(next((root / "a" / "features").glob("*/features.npy")))
    assert features.std(axis=0).max() > 0, "images give different features"

    extra = json.loads((run_dir / "metrics.json").read_text())["extra"]
    assert extra["config"]["seed"] == 3 and extra["feature_cache"]["seed"] == 3
    assert extra["versions"] == {
        "mlml_tf": mlml_tf.__version__, "tensorflow": tf.__version__, "keras": keras.__version__,
        "numpy": np.__version__, "scikit-learn": sklearn.__version__,
        "python": ".".join(map(str, sys.version_info[:3]))}

    # Another seed draws other backbone weights: other features, in another cache folder.
    options = GridOptions(images=raw["images"], backbone="VGG16", weights="none",
                          image_size=32, batch_size=2, seed=4)
    other = cache_for_data_folder(root / "data", root / "a" / "features", options)
    assert other.folder.parent == root / "a" / "features"
    assert len(list((root / "a" / "features").iterdir())) == 2
    assert not np.array_equal(other.read(np.arange(len(other))), features.astype(np.float32))


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("digests")
    labels = correlated_labels(64, 5, 2)
    split_folder(root, labels, n_folds=2, ratios=[0.0, 0.5], seed=0)
    x = np.random.default_rng(3).normal(size=(64, 2, 2, 2)).astype(np.float32)
    caches = [feature_cache(root / f"cache{s}", labels.index, x, {"backbone": "test", "seed": s})
              for s in (0, 1)]
    return root, caches


def _changed_copy(root: Path, name: str, rel: str, line: int) -> Path:
    """A copy of the data folder with one value of one file flipped."""
    copy = root / name
    if not copy.exists():
        shutil.copytree(root / "data", copy)
    path = copy / rel
    lines = path.read_text().split("\n")
    last = lines[line][-1]
    lines[line] = lines[line][:-1] + ("0" if last == "1" else "1")
    path.write_text("\n".join(lines))
    return copy


def test_runs_that_differ_in_one_setting_never_share_a_folder(synthetic):
    root, (cache, other_cache) = synthetic
    base = dict(method="cb-wce", ratio=0.5, fold=1, epochs=1, batch_size=8)
    changes = {
        "epochs": {"epochs": 2}, "learning rate": {"learning_rate": 0.2},
        "cb_source": {"cb_source": "oracle"}, "pos_weight_source": {"pos_weight_source":
                                                                    "original"},
        "seed": {"seed": 1}, "batch size": {"batch_size": 4}, "head": {"head": "gap"},
        "validation": {"validation_fraction": 0.25}, "decay": {"decay_steps": 10},
        "decay rate": {"decay_rate": 0.9}, "method": {"method": "ce"},
        "ratio": {"ratio": 0.0}, "fold": {"fold": 2},
    }
    data = root / "data"
    digests = {"base": run_digest(RunConfig(**base), load_run_data(data, RunConfig(**base)),
                                  cache)}
    assert digests["base"] == run_digest(RunConfig(**base), load_run_data(
        data, RunConfig(**base)), cache), "the same settings, the same folder"
    for name, change in changes.items():
        config = RunConfig(**{**base, **change})
        digests[name] = run_digest(config, load_run_data(data, config), cache)
    digests["features"] = run_digest(RunConfig(**base), load_run_data(data, RunConfig(**base)),
                                     other_cache)
    # The label files' content: one value flipped in each file a run reads.
    for name, rel, line in [("train file", "missing_labels0.5/train1_0.5.csv", 3),
                            ("weights file", "missing_labels0.5/negative_weights1_0.5.csv", 2),
                            ("test file", "missing_labels0.5/test1_0.5.csv", 4)]:
        copy = _changed_copy(root, name.replace(" ", "_"), rel, line)
        digests[name] = run_digest(RunConfig(**base), load_run_data(copy, RunConfig(**base)),
                                   cache)
    oracle = RunConfig(**{**base, "cb_source": "oracle"})
    copy = _changed_copy(root, "truth", "groundtruth.csv", 5)
    digests["groundtruth (oracle)"] = run_digest(oracle, load_run_data(copy, oracle), cache)
    folders = {name: d[:12] for name, d in digests.items()}
    assert len(set(folders.values())) == len(folders), folders
    assert digests["groundtruth (oracle)"] != digests["cb_source"]

    # Train a few of them into one output folder: each lands in its own run folder.
    out = root / "out"
    chosen = [("base", data, {}), ("epochs", data, {"epochs": 2}),
              ("learning rate", data, {"learning_rate": 0.2}),
              ("cb_source", data, {"cb_source": "oracle"}),
              ("train file", root / "train_file", {})]
    for name, folder, change in chosen:
        overrides = {"batch_size": 8, **{k: v for k, v in change.items() if k != "epochs"}}
        counts = run_cells(folder, out, cache, [("cb-wce", 0.5, 1)],
                           epochs=change.get("epochs", 1), config_overrides=overrides,
                           verbose=0)
        assert counts["trained"] == 1, name
        complete = out / experiment_name("cb-wce", 0.5, 1) / folders[name] / "complete.json"
        assert json.loads(complete.read_text())["settings_sha256"] == digests[name]
    runs = [d for d in (out / experiment_name("cb-wce", 0.5, 1)).iterdir() if d.is_dir()]
    assert len(runs) == len(chosen)
    again = run_cells(data, out, cache, [("cb-wce", 0.5, 1)], epochs=1,
                      config_overrides={"batch_size": 8}, verbose=0)
    assert again == {"trained": 0, "already_complete": 1, "running_elsewhere": 0}


def test_runs_on_other_images_never_share_a_folder(coco_data, tmp_path):
    from PIL import Image

    from mlml_tf.features.extract import cache_for_data_folder

    root, raw = coco_data
    flipped = tmp_path / "flipped"
    flipped.mkdir()
    for image in raw["images"].iterdir():
        Image.open(image).transpose(Image.Transpose.FLIP_TOP_BOTTOM).save(flipped / image.name)
    caches = [cache_for_data_folder(root / "data", tmp_path / "features", GridOptions(
        images=images, backbone="VGG16", weights="none", image_size=32, batch_size=2))
        for images in (raw["images"], flipped)]
    assert not np.array_equal(caches[0].read(np.arange(4)), caches[1].read(np.arange(4)))
    config = RunConfig(method="ce", ratio=0.5, fold=1)
    run_data = load_run_data(root / "data", config)
    assert run_digest(config, run_data, caches[0]) != run_digest(config, run_data, caches[1])
