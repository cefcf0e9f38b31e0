"""Interruptions: ``mlml-tf split`` and ``mlml-tf run`` killed (SIGKILL) at seeded random moments,
then run again, end exactly where an uninterrupted run ends, leave no temporary file and never
show a half-written result.

``mlml-tf run`` works on a small COCO-format data set of real photographs with a random-weight
VGG16 at 32 x 32 pixels. (A random-weight MobileNetV2 gives features of about 1e-11 at that size,
which the float16 feature cache stores as exact zeros: every image would look the same and an
equality check would prove little.) TensorFlow on CPU is deterministic here without any flag:
test_reproducibility.py checks that two uninterrupted runs agree bit for bit.
"""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures import make_coco_fixture, tree_digests

from mlml_tf.cli.main import main
from mlml_tf.files.layout import write_groundtruth
from mlml_tf.files.split import split
from mlml_tf.files.tables import read_table
from mlml_tf.runs.outputs import (
    EVALUATION_EXTRA,
    GROUND_TRUTH,
    METRICS,
    PREDICTIONS,
    REPORT,
    REPORT_EXTRA,
)

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="-1")
EPOCHS = 5
RESULT_FILES = (PREDICTIONS, GROUND_TRUTH, REPORT, "evaluation_results.txt", REPORT_EXTRA,
                EVALUATION_EXTRA, METRICS, "complete.json")


class BrokenBackup(AssertionError):
    """A resumed run could not read the checkpoint that a killed attempt was writing."""


BACKUP_NOT_ATOMIC = (
    "the checkpoint in backup/ was left truncated by a killed attempt, so the next attempt "
    "could not restore it"
)


def modified_since(path: Path, moment: float) -> bool:
    try:
        return path.stat().st_mtime > moment
    except FileNotFoundError:
        return False


def temporaries(root: Path) -> list[str]:
    return [p.as_posix() for p in root.rglob(".tmp.*")]


def start(log: Path, *args) -> subprocess.Popen:
    out = open(log, "w")
    try:
        return subprocess.Popen([sys.executable, "-m", "mlml_tf.cli", *map(str, args)],
                                stdout=out, stderr=subprocess.STDOUT, env=ENV)
    finally:
        out.close()


