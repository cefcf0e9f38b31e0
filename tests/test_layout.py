"""Files of the original layout: the published ones are read unchanged, ours are the same shape."""

import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from fixtures import tree_digests

from mlml_tf import DataError, read_run_labels, read_table
from mlml_tf.files.layout import ratio_folder, read_manifest, run_files, write_groundtruth
from mlml_tf.files.split import split, verify
from mlml_tf.files.tables import table_bytes

PUBLISHED = ["train1_0.5.csv", "negative_weights1_0.5.csv", "test1_0.5.csv"]


@pytest.mark.parametrize("data", ["labels_balanced_4labels", "labels_balanced_nus"])
@pytest.mark.parametrize("name", PUBLISHED)
def test_published_files_read_and_write_back_byte_for_byte(reference_dir, data, name):
    path = reference_dir / data / "missing_labels0.5" / name
    kind = "weights" if name.startswith("negative") else "labels"
    frame = read_table(path, kind)
    assert frame.index[0] == path.read_text().split("\n")[1].split(",")[0]
    assert table_bytes(frame) == path.read_bytes()


@pytest.mark.parametrize(
    "data, truth", [("labels_balanced_4labels", "coco"), ("labels_balanced_nus", "nuswide")]
)
def test_published_fold_1_facts(reference_dir, request, data, truth):
    frame = request.getfixturevalue("coco_reference" if truth == "coco" else "nus_reference")
    files = read_run_labels(reference_dir / data, 0.5, 1)
    train, negative, test = files["train"], files["negative_weights"], files["test"]
    full = frame.drop(columns="fold")
    assert set(test.index) == set(frame.index[frame["fold"] == 1])
    complete = full.loc[train.index].to_numpy()
    hidden = complete - train.to_numpy()
    assert set(np.unique(hidden)) <= {0, 1}
    assert ((negative.to_numpy() == 0) == (hidden == 1)).all()
    n = complete.sum(axis=1)
    assert (hidden.sum(axis=1) == np.round(0.5 * n)).all()
    assert (files["positive_weights"] == 1).all()


def test_ratio_folder_and_file_names():
    assert [ratio_folder(r) for r in (0, 0.25, 0.5, 0.75)] == [
        "missing_labels0.0", "missing_labels0.2", "missing_labels0.5", "missing_labels0.8"]
    files = run_files("d", 0.25, 3)
    assert files["train"].as_posix() == "d/missing_labels0.2/train3_0.2.csv"
    assert files["negative_weights"].name == "negative_weights3_0.2.csv"
    assert files["positive_weights"].name == "positive_weights0.2.csv"
    assert files["test"].name == "test3_0.2.csv"
    assert run_files("d", 0.75, 1)["train"].as_posix() == "d/missing_labels0.8/train1_0.8.csv"


@pytest.fixture(scope="module")
def coco_split(tmp_path_factory, coco_reference):
    # A quarter of the published COCO rows: every class, every rounding case of the ratios.
    root = tmp_path_factory.mktemp("coco")
    labels = coco_reference.drop(columns="fold").astype(np.uint8).iloc[::4]
    write_groundtruth(root, labels, source={"dataset": "coco"})
    manifest = split(root, seed=0)
    return root, labels, manifest


def test_split_writes_the_original_layout(coco_split):
    root, labels, manifest = coco_split
    assert verify(root) == []
    assert len(manifest["split"]["checksums"]) == 4 * (3 * 4 + 1)
    full = labels.to_numpy()
    for r in (0.0, 0.25, 0.5, 0.75):
        tested = []
        for k in (1, 2, 3, 4):
            files = read_run_labels(root, r, k)
            train, test = files["train"], files["test"]
            assert len(train) + len(test) == len(labels)
            assert list(train.columns) == list(labels.columns)
            complete = full[labels.index.get_indexer(train.index)]
            hidden = complete - train.to_numpy()
            assert (hidden.sum(1) == np.round(r * complete.sum(1))).all()
            assert ((files["negative_weights"].to_numpy() == 0) == (hidden == 1)).all()
            assert (test.to_numpy() == full[labels.index.get_indexer(test.index)]).all()
            tested += list(test.index)
        assert sorted(tested) == sorted(labels.index)
        rows = sum(1 for _ in open(run_files(root, r, 1)["positive_weights"])) - 1
        assert rows == len(train), "as the original, the last fold's file wins"
    t1 = run_files(root, 0.0, 2)["test"].read_bytes()
    assert t1 == run_files(root, 0.75, 2)["test"].read_bytes(), "test files equal across ratios"
    assert manifest["classes"][0] == "person"
    assert manifest["split"]["ratio_folders"]["0.75"] == "missing_labels0.8"


def test_split_is_byte_identical_across_processes(tmp_path, coco_reference):
    labels = coco_reference.drop(columns="fold").astype(np.uint8).iloc[:6000]
    digests = []
    for name in ("a", "b"):
        root = tmp_path / name
        write_groundtruth(root, labels)
        subprocess.run(
            [sys.executable, "-m", "mlml_tf.cli", "split", str(root), "--seed", "11"],
            check=True, capture_output=True,
        )
        digests.append(tree_digests(root))
    assert digests[0] == digests[1]
    assert len(digests[0]) == 2 + 4 * 13


