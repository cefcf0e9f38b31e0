"""Under load: processes (and threads) that share an output folder build the feature cache once,
train every run of the grid exactly once, and never write over each other's files."""

import contextlib
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures import feature_cache, make_coco_fixture, split_folder

from mlml_tf.apps.grid import run_cells
from mlml_tf.cli.main import main
from mlml_tf.features.cache import FEATURES, MANIFEST, build_feature_cache, ids_digest
from mlml_tf.files.atomic import folder_lock
from mlml_tf.runs.names import experiment_name
from mlml_tf.runs.outputs import COMPLETE
from mlml_tf.settings import GridOptions, RunConfig
from mlml_tf.training.data import load_run_data
from mlml_tf.training.record import run_digest

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="-1")
EPOCHS = 2
CELLS = [(m, r, 1) for r in (0.0, 0.5) for m in ("ce", "cb-wce")]
SUMMARY = re.compile(r"shard (\d)/(\d): (\d+) runs: (\d+) trained, (\d+) already complete, "
                     r"(\d+) running elsewhere")


# ---------------------------------------------------------------------------------- in process


def test_feature_cache_is_built_once_when_builders_race(tmp_path):
    ids = [f"{i:04d}" for i in range(40)]
    x = np.random.default_rng(0).normal(size=(40, 2, 2, 3)).astype(np.float32)
    calls, caches, errors = [], [], []

    def extractor(batch):
        calls.append(len(batch))
        time.sleep(0.02)  # long enough for every other builder to reach the lock
        return batch

    def build():
        try:
            caches.append(build_feature_cache(
                tmp_path / "cache", ids, lambda: iter(np.array_split(x, 8)), extractor,
                {"backbone": "test", "seed": 0}, progress=False))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(caches) == 4
    assert sum(calls) == 40, "the backbone ran over the images once, not once per builder"
    manifest = json.loads((tmp_path / "cache" / MANIFEST).read_text())
    assert manifest["ids"] == ids and manifest["ids_sha256"] == ids_digest(ids)
    for cache in caches:
        np.testing.assert_array_equal(cache.read(np.arange(40)),
                                      x.astype(np.float16).astype(np.float32))
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [
        ".lock", MANIFEST, FEATURES]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("locks")
    rng = np.random.default_rng(1)
    labels = pd.DataFrame((rng.random((48, 4)) < 0.5).astype(np.uint8),
                          index=[str(i) for i in range(48)], columns=list("abcd"))
    split_folder(root, labels, n_folds=2, ratios=[0.0, 0.5], seed=0)
    x = rng.normal(size=(48, 2, 2, 2)).astype(np.float32)
    return root, feature_cache(root / "cache", labels.index, x, {"backbone": "test"})


def test_a_run_held_by_another_process_is_left_to_it(synthetic, tmp_path, caplog):
    root, cache = synthetic
    cells = [("ce", 0.5, 1), ("cb-wce", 0.5, 1)]
    config = RunConfig(method="ce", ratio=0.5, fold=1, epochs=1, batch_size=8)
    digest = run_digest(config, load_run_data(root / "data", config), cache)
    held = tmp_path / "out" / experiment_name("ce", 0.5, 1) / digest[:12]
    caplog.set_level(logging.INFO, logger="mlml_tf")
    kwargs = dict(epochs=1, verbose=0, config_overrides={"batch_size": 8})
    with folder_lock(held) as got:
        assert got
        counts = run_cells(root / "data", tmp_path / "out", cache, cells, **kwargs)
        assert counts == {"trained": 1, "already_complete": 0, "running_elsewhere": 1}
        assert any(str(held) in m and "being trained by another process" in m
                   for m in caplog.messages)
        assert sorted(p.name for p in held.iterdir()) == [".lock"], "not touched"
    counts = run_cells(root / "data", tmp_path / "out", cache, cells, **kwargs)
    assert counts == {"trained": 1, "already_complete": 1, "running_elsewhere": 0}
    assert (held / COMPLETE).exists()


# ---------------------------------------------------------------------------------- processes


@pytest.fixture(scope="module")
def coco_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("concurrent")
    raw = make_coco_fixture(root / "raw", n_images=48, seed=2)
    assert main(["prepare", "coco", "--annotations", str(raw["annotations"]),
                 "--out", str(root / "data"), "--min-labels", "2"]) == 0
    assert main(["split", str(root / "data"), "--folds", "2", "--ratios", "0", "0.5"]) == 0
    args = ["run", "--data", root / "data", "--images", raw["images"], "--backbone", "VGG16",
            "--weights", "none", "--image-size", "32", "--batch-size", "2", "--epochs", EPOCHS,
            "--methods", "ce", "cb-wce", "--ratios", "0", "0.5", "--folds", "1"]
    return root, args


def waiting_for(lock_file: Path) -> set[int]:
    """Processes blocked on the flock of ``lock_file``, from Linux's /proc/locks."""
    inode = lock_file.stat().st_ino
    waiting = set()
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if len(fields) > 6 and fields[1] == "->" and int(fields[6].split(":")[-1]) == inode:
            waiting.add(int(fields[5]))
    return waiting