def kill_when(proc: subprocess.Popen, ready, delay: float = 0.0, timeout: float = 180) -> bool:
    """SIGKILL ``proc`` ``delay`` seconds after ``ready()`` holds; False if it ended first."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and not ready():
        assert time.monotonic() < deadline, "the moment to interrupt never came"
        time.sleep(0.002)
    end = time.monotonic() + delay
    while proc.poll() is None and time.monotonic() < end:
        time.sleep(0.002)
    if proc.poll() is not None:
        return False
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return True


def finish(proc: subprocess.Popen, log: Path, timeout: float = 300) -> str:
    """Wait for ``proc``; raise BrokenBackup or AssertionError if it failed."""
    try:
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    text = log.read_text(errors="replace")
    if proc.returncode != 0 and ("OSError: Unable to" in text or "truncated file" in text):
        raise BrokenBackup(f"{BACKUP_NOT_ATOMIC}\n{text[-1500:]}")
    assert proc.returncode == 0, text[-3000:]
    return text


# ---------------------------------------------------------------------------------- split


def test_split_killed_at_random_moments_then_rerun_is_identical(tmp_path):
    rng = np.random.default_rng(7)
    n, c = 5_000, 40
    labels = pd.DataFrame((rng.random((n, c)) < rng.uniform(0.02, 0.3, c)).astype(np.uint8),
                          index=[str(i) for i in range(n)], columns=[f"c{j}" for j in range(c)])
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    for root in (ref, killed):
        write_groundtruth(root, labels)
    initial_manifest = (killed / "manifest.json").read_bytes()
    # The same seed gives the same bytes in any process (test_reproducibility.py, test_layout.py)
    split(ref, seed=5)
    args = ["split", "--seed", "5"]
    reference = tree_digests(ref)
    counts = json.loads((ref / "manifest.json").read_text())["split"]["counts"]
    train_sizes = {c["train"] for c in counts.values()}

    chance = random.Random(11)
    kills = 0
    for attempt in range(4):
        began = time.time()
        # The first attempt dies at a random moment of its first second and a half (imports,
        # folds); the others after a random number of files of this attempt have appeared.
        written = 0 if attempt == 0 else chance.randint(1, len(reference) - 6)

        def enough_written(began=began, written=written):
            return written == 0 or sum(
                modified_since(p, began) for p in killed.glob("missing_labels*/[!.]*.csv")
            ) >= written

        proc = start(tmp_path / f"k{attempt}.log", args[0], killed, *args[1:])
        kills += kill_when(proc, enough_written,
                           chance.uniform(0.2, 1.5) if attempt == 0 else 0.0)
        for rel, digest in tree_digests(killed).items():
            if Path(rel).name.startswith(".tmp."):
                continue
            if rel == "manifest.json" and digest != reference[rel]:
                assert (killed / rel).read_bytes() == initial_manifest, "a half-made manifest"
                continue
            if Path(rel).name.startswith("positive_weights") and digest != reference[rel]:
                # Rewritten for every fold, the last one wins (docs/original.md section 3): an
                # earlier fold's file.
                weights = pd.read_csv(killed / rel)
                assert (weights == 1).all().all() and len(weights) in train_sizes, rel
                continue
            # Every file a reader can see is complete: the very bytes of the finished split.
            assert digest == reference[rel], f"{rel} is visible but not complete"
    assert kills >= 3, "the split ended before most kills: nothing was interrupted"
    finish(start(tmp_path / "final.log", args[0], killed, *args[1:]), tmp_path / "final.log")
    assert tree_digests(killed) == reference
    assert temporaries(killed) == []
    read_table(killed / "missing_labels0.8" / "train4_0.8.csv")


# ---------------------------------------------------------------------------------- run


@pytest.fixture(scope="module")
def coco_data(tmp_path_factory):
    """A prepared and split COCO-format data set and one uninterrupted run of it."""
    root = tmp_path_factory.mktemp("interrupt")
    raw = make_coco_fixture(root / "raw", n_images=80, seed=1)
    assert main(["prepare", "coco", "--annotations", str(raw["annotations"]),
                 "--out", str(root / "data"), "--min-labels", "2"]) == 0
    assert main(["split", str(root / "data"), "--folds", "2", "--ratios", "0", "0.5"]) == 0
    args = ["run", "--data", root / "data", "--images", raw["images"], "--backbone", "VGG16",
            "--weights", "none", "--image-size", "32", "--batch-size", "2",
            "--epochs", EPOCHS, "--methods", "cb-wce", "--ratios", "0.5", "--folds", "1",
            "--backup-minutes", "0"]
    log = root / "reference.log"
    finish(start(log, *args, "--out", root / "reference"), log)
    (run_dir,) = (root / "reference").glob("CORRELATION_*/*")
    return {"root": root, "args": args, "reference": run_dir}


def run_folder(out: Path, experiments: str = "CORRELATION_*") -> Path | None:
    found = list(out.glob(f"{experiments}/*"))
    return found[0] if found else None


def training_epochs(out: Path) -> int:
    folder = run_folder(out)
    log = folder / "training_log.csv" if folder else None
    return max(0, len(log.read_text().splitlines()) - 1) if log and log.exists() else 0


def check_nothing_half_written(out: Path) -> None:
    """Every CSV parses; a run folder either lacks complete.json or holds every result."""
    for path in out.rglob("*.csv"):
        if not path.name.startswith(".tmp."):
            pd.read_csv(path)
    folder = run_folder(out)
    if folder is not None and (folder / "complete.json").exists():
        for name in RESULT_FILES:
            assert (folder / name).is_file(), name
        json.loads((folder / METRICS).read_text())
        np.loadtxt(folder / PREDICTIONS, delimiter=",")


def check_same_result(out: Path, reference: Path, experiments: str = "CORRELATION_*") -> None:
    folder = run_folder(out, experiments)
    assert folder.relative_to(out) == reference.relative_to(reference.parent.parent), \
        "same settings, same run folder"
    for name in RESULT_FILES:
        assert (folder / name).read_bytes() == (reference / name).read_bytes(), name
    # A resumed attempt appends the epochs it trains: each one as the uninterrupted run saw it.
    ours = pd.read_csv(folder / "training_log.csv")
    theirs = pd.read_csv(reference / "training_log.csv").set_index("epoch")
    assert ours["epoch"].max() == EPOCHS - 1
    for _, row in ours.iterrows():
        assert row["loss"] == theirs.loc[row["epoch"], "loss"], row["epoch"]
    assert not (folder / "backup").exists()
    assert temporaries(out) == []


def test_run_killed_at_random_moments_resumes_to_the_same_result(coco_data, tmp_path):
    out = tmp_path / "out"
    args = [*coco_data["args"], "--out", out]
    chance = random.Random(3)
    # 1: anywhere in the first seconds (imports, backbone, feature cache);
    # 2, 3: in training, after this attempt finished an epoch (maybe while writing its backup);
    # 4: while the trained head is being written, after training.
    moments = ["start", "training", "training", "head"]
    killed = []
    for attempt, moment in enumerate(moments):
        log = tmp_path / f"attempt{attempt}.log"
        proc = start(log, *args)
        if moment == "start":
            done = kill_when(proc, lambda: True, chance.uniform(1.0, 8.0))
        elif moment == "training":
            seen = training_epochs(out)
            done = kill_when(proc, lambda s=seen: training_epochs(out) > s,
                             chance.uniform(0.0, 0.8))
        else:
            done = kill_when(proc, lambda: bool(run_folder(out) and list(
                run_folder(out).glob(".tmp.*head.weights.h5"))))
        if not done:
            finish(proc, log)
        killed.append(done)
        check_nothing_half_written(out)
        if moment == "training" and done:
            assert not (run_folder(out) / "complete.json").exists()
    assert killed.count(True) >= 3, killed
    log = tmp_path / "final.log"
    finish(start(log, *args), log)
    check_nothing_half_written(out)
    check_same_result(out, coco_data["reference"])


def test_run_killed_while_writing_its_backup_resumes(coco_data, tmp_path):
    out = tmp_path / "out"
    args = [*coco_data["args"], "--out", out]
    # The feature cache of the reference run is reused: only training matters here.
    shutil.copytree(coco_data["reference"].parent.parent / "features", out / "features")
    # A checkpoint written atomically appears complete: the first one gives the full size.
    complete = []

    def rewriting_backup():
        folder = run_folder(out)
        sizes = []
        for path in (folder / "backup").glob("*.weights.h5") if folder else ():
            try:
                sizes.append((path.name, path.stat().st_size))
            except FileNotFoundError:
                pass
        if not complete:
            complete.extend(n for name, n in sizes if name == "latest.weights.h5")
            return False
        # A checkpoint is there; now another one is being written (in place or beside it).
        return any(n < complete[0] for _, n in sizes)

    log = tmp_path / "attempt.log"
    proc = start(log, *args)
    assert kill_when(proc, rewriting_backup), "training ended before its backup was rewritten"
    log = tmp_path / "final.log"
    finish(start(log, *args), log)
    check_nothing_half_written(out)
    check_same_result(out, coco_data["reference"])


def test_runs_side_by_side_killed_in_training_resume_to_their_results(coco_data, tmp_path):
    # The runs of one fold and ratio share their training rows: one model, a head each. Among
    # them, ROLE's label estimator, LL-Cp's flipped labels and PL-Shrink's pseudo-labels are
    # state of the model that a SIGKILL must not lose: each resumed run equals the
    # uninterrupted one.
    args = list(coco_data["args"])
    methods = args.index("--methods")
    args[methods + 1 : methods + 2] = ["ce", "cb-wce", "role", "ll-cp", "pl-shrink"]
    args += ["--set", "ll-cp.delta=0.2", "--set", "pl-shrink.settle_margin=0.3"]
    experiments = ("PosLimited_original_*", "CORRELATION_*", "role_*", "ll-cp_*", "pl-shrink_*")
    features = coco_data["reference"].parent.parent / "features"
    reference = tmp_path / "reference"
    shutil.copytree(features, reference / "features")
    log = tmp_path / "reference.log"
    assert "training these 5 runs side by side" in finish(
        start(log, *args, "--out", reference), log)
    out = tmp_path / "out"
    shutil.copytree(features, out / "features")
    log = tmp_path / "attempt.log"
    proc = start(log, *args, "--out", out)
    first = run_folder(reference, "PosLimited_original_*").relative_to(reference)

    def checkpointed():
        return list((out / first).glob("backup-together-*/latest.weights.h5")) != []

    assert kill_when(proc, checkpointed, random.Random(5).uniform(0.0, 0.5)), \
        "training ended before its first checkpoint"
    for pattern in experiments:
        assert not (run_folder(out, pattern) / "complete.json").exists()
    log = tmp_path / "final.log"
    finish(start(log, *args, "--out", out), log)
    for pattern in experiments:
        check_same_result(out, run_folder(reference, pattern), pattern)
    assert list(out.rglob("backup*")) == [], "the checkpoint is gone once the heads are written"
