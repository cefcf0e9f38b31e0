"""The mlml-tf command line, on raw data sets in their real formats and on real label files."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from fixtures import make_coco_fixture, make_nuswide_fixture, tree_digests

from mlml_tf.cli.main import main
from mlml_tf.files.layout import read_groundtruth, read_manifest
from mlml_tf.files.tables import read_table
from mlml_tf.labels.weights import confidence_weights


@pytest.fixture(scope="module")
def coco_raw(tmp_path_factory):
    return make_coco_fixture(tmp_path_factory.mktemp("coco_raw"))


def test_prepare_coco_writes_groundtruth_images_and_manifest(coco_raw, tmp_path, capsys):
    out = tmp_path / "coco"
    assert main(["prepare", "coco", "--annotations", str(coco_raw["annotations"]),
                 "--out", str(out)]) == 0
    labels = read_groundtruth(out)
    # the id is the row number among images with a surviving annotation, before the filter
    kept = list(coco_raw["kept_ids"])
    assert list(labels.index) == [str(kept.index(i)) for i in coco_raw["min4_ids"]]
    assert list(labels.columns) == coco_raw["class_names"]
    assert (labels.to_numpy().sum(axis=1) >= 4).all()
    images = pd.read_csv(out / "images.csv", dtype=str)
    assert list(images["id"]) == list(labels.index)
    assert all((coco_raw["images"] / f).exists() for f in images["file"])
    manifest = read_manifest(out)
    assert manifest["groundtruth"]["rows"] == len(labels)
    assert manifest["source"]["min_labels"] == 4
    assert "images x 80 classes" in capsys.readouterr().out


def test_prepare_coco_with_image_ids(coco_raw, tmp_path):
    out = tmp_path / "coco"
    main(["prepare", "coco", "--annotations", str(coco_raw["annotations"]), "--out", str(out),
          "--ids", "coco", "--min-labels", "1"])
    labels = read_groundtruth(out)
    assert set(labels.index) <= {str(i) for i in coco_raw["image_ids"]}
    assert len(labels) == coco_raw["n_kept"]


def test_prepare_nuswide(tmp_path):
    raw = make_nuswide_fixture(tmp_path / "raw")
    out = tmp_path / "nus"
    assert main(["prepare", "nuswide", "--root", str(raw["root"]), "--out", str(out)]) == 0
    labels = read_groundtruth(out)
    assert list(labels.columns) == [str(i) for i in range(81)]
    assert (labels.to_numpy().sum(axis=1) >= 3).all()
    assert read_manifest(out)["class_names"] == raw["class_names"]
    images = pd.read_csv(out / "images.csv", dtype=str)
    assert all((raw["root"] / f).exists() for f in images["file"])


def test_split_then_weights_from_the_command_line(tmp_path, coco_reference):
    root = tmp_path / "d"
    labels = coco_reference.drop(columns="fold").iloc[:3000].astype(np.uint8)
    from mlml_tf.files.layout import write_groundtruth

    write_groundtruth(root, labels)
    assert main(["split", str(root), "--ratios", "0", "0.5", "--seed", "2"]) == 0
    train = root / "missing_labels0.5" / "train1_0.5.csv"
    out = tmp_path / "w" / "cb1_0.5.csv"
    assert main(["weights", "--method", "cb", "--labels", str(train), "--out", str(out)]) == 0
    weights = read_table(out, "weights")
    observed = read_table(train)
    assert list(weights.index) == list(observed.index)
    assert list(weights.columns) == list(observed.columns)
    expected = confidence_weights(observed.to_numpy())
    np.testing.assert_array_equal(weights.to_numpy(), expected)
    test = root / "missing_labels0.5" / "test1_0.5.csv"
    out2 = tmp_path / "w" / "cb_test.csv"
    assert main(["weights", "--method", "cb", "--labels", str(test), "--source", str(train),
                 "--out", str(out2)]) == 0
    np.testing.assert_array_equal(
        read_table(out2, "weights").to_numpy(),
        confidence_weights(read_table(test).to_numpy(), observed.to_numpy()))


def _run_cli(*args):
    return subprocess.run([sys.executable, "-m", "mlml_tf.cli", *map(str, args)],
                          capture_output=True, text=True)


def test_bad_input_exits_2_names_the_place_and_writes_nothing(tmp_path):
    bad = tmp_path / "train1_0.5.csv"
    bad.write_text(",a,b\n1,0,1\n2,3,0\n")
    out = tmp_path / "out.csv"
    result = _run_cli("weights", "--method", "cb", "--labels", bad, "--out", out)
    assert result.returncode == 2
    assert "train1_0.5.csv, line 3, column 'a': value '3' is not 0 or 1" in result.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == [bad]

    result = _run_cli("split", tmp_path / "nowhere")
    assert result.returncode == 2 and "groundtruth.csv: file not found" in result.stderr

    result = _run_cli("split", tmp_path, "--ratios", "0.5", "1.0")
    assert result.returncode == 2 and "outside [0, 1)" in result.stderr

    (tmp_path / "ann.json").write_text('{"images": [}')
    result = _run_cli("prepare", "coco", "--annotations", tmp_path / "ann.json",
                      "--out", tmp_path / "o")
    assert result.returncode == 2 and "ann.json" in result.stderr
    assert not (tmp_path / "o" / "groundtruth.csv").exists()


def test_prepare_then_split_is_byte_identical_across_processes(coco_raw, tmp_path):
    digests = []
    for name in ("a", "b"):
        out = tmp_path / name
        assert _run_cli("prepare", "coco", "--annotations", coco_raw["annotations"],
                        "--out", out, "--min-labels", "2").returncode == 0
        result = _run_cli("split", out, "--seed", "4")
        assert result.returncode == 0, result.stderr
        digests.append(tree_digests(out))
    assert digests[0] == digests[1]
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["split"]["seed"] == 4


def _command(*args: str, tf_logging: bool = False) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL" or tf_logging}
    return subprocess.run([sys.executable, "-m", "mlml_tf.cli", *args], capture_output=True,
                          text=True, env=env)


def test_tensorflows_start_up_lines_are_shown_only_when_asked(tmp_path):
    # export imports TensorFlow, then finds no model folder.
    args = ["export", "--model", str(tmp_path / "none"), "--out", str(tmp_path / "x")]
    quiet, verbose = _command(*args), _command(*args, "--verbose")
    assert quiet.returncode == verbose.returncode == 2
    assert quiet.stderr == f"mlml-tf: error: {tmp_path / 'none'}: model folder not found\n"
    assert "oneDNN" in verbose.stderr or "I0000" in verbose.stderr
    assert verbose.stderr.endswith(quiet.stderr)


def test_help_answers_without_tensorflow():
    code = ("import sys; from mlml_tf.cli import main\n"
            "try:\n    main(['run', '--help'])\nexcept SystemExit:\n    pass\n"
            "print('tensorflow' in sys.modules, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "--cb-source" in done.stdout and done.stderr.strip() == "False"