def prebuilt_cache(coco_data, out: Path) -> Path:
    """The feature cache ``mlml-tf run`` would build under ``out``, built in this process."""
    from mlml_tf.features.extract import cache_for_data_folder

    root, args = coco_data
    images = Path(args[args.index("--images") + 1])
    options = GridOptions(images=images, backbone="VGG16", weights="none", image_size=32,
                          batch_size=2)
    return cache_for_data_folder(root / "data", out / "features", options).folder


def run_together(logs: list[Path], commands: list[list], gate: Path | None = None) -> list[str]:
    """Start every command at once; wait for all; return their outputs (stdout and stderr).

    With ``gate`` (a folder whose lock every command takes on its way), the lock is held here
    until every command waits for it, so that all of them go on from the same moment.
    """
    procs = []
    try:
        with folder_lock(gate) if gate else contextlib.nullcontext():
            for log, command in zip(logs, commands, strict=True):
                with open(log, "w") as out:
                    procs.append(subprocess.Popen(
                        [sys.executable, "-m", "mlml_tf.cli", *map(str, command)],
                        stdout=out, stderr=subprocess.STDOUT, env=ENV))
            deadline = time.monotonic() + 300
            while gate and waiting_for(gate / ".lock") != {p.pid for p in procs}:
                assert all(p.poll() is None for p in procs), "a process ended before the gate"
                assert time.monotonic() < deadline, "the processes never reached the gate"
                time.sleep(0.05)
        for proc in procs:
            proc.wait(timeout=600)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    texts = [log.read_text(errors="replace") for log in logs]
    for proc, text in zip(procs, texts, strict=True):
        assert proc.returncode == 0, text[-3000:]
    return texts


def summary(text: str) -> dict[str, int]:
    (match,) = SUMMARY.findall(text)
    return {"runs": int(match[2]), "trained": int(match[3]), "already_complete": int(match[4]),
            "running_elsewhere": int(match[5])}


def check_each_run_done_once(out: Path) -> None:
    for method, ratio, fold in CELLS:
        folders = [d for d in (out / experiment_name(method, ratio, fold)).iterdir()
                   if d.is_dir()]
        assert len(folders) == 1, folders
        run = folders[0]
        complete = json.loads((run / COMPLETE).read_text())
        metrics = json.loads((run / "metrics.json").read_text())
        assert run.name == complete["settings_sha256"][:12]
        assert metrics["extra"]["settings_sha256"] == complete["settings_sha256"]
        assert complete["metrics"] == metrics["metrics"]
        log = pd.read_csv(run / "training_log.csv")
        assert log["epoch"].tolist() == list(range(EPOCHS)), "trained once, not twice"
        pd.read_csv(run / "results_report.csv")
        assert np.loadtxt(run / "predictions.out", delimiter=",").shape[0] == metrics[
            "metrics"]["n_samples"]
    assert list(out.rglob(".tmp.*")) == []


def test_two_shards_started_at_once_share_one_cache_and_split_the_grid(coco_data, tmp_path):
    root, args = coco_data
    out = tmp_path / "out"
    texts = run_together([tmp_path / "shard1.log", tmp_path / "shard2.log"],
                         [[*args, "--out", out, "--shard", f"{i}/2"] for i in (1, 2)])
    counts = [summary(t) for t in texts]
    assert counts == [{"runs": 2, "trained": 2, "already_complete": 0, "running_elsewhere": 0}] * 2
    check_each_run_done_once(out)
    (cache,) = [d for d in (out / "features").iterdir() if d.is_dir()]
    manifest = json.loads((cache / MANIFEST).read_text())
    truth = pd.read_csv(root / "data" / "groundtruth.csv", dtype=str, index_col=0)
    assert manifest["ids"] == list(truth.index)
    assert np.load(cache / FEATURES).shape == (len(truth), 1, 1, 512)
    built = [t for t in texts if "features:" in t]
    assert len(built) == 1, "one process computed the features, the other waited and reused them"
    assert sorted(p.name for p in cache.iterdir()) == [".lock", MANIFEST, FEATURES]


def test_the_same_grid_started_twice_at_once_trains_each_run_once(coco_data, tmp_path):
    root, args = coco_data
    out = tmp_path / "out"
    # A finished feature cache, whose lock both processes take before their first run: held
    # here until both wait for it, it lets them reach the first run at the same moment.
    cache = prebuilt_cache(coco_data, out)
    texts = run_together([tmp_path / "a.log", tmp_path / "b.log"],
                         [[*args, "--out", out]] * 2, gate=cache)
    counts = [summary(t) for t in texts]
    assert sum(c["trained"] for c in counts) == len(CELLS), counts
    for c in counts:
        assert c["runs"] == c["trained"] + c["already_complete"] + c["running_elsewhere"]
    # One trains the first run, the other finds it locked and leaves it.
    assert sum(c["running_elsewhere"] for c in counts) >= 1, counts
    assert sum("being trained by another process, left to it" in t for t in texts) >= 1
    check_each_run_done_once(out)
    assert not any("features:" in t for t in texts), "the finished cache was reused"
