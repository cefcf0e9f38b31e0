"""The offline demo: digit mosaics that are real images with the declared, correlated labels,
and the whole protocol end to end on them (quick version)."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures import tree_digests
from PIL import Image

from mlml_tf.datasets.digits import (
    CANVAS,
    CELL,
    CLASS_NAMES,
    GLYPH,
    GRID,
    JITTER,
    MAX_DIGITS,
    MIN_DIGITS,
    MIN_LABELS,
    PAPER,
    SCENES,
    digit_split,
    glyphs,
    make_digit_mosaics,
    write_digit_dataset,
)
from mlml_tf.errors import DataError
from mlml_tf.files.layout import read_groundtruth
from mlml_tf.files.split import split


def _windows(image: np.ndarray):
    """Every (cell, shift, 14 x 14 window) of a grey mosaic where a glyph may sit."""
    for cell in range(GRID * GRID):
        top, left = (cell // GRID) * CELL, (cell % GRID) * CELL
        for dy, dx in itertools.product(range(JITTER + 1), repeat=2):
            yield cell, (dy, dx), image[top + dy : top + dy + GLYPH, left + dx : left + dx + GLYPH]


def _occupied_cells(image: np.ndarray) -> list[int]:
    """Cells holding ink, read from the pixels (a glyph darkens at least 10 pixels)."""
    cells = []
    for cell in range(GRID * GRID):
        top, left = (cell // GRID) * CELL, (cell % GRID) * CELL
        if (image[top : top + CELL, left : left + CELL] < PAPER // 2).sum() >= 10:
            cells.append(cell)
    return cells


@pytest.fixture(scope="module")
def mosaics():
    images, labels = make_digit_mosaics(120, seed=5)
    return images, labels


def test_mosaics_are_grey_rgb_images_of_4_to_6_digits(mosaics):
    images, labels = mosaics
    assert images.shape == (120, CANVAS, CANVAS, 3) and images.dtype == np.uint8
    assert (images[..., 0] == images[..., 1]).all() and (images[..., 1] == images[..., 2]).all()
    counts = [len(_occupied_cells(im[..., 0])) for im in images]
    assert min(counts) >= MIN_DIGITS and max(counts) <= MAX_DIGITS
    assert set(counts) == set(range(MIN_DIGITS, MAX_DIGITS + 1))
    assert list(labels.columns) == list(CLASS_NAMES)
    assert labels.index[0] == "000000" and labels.index.is_unique
    n_labels = labels.to_numpy().sum(axis=1)
    assert n_labels.min() >= MIN_LABELS
    # a label per distinct digit, never more labels than digits drawn
    assert (n_labels <= np.array(counts)).all()


def test_label_set_is_the_set_of_glyphs_painted_from_the_mosaic_half(mosaics):
    images, labels = mosaics
    pretraining, mosaic = digit_split(5)
    ink, digits = glyphs()
    bank = {(PAPER - g).tobytes(): i for i, g in enumerate(ink)}
    mosaic_set = set(mosaic.tolist())
    for image, (_, row) in zip(images, labels.iterrows(), strict=True):
        grey = image[..., 0]
        found = {}
        for cell, _, window in _windows(grey):
            glyph = bank.get(np.ascontiguousarray(window).tobytes())
            if glyph is not None:
                found[cell] = glyph
        assert sorted(found) == _occupied_cells(grey)
        assert all(g in mosaic_set for g in found.values()), "a pretraining glyph in a mosaic"
        shown = {CLASS_NAMES[digits[g]] for g in found.values()}
        assert shown == set(row.index[row.to_numpy() == 1])


def test_a_classifier_trained_on_the_other_half_reads_the_declared_digits(mosaics):
    """Independent of how mosaics are drawn: an SVM on the raw 8 x 8 pretraining glyphs names
    the digit of each occupied cell (best of the 9 shifts, downscaled back to 8 x 8)."""
    from sklearn.datasets import load_digits
    from sklearn.svm import SVC

    images, labels = mosaics
    data = load_digits()
    pretraining, _ = digit_split(5)
    svm = SVC(gamma=0.001).fit(data.data[pretraining], data.target[pretraining])
    exact = 0
    for image, (_, row) in zip(images, labels.iterrows(), strict=True):
        grey = image[..., 0]
        occupied = set(_occupied_cells(grey))
        read = {}
        for cell, _, window in _windows(grey):
            if cell not in occupied:
                continue
            small = np.asarray(Image.fromarray((PAPER - window).astype(np.float32), mode="F")
                               .resize((8, 8), Image.BILINEAR)) * (16.0 / 255.0)
            score = svm.decision_function(small.reshape(1, -1))[0]
            if cell not in read or score.max() > read[cell][0]:
                read[cell] = (score.max(), int(score.argmax()))
        declared = {CLASS_NAMES.index(c) for c in row.index[row.to_numpy() == 1]}
        exact += {d for _, d in read.values()} == declared
    assert exact / len(images) >= 0.8


def test_positive_labels_co_occur_by_scene():
    _, labels, scenes = make_digit_mosaics(3000, seed=1, return_scenes=True)
    y = labels.to_numpy().astype(np.float64)
    scenes = np.array(scenes)
    for name, scene in SCENES.items():
        rate = y[scenes == name].mean(axis=0)
        others = np.setdiff1d(np.arange(10), scene["favoured"])
        assert rate[list(scene["favoured"])].min() > 2 * rate[others].max()
        assert abs((scenes == name).mean() - scene["share"]) < 0.03
    freq = y.mean(axis=0)
    lift = (y.T @ y / len(y)) / np.outer(freq, freq)
    favoured = [tuple(s["favoured"]) for s in SCENES.values()]
    same = [lift[a, b] for f in favoured for a, b in itertools.combinations(f, 2)]
    scene_of = {d: k for k, f in enumerate(favoured) for d in f}
    cross = [lift[a, b] for a, b in itertools.combinations(range(10), 2)
             if scene_of.get(a, -1) != scene_of.get(b, -2)]
    # a pair of the same scene co-occurs far more often than independence says, others less
    assert min(same) > 1.25 and max(cross) < 0.9
    assert np.mean(same) > 2 * np.mean(cross)


def test_same_seed_gives_byte_identical_files(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for root, seed in ((a, 3), (b, 3), (c, 4)):
        write_digit_dataset(root, 24, seed=seed)
        split(root, n_folds=4, seed=seed)
    files = tree_digests(a)
    assert files == tree_digests(b)
    assert "images/000023.png" in files and "missing_labels0.8/train4_0.8.csv" in files
    assert files["groundtruth.csv"] != tree_digests(c)["groundtruth.csv"]
    listing = pd.read_csv(a / "images.csv", dtype=str)
    assert list(listing.columns) == ["id", "file"]
    assert list(listing["id"]) == list(read_groundtruth(a).index)
    first = np.asarray(Image.open(a / listing["file"][0]))
    assert first.shape == (CANVAS, CANVAS, 3)
    assert (first == make_digit_mosaics(24, seed=3)[0][0]).all()


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    from mlml_tf.apps.demo import run_demo

    out = tmp_path_factory.mktemp("demo")
    return out, run_demo(out, quick=True, seed=0)


@pytest.mark.slow
def test_quick_demo_writes_table_figures_and_every_run(quick_demo):
    from mlml_tf.apps.demo import QUICK
    from mlml_tf.runs.outputs import METRICS, PREDICTIONS

    out, result = quick_demo
    cells = 3 * len(QUICK.ratios) * len(QUICK.folds)
    assert result["counts"]["trained"] == cells
    runs = result["runs"]
    assert len(runs) == cells and set(runs["method"]) == {"ce", "im-wce", "cb-wce"}
    for run_dir in runs["run_dir"]:
        assert (Path(run_dir) / PREDICTIONS).is_file() and (Path(run_dir) / METRICS).is_file()
    text = (out / "results.md").read_text()
    assert "| CB-WCE | 0.5 |" in text and "ROC-AUC" in text
    assert result["markdown"] in text
    summary = pd.read_csv(out / "results.csv")
    assert len(summary) == 3 * len(QUICK.ratios) and "roc_auc_micro_mean" in summary
    for name in ("figure1_boxplots.png", "figure3_true_positives.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the backbone learned digits it never saw, and every head learned something
    assert result["backbone"]["held_out_accuracy"] > 0.8
    assert (runs["roc_auc_micro"] > 0.6).all()


@pytest.mark.slow
def test_quick_demo_labels_are_reproducible(quick_demo, tmp_path):
    from mlml_tf.apps.demo import QUICK

    out, _ = quick_demo
    write_digit_dataset(tmp_path, QUICK.n_images, seed=0)
    split(tmp_path, n_folds=4, seed=0)
    assert tree_digests(tmp_path) == tree_digests(out / "data")


@pytest.mark.slow
def test_quick_demo_resumes_without_training_again(quick_demo, caplog):
    from mlml_tf.apps.demo import run_demo

    out, first = quick_demo
    features = out / "features" / "features.npy"
    written = features.stat().st_mtime_ns
    caplog.set_level(logging.INFO, logger="mlml_tf")
    again = run_demo(out, quick=True, seed=0)
    assert again["counts"]["trained"] == 0
    assert again["counts"]["already_complete"] == first["counts"]["trained"]
    assert again["backbone"]["weights_sha256"] == first["backbone"]["weights_sha256"]
    assert any(m.startswith("backbone: reused") for m in caplog.messages), "not pretrained again"
    assert features.stat().st_mtime_ns == written, "the features are not computed again"
    pd.testing.assert_frame_equal(again["table"], first["table"])


@pytest.mark.slow
def test_a_backbone_taken_from_another_demo_folder_gives_its_table(quick_demo, tmp_path,
                                                                   capsys):
    from mlml_tf.apps.demo_backbone import BACKBONE_FILE, BACKBONE_INFO, pretrained_backbone
    from mlml_tf.cli.main import main

    out, first = quick_demo
    other = tmp_path / "other"
    assert main(["demo", "--quick", "--out", str(other), "--backbone-from", str(out)]) == 0
    assert "\nbackbone: reused " in capsys.readouterr().out, "not pretrained again"
    assert (other / BACKBONE_INFO).read_bytes() == (out / BACKBONE_INFO).read_bytes()
    assert (other / "results.csv").read_bytes() == (out / "results.csv").read_bytes()
    # The README's backbones: the quick one is taken, for the full demo it is refused.
    shipped = Path(__file__).resolve().parents[1] / "docs" / "demo_backbone"
    _, info = pretrained_backbone(tmp_path / "quick", 2, 4, 0, shipped / "quick")
    assert info["held_out_accuracy"] > 0.8
    _, info = pretrained_backbone(tmp_path / "full", 3, 8, 0, shipped / "full")
    assert info["held_out_accuracy"] > 0.9
    with pytest.raises(DataError, match="where this demo pretrains with") as err:
        pretrained_backbone(tmp_path / "q", 3, 8, 0, shipped / "quick")
    assert err.value.file.endswith(BACKBONE_INFO)
    with pytest.raises(DataError, match="file not found"):
        pretrained_backbone(tmp_path / "q", 2, 4, 0, tmp_path / "nowhere")
    code = main(["demo", "--out", str(tmp_path / "refused"), "--backbone-from", str(out)])
    assert code == 2 and "where this demo pretrains with" in capsys.readouterr().err
    assert not (tmp_path / "refused").exists(), "nothing written"
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / BACKBONE_INFO).write_bytes((out / BACKBONE_INFO).read_bytes())
    (broken / BACKBONE_FILE).write_bytes((shipped / "full" / BACKBONE_FILE).read_bytes())
    with pytest.raises(DataError, match="not those backbone.json names"):
        pretrained_backbone(tmp_path / "q", 2, 4, 0, broken)


@pytest.mark.slow
def test_quick_demo_compares_the_fields_methods_under_three_protocols(quick_demo):
    from mlml_tf.apps.demo import COMPARISON, run_demo

    out, first = quick_demo
    result = run_demo(out, quick=True, seed=0, methods=["asl", "epr"])
    assert result["counts"]["trained"] == 0, "the paper's grid is reused"
    table = result["comparison"]
    assert {(p, None if np.isnan(r) else r) for p, _, r in table.index} == set(COMPARISON)
    assert set(table.index.get_level_values(1)) == {"ce", "im-wce", "cb-wce", "asl", "epr"}
    assert len(table) == 5 * len(COMPARISON)
    assert (table[("map", "mean")] > 30).all() and (table[("map", "mean")] <= 100).all()
    text = (out / "methods.md").read_text()
    assert "| rps | ASL | 0.5 |" in text and "| single-positive | EPR | - |" in text
    assert (out / "figure_methods.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pd.testing.assert_frame_equal(result["table"], first["table"])