def _write(path, text):
    path.write_text(text)
    return path


GOOD = ",a,b,c\n1,0,1,0\n2,1,1,0\n3,0,0,1\n"


@pytest.mark.parametrize(
    "text, kind, message",
    [
        (",a,b,c\n1,0,1,0\n2,1,2,0\n", "labels", r"line 3, column 'b': value '2' is not 0 or 1"),
        (",a,b,c\n1,0,1,0\n2,1,,0\n", "labels", r"line 3, column 'b': an empty cell"),
        (",a,b,c\n1,0,1,0\n2,1,nan,0\n", "labels", r"line 3, column 'b': value 'nan'"),
        (",a,b,c\n1,0,1,0\n1,1,1,0\n", "labels", r"id '1' appears twice \(lines 2 and 3\)"),
        (",a,a,c\n1,0,1,0\n", "labels", r"line 1, column 'a': column name appears twice"),
        (",a,b,c\n", "labels", "header but no rows"),
        ("", "labels", "empty file"),
        (";a;b;c\n1;0;1;0\n", "labels", "no class column"),
        (",a,b,c\n1,0,1,0,1\n", "labels", "line 2: 5 fields where the header has 4"),
        (",a,b,c\n1,0,1,0\n2,0,1\n", "labels", "line 3: 3 fields where the header has 4"),
        (",a,b,c\n1,0,1.5,0\n", "weights", None),
        (",a,b,c\n1,0,-0.5,0\n", "weights", r"column 'b': value '-0.5' is not a number in"),
        (",a,b,c\n1,0,inf,0\n", "weights", r"column 'b': value 'inf'"),
    ],
)
def test_bad_tables_are_refused_with_file_line_and_column(tmp_path, text, kind, message):
    path = _write(tmp_path / "train1_0.5.csv", text)
    if message is None:
        message = "not a number in"
    with pytest.raises(DataError, match=message) as info:
        read_table(path, kind)
    assert str(path) in str(info.value)


def test_weights_file_must_match_its_labels_file(tmp_path):
    root = tmp_path
    folder = root / "missing_labels0.5"
    folder.mkdir()
    _write(folder / "train1_0.5.csv", GOOD)
    _write(folder / "test1_0.5.csv", ",a,b,c\n9,1,0,0\n")
    _write(folder / "negative_weights1_0.5.csv", ",a,b,c\n1,1,1,1\n2,1,1,1\n4,1,1,1\n")
    with pytest.raises(DataError, match=r"negative_weights1_0.5.csv, line 4: ids differ"):
        read_run_labels(root, 0.5, 1)
    _write(folder / "negative_weights1_0.5.csv", ",a,c,b\n1,1,1,1\n2,1,1,1\n3,1,1,1\n")
    with pytest.raises(DataError, match=r"columns differ .* at position 2"):
        read_run_labels(root, 0.5, 1)
    _write(folder / "negative_weights1_0.5.csv", ",a,b,c\n1,1,1,1\n2,1,1,1\n3,1,1,1\n")
    _write(folder / "test1_0.5.csv", ",a,b,c\n3,1,0,0\n")
    with pytest.raises(DataError, match="id '3' is in both train1_0.5.csv"):
        read_run_labels(root, 0.5, 1)


def test_ids_keep_their_text(tmp_path):
    path = _write(tmp_path / "t.csv", ",0,1\n0001_2124494179,1,0\n0002_1,0,1\n")
    frame = read_table(path)
    assert frame.index.tolist() == ["0001_2124494179", "0002_1"]
    assert table_bytes(frame) == path.read_bytes()


def test_manifest_records_split_settings(coco_split):
    root, labels, _ = coco_split
    manifest = read_manifest(root)
    assert manifest["split"]["seed"] == 0 and manifest["split"]["n_folds"] == 4
    assert manifest["split"]["ratios"] == [0.0, 0.25, 0.5, 0.75]
    assert manifest["groundtruth"]["rows"] == len(labels)
    counts = manifest["split"]["counts"]
    assert sum(c["test"] for c in counts.values()) == len(labels)


def test_split_refuses_bad_ratios_and_an_empty_table(tmp_path):
    root = tmp_path / "d"
    write_groundtruth(root, pd.DataFrame([[1, 0], [0, 1]] * 4, columns=["a", "b"],
                                         index=[str(i) for i in range(8)]))
    with pytest.raises(DataError, match="outside"):
        split(root, ratios=[0.5, 1.0])
    with pytest.raises(DataError, match="share a folder"):
        split(root, ratios=[0.24, 0.2])
    with pytest.raises(DataError, match="no row left"):
        write_groundtruth(tmp_path / "e", pd.DataFrame(columns=["a", "b"], dtype=np.uint8))
    assert not (tmp_path / "e" / "groundtruth.csv").exists()


def test_published_folder_can_be_split_target_copy(tmp_path, reference_dir):
    # A folder holding the authors' files next to ours is read by the same function.
    shutil.copytree(reference_dir / "labels_balanced_nus", tmp_path / "nus")
    files = read_run_labels(tmp_path / "nus", 0.5, 1)
    assert files["train"].shape == (18453, 81)
    assert list(files["train"].columns) == [str(i) for i in range(81)]
