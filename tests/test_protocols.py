"""The protocols of docs/methods.md section 2 on real COCO labels, and their files beside the
paper's.
"""

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from mlml_tf.cli.main import main
from mlml_tf.errors import DataError
from mlml_tf.files.layout import read_run_labels, write_groundtruth
from mlml_tf.files.protocols import protocol_files, read_protocol_labels
from mlml_tf.files.split import split, split_protocol, verify
from mlml_tf.files.tables import read_table
from mlml_tf.labels.missing import fixed_per_class, random_per_sample, single_positive


@pytest.fixture(scope="module")
def labels(coco_labels):
    return coco_labels[:4000]


def test_rps_hides_each_entry_with_probability_r_positive_or_negative(labels):
    out = random_per_sample(labels, 0.5, seed=3)
    unknown = out == -1
    assert abs(unknown[labels == 1].mean() - 0.5) < 0.02
    assert abs(unknown[labels == 0].mean() - 0.5) < 0.01
    assert (out[~unknown] == labels[~unknown]).all(), "kept entries keep their label"
    assert (random_per_sample(labels, 0.25, seed=3) == -1)[~unknown].sum() == 0, \
        "nested: what 0.25 hides, 0.5 hides too"
    assert np.array_equal(out, random_per_sample(labels, 0.5, seed=3))


def test_fpc_keeps_n_positives_and_n_negatives_per_class(labels):
    out = fixed_per_class(labels, 100, seed=1)
    positives, negatives = labels.sum(0), (1 - labels).sum(0)
    np.testing.assert_array_equal((out == 1).sum(0), np.minimum(100, positives))
    np.testing.assert_array_equal((out == 0).sum(0), np.minimum(100, negatives))
    kept = out != -1
    assert (out[kept] == labels[kept]).all()
    assert ((fixed_per_class(labels, 50, seed=1) != -1) <= kept).all(), "nested across counts"


def test_single_positive_keeps_one_of_each_rows_positives(labels):
    out = single_positive(labels, seed=2)
    assert ((out == 1).sum(1) == 1).all() and ((out == 0).sum() == 0)
    assert (labels[out == 1] == 1).all()
    chosen = np.argmax(out == 1, axis=1)
    first = labels.argmax(1)
    assert (chosen != first).mean() > 0.3, "uniform among the row's positives, not the first"
    empty = labels[:5].copy()
    empty[3] = 0
    with pytest.raises(DataError, match="row 3 has no positive"):
        single_positive(empty)


@pytest.fixture(scope="module")
def folder(tmp_path_factory, coco_reference):
    root = tmp_path_factory.mktemp("protocols")
    frame = coco_reference.drop(columns="fold").iloc[:2000].astype(np.uint8)
    write_groundtruth(root, frame)
    split(root, ratios=[0.0, 0.5], seed=4)
    return root, frame


def test_protocols_are_written_beside_the_paper_layout_on_its_folds(folder):
    root, frame = folder
    before = json.loads((root / "manifest.json").read_text())["split"]["checksums"]
    split_protocol(root, "rps", [0.5], seed=4)
    split_protocol(root, "fpc", [30], seed=4)
    manifest = split_protocol(root, "single-positive", seed=4)
    assert manifest["split"]["checksums"] == before, "the paper's layout is unchanged"
    for rel, digest in before.items():
        assert hashlib.sha256((root / rel).read_bytes()).hexdigest() == digest
    assert set(manifest["protocols"]) == {"rps0.5", "fpc30", "single_positive"}
    assert verify(root) == []
    for k in (1, 2, 3, 4):
        paper = read_run_labels(root, 0.5, k)
        for protocol, value in (("rps", 0.5), ("fpc", 30), ("single-positive", None)):
            files = read_protocol_labels(root, protocol, value, k)
            assert list(files["train"].index) == list(paper["train"].index)
            pd.testing.assert_frame_equal(files["test"], paper["test"])
            known = files["train"].to_numpy() != -1
            truth = frame.loc[files["train"].index].to_numpy()
            assert (files["train"].to_numpy()[known] == truth[known]).all()
        assert manifest["protocols"]["fpc30"]["counts"][str(k)]["positive"] == int(
            np.minimum(30, truth.sum(0)).sum())


def test_protocol_files_are_byte_identical_for_the_same_seed(folder, tmp_path):
    root, frame = folder
    write_groundtruth(tmp_path, frame)
    split(tmp_path, ratios=[0.0, 0.5], seed=4)
    split_protocol(tmp_path, "rps", [0.5], seed=4)
    split_protocol(root, "rps", [0.5], seed=4)
    for k in (1, 4):
        for name in ("train", "test"):
            a, b = (protocol_files(r, "rps", 0.5, k)[name].read_bytes() for r in (root, tmp_path))
            assert a == b


def test_a_protocol_on_other_folds_than_the_papers_is_refused(folder):
    root, _ = folder
    with pytest.raises(DataError, match="other folds"):
        split_protocol(root, "rps", [0.5], seed=5)


def test_unknown_entries_are_refused_in_the_original_layout_and_odd_values_in_partial_files(
        folder, tmp_path):
    root, _ = folder
    train = protocol_files(root, "rps", 0.5, 1)["train"]
    text = train.read_text().splitlines()
    bad = tmp_path / "train1_0.5.csv"
    bad.write_text("\n".join(text[:3]) + "\n")
    with pytest.raises(DataError, match="no unknown entry") as info:
        read_table(bad, "labels")
    assert info.value.row is not None and info.value.column is not None
    cells = text[2].split(",")
    cells[3] = "2"
    bad.write_text("\n".join([*text[:2], ",".join(cells)]) + "\n")
    with pytest.raises(DataError, match=r"value '2' is not 1, 0 or -1") as info:
        read_table(bad, "partial")
    assert info.value.row == 3 and info.value.column == text[0].split(",")[3]


def test_split_protocol_from_the_command_line(folder, capsys):
    root, _ = folder
    assert main(["split", str(root), "--seed", "4", "--protocol", "fpc", "--count", "40"]) == 0
    assert "fpc40 fold 1:" in capsys.readouterr().out
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["protocols"]["fpc40"]["value"] == 40
