"""A label folder as the authors published it (``missing_labels{t}/`` only, no
``groundtruth.csv``, no ``manifest.json``) runs as it is, and their CB-WCE weight file is read as
they wrote it (docs/original.md sections 2 to 4)."""

import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from fixtures import tree_digests

from mlml_tf import DataError, read_run_labels
from mlml_tf.apps.grid import experiment_naming, grid_defaults
from mlml_tf.cli.main import main
from mlml_tf.datasets.nuswide import NUSWIDE_CONCEPTS
from mlml_tf.files.global_weights import (
    BY_NAME,
    BY_POSITION,
    read_global_weights,
    weights_of_rows,
)
from mlml_tf.files.layout import (
    GLOBAL_WEIGHTS,
    GROUNDTRUTH,
    MANIFEST,
    ratio_folder,
    ratio_tag,
)
from mlml_tf.files.published import (
    derive_complete_labels,
    found_split,
    read_complete_labels,
    table_ids,
)
from mlml_tf.files.split import verify
from mlml_tf.files.tables import table_bytes, table_classes
from mlml_tf.labels.missing import PAPER_RATIOS, hide_positives
from mlml_tf.labels.weights import confidence_weights
from mlml_tf.notebook import preprocessing
from mlml_tf.settings import RunConfig
from mlml_tf.training.data import load_run_data

ROWS_PER_FOLD = 12
CLASSES = 5


# ----------------------------------------------------------------- a folder in the authors' layout


def miniature(reference: pd.DataFrame, rows_per_fold: int = ROWS_PER_FOLD,
              classes: int = CLASSES) -> tuple[pd.DataFrame, pd.Series]:
    """The first ``rows_per_fold`` rows of each published test fold with a positive among the
    ``classes`` most frequent classes: labels (columns as published) and each row's fold."""
    labels = reference.drop(columns="fold")
    top = labels.sum().sort_values(ascending=False, kind="stable").index[:classes]
    kept = reference[labels[top].sum(axis=1) > 0]
    chosen = pd.concat([kept[kept["fold"] == k].iloc[:rows_per_fold] for k in (1, 2, 3, 4)])
    chosen = chosen.loc[[i for i in reference.index if i in chosen.index]]  # the set's order
    return chosen[top].astype(np.uint8), chosen["fold"]


def write_published(root: Path, labels: pd.DataFrame, folds: pd.Series, style: str = "nus",
                    seed: int = 0) -> Path:
    """The authors' layout, written with pandas as their notebooks wrote it: for every ratio t
    in ``missing_labels{round(r, 1)}/`` the files ``train{k}_{t}.csv`` (positives hidden),
    ``negative_weights{k}_{t}.csv``, ``test{k}_{t}.csv`` and ``positive_weights{t}.csv``, and
    at the root ``negative_weights_global.csv`` over every row. ``style`` "nus": the label files
    number the classes 0..C-1 and the global file names them after NUS-WIDE's concepts, its
    id column named ``index``; "coco": the class names everywhere, an unnamed id column."""

    root.mkdir(parents=True)
    names = [str(c) for c in labels.columns]
    if style == "nus":
        table = labels.set_axis([str(i) for i in range(labels.shape[1])], axis=1)
    else:
        table = labels.copy()
    for ratio in PAPER_RATIOS:
        folder = root / ratio_folder(ratio)
        folder.mkdir()
        t = ratio_tag(ratio)
        for k in (1, 2, 3, 4):
            test = table[folds == k]
            train = pd.concat([table[folds == j] for j in (1, 2, 3, 4) if j != k])
            observed, hidden = hide_positives(train.to_numpy(), ratio,
                                              np.random.SeedSequence([seed, k]))
            pd.DataFrame(observed, index=train.index, columns=train.columns).to_csv(
                folder / f"train{k}_{t}.csv")
            pd.DataFrame((~hidden).astype(int), index=train.index, columns=train.columns).to_csv(
                folder / f"negative_weights{k}_{t}.csv")
            test.to_csv(folder / f"test{k}_{t}.csv")
            pd.DataFrame(np.ones(train.shape, dtype=int), columns=train.columns).to_csv(
                folder / f"positive_weights{t}.csv", index=False)
    weights = pd.DataFrame(confidence_weights(table.to_numpy()), index=table.index,
                           columns=[NUSWIDE_CONCEPTS[int(c)] for c in names]
                           if style == "nus" else names)
    if style == "nus":
        weights.index.name = "index"
    weights.to_csv(root / GLOBAL_WEIGHTS)
    return root


@pytest.fixture(scope="module")
def published(tmp_path_factory, nus_reference):
    """A published NUS-WIDE-like folder of 48 rows, its images, and the complete labels."""
    root = tmp_path_factory.mktemp("published")
    labels, folds = miniature(nus_reference)
    data = write_published(root / "labels_balanced_nus", labels, folds)
    return {"data": data, "labels": labels, "folds": folds, "root": root}


def copy_of(published, tmp_path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(published["data"], data)
    return data


# ----------------------------------------------------------------- the complete labels


def test_the_complete_labels_are_the_test_files_of_ratio_0(published, tmp_path):
    data = published["data"]
    before = tree_digests(data)
    complete = read_complete_labels(data)
    labels, folds = published["labels"], published["folds"]
    order = [i for k in (1, 2, 3, 4) for i in labels.index[folds == k]]
    assert list(complete.index) == order, "the test files one under the other, folds in order"
    np.testing.assert_array_equal(complete.to_numpy(), labels.loc[order].to_numpy())
    assert list(complete.columns) == [str(i) for i in range(CLASSES)]
    assert found_split(data) == {"ratios": list(PAPER_RATIOS), "n_folds": 4}
    assert grid_defaults(data) == (list(PAPER_RATIOS), [1, 2, 3, 4])
    assert experiment_naming(data) == "coco", "NUS-WIDE is told by its 81 columns 0..80"
    assert tree_digests(data) == before and not (data / GROUNDTRUTH).exists()


def test_prepare_published_writes_what_runs_derive(published, tmp_path):
    data = copy_of(published, tmp_path)
    config = RunConfig(method="cb-wce", ratio=0.5, fold=2, cb_source="oracle")
    derived = load_run_data(data, config)
    untouched = tree_digests(data)
    assert main(["split", str(data)]) == 2, "a split would replace the authors' files"
    assert tree_digests(data) == untouched
    assert main(["prepare", "published", str(data)]) == 0
    written = (data / GROUNDTRUTH).read_bytes()
    assert written == table_bytes(derive_complete_labels(data))
    manifest = json.loads((data / MANIFEST).read_text())
    assert manifest["split"]["scheme"] == "published"
    assert manifest["split"]["n_folds"] == 4 and manifest["split"]["ratios"] == list(PAPER_RATIOS)
    assert manifest["groundtruth"]["rows"] == 4 * ROWS_PER_FOLD
    assert verify(data) == [], "every file listed with its SHA-256"
    assert GLOBAL_WEIGHTS in manifest["split"]["checksums"]
    counts = manifest["split"]["counts"]
    assert {k: c["test"] for k, c in counts.items()} == {str(k): ROWS_PER_FOLD for k in range(1, 5)}
    assert counts["1"]["hidden"]["0.0"] == 0 and counts["1"]["hidden"]["0.75"] > 0
    # The same digest either way: runs made before the files were written stay complete.
    assert load_run_data(data, config).label_digest == derived.label_digest
    again = tree_digests(data)
    assert main(["prepare", "published", str(data)]) == 0
    assert tree_digests(data) == again, "running it again rewrites the same bytes"
    # The authors' folds and hidden labels cannot be drawn again: split refuses them.
    assert main(["split", str(data)]) == 2
    assert tree_digests(data) == again


def test_the_notebook_helpers_read_a_published_folder(published):
    data = published["data"]
    before = tree_digests(data)
    assert preprocessing.class_names(data) == [str(i) for i in range(CLASSES)]
    counts = preprocessing.split_counts(data)
    assert list(counts["test rows"]) == [ROWS_PER_FOLD] * 4
    assert list(counts["train rows"]) == [3 * ROWS_PER_FOLD] * 4
    assert (counts["hidden at r=0.0"] == 0).all() and (counts["hidden at r=0.75"] > 0).all()
    rates = preprocessing.fold_positive_rates(data)
    assert list(rates.columns) == ["all", "fold 1", "fold 2", "fold 3", "fold 4"]
    summary = preprocessing.entry_weight_summary(data, "cb-wce", 0.75, 1, cb_source="oracle")
    assert summary["hidden positives"].sum() == counts.loc[1, "hidden at r=0.75"]
    assert tree_digests(data) == before


# ----------------------------------------------------------------- runs through the command line


def write_images(folder: Path, ids) -> Path:
    """A distinct small PNG per id, cut from one of skimage's photographs."""
    from PIL import Image
    from skimage import data as photos

    folder.mkdir(parents=True)
    pixels = photos.astronaut()
    for k, name in enumerate(ids):
        crop = pixels[6 * k:6 * k + 256, 4 * k:4 * k + 256]
        Image.fromarray(crop).resize((40, 40)).save(folder / f"{name}.png")
    return folder


def run_records(out: Path) -> dict[str, dict]:
    """Experiment name -> the ``metrics.json`` of each complete run under ``out``."""
    return {done.parent.parent.name: json.loads((done.parent / "metrics.json").read_text())
            for done in out.glob("*/*/complete.json")}


def imagenet_stand_in(include_top=False, weights="imagenet", input_shape=(224, 224, 3), **_):
    """A small seeded network in place of Inception-ResNet-v2 with its ImageNet weights, which
    cannot be downloaded here: its feature layer has the name the feature cache reads."""
    assert not include_top and weights == "imagenet"
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(8, 7, strides=16, name="conv_7b",
                            kernel_initializer=keras.initializers.GlorotUniform(seed=0))(inputs)
    return keras.Model(inputs, keras.layers.Activation("relu", name="conv_7b_ac")(x),
                       name="inception_resnet_v2")


def test_runs_end_to_end_with_and_without_faithful_and_leave_the_folder_unchanged(
        published, tmp_path, monkeypatch):
    data = published["data"]
    images = write_images(tmp_path / "images", published["labels"].index)
    before = tree_digests(data)
    common = [str(a) for a in ["run", "--data", data, "--images", images,
                               "--image-pattern", "{id}.png"]]
    small = ["--backbone", "VGG16", "--weights", "none", "--image-size", "32", "--epochs", "1",
             "--batch-size", "4"]
    assert main([*common, *small, "--out", str(tmp_path / "cached"), "--methods", "ce",
                 "im-wce", "cb-wce", "--cb-source", "oracle", "--ratios", "0.75",
                 "--folds", "2"]) == 0
    # --faithful takes every setting of the original: Inception-ResNet-v2 with ImageNet's
    # weights at 224 pixels, 20 epochs of batches of 32.
    monkeypatch.setattr(keras.applications, "InceptionResNetV2", imagenet_stand_in)
    assert main([*common, "--out", str(tmp_path / "faithful"), "--methods", "cb-wce",
                 "--ratios", "0.25", "--folds", "1", "--faithful"]) == 0
    assert tree_digests(data) == before, "the data folder is left as it was, byte for byte"
    assert not (data / GROUNDTRUTH).exists() and not (data / MANIFEST).exists()

    cached = run_records(tmp_path / "cached")
    assert sorted(cached) == ["CORRELATION_weighted_CE_balanced_ratio0.8split_2",
                              "PosLimited_original_CE_balanced_ratio0.8split_2",
                              "PosLimitited_weighted_CE_balanced_ratio0.8split_2"]
    for record in cached.values():
        assert record["extra"]["test_rows"] == ROWS_PER_FOLD
        assert record["extra"]["train_rows"] + record["extra"]["validation_rows"] == 36
    faithful = run_records(tmp_path / "faithful")
    (extra,) = [r["extra"] for r in faithful.values()]
    assert list(faithful) == ["CORRELATION_weighted_CE_balanced_ratio0.2split_1"]
    assert extra["config"]["cb_source"] == "file", "--faithful takes the authors' file"
    assert extra["global_weights"] == {"file": GLOBAL_WEIGHTS, "columns": BY_POSITION,
                                       "rows": 4 * ROWS_PER_FOLD}
    assert [r["faithful"] for r in faithful.values()] == [True]
    assert [r["faithful"] for r in cached.values()] == [False] * 3


# ----------------------------------------------------------------- the authors' weight file


def test_the_nus_wide_weight_file_is_read_by_position(published):
    data = published["data"]
    header = (data / GLOBAL_WEIGHTS).read_text().split("\n")[0].split(",")
    names = [NUSWIDE_CONCEPTS[int(c)] for c in published["labels"].columns]
    assert header == ["index", *names], "as the authors wrote it: concepts, an index named index"
    by_file = load_run_data(data, RunConfig(method="cb-wce", ratio=0.5, fold=1, cb_source="file"))
    assert by_file.record["global_weights"] == {"file": GLOBAL_WEIGHTS, "columns": BY_POSITION,
                                                "rows": 4 * ROWS_PER_FOLD}
    # The file was counted over the complete labels: the weights the port counts itself.
    counted = load_run_data(data, RunConfig(method="cb-wce", ratio=0.5, fold=1,
                                            cb_source="oracle"))
    np.testing.assert_allclose(by_file.weights, counted.weights, rtol=1e-6)
    assert (by_file.weights[by_file.train_labels == 0] < 1).any()


def test_a_weight_file_that_names_the_classes_is_read_by_name(coco_reference, tmp_path):
    labels, folds = miniature(coco_reference)
    data = write_published(tmp_path / "coco", labels, folds, style="coco")
    weights = pd.read_csv(data / GLOBAL_WEIGHTS, index_col=0, dtype={0: str})
    weights[weights.columns[::-1]].to_csv(data / GLOBAL_WEIGHTS)  # other column order
    config = RunConfig(method="cb-wce", ratio=0.75, fold=3, cb_source="file")
    by_file = load_run_data(data, config)
    assert by_file.record["global_weights"]["columns"] == BY_NAME
    counted = load_run_data(data, RunConfig(method="cb-wce", ratio=0.75, fold=3,
                                            cb_source="oracle"))
    np.testing.assert_allclose(by_file.weights, counted.weights, rtol=1e-6)


def test_concepts_in_another_order_are_matched_through_the_manifests_names(published,
                                                                             tmp_path):
    data = copy_of(published, tmp_path)
    names = list(pd.read_csv(data / GLOBAL_WEIGHTS, nrows=0).columns[1:])
    (data / MANIFEST).write_text(json.dumps({"classes": [str(i) for i in range(CLASSES)],
                                             "class_names": names}))
    weights = pd.read_csv(data / GLOBAL_WEIGHTS, index_col=0, dtype={0: str})
    weights[names[::-1]].to_csv(data / GLOBAL_WEIGHTS)
    config = RunConfig(method="cb-wce", ratio=0.5, fold=4, cb_source="file")
    run = load_run_data(data, config)
    assert run.record["global_weights"]["columns"] == "by name (the manifest's class names)"
    counted = load_run_data(data, RunConfig(method="cb-wce", ratio=0.5, fold=4,
                                            cb_source="oracle"))
    np.testing.assert_allclose(run.weights, counted.weights, rtol=1e-6)


def test_a_weight_file_as_the_authors_wrote_it_fits_their_nus_wide_training_file(
        reference_dir, nus_reference, tmp_path):
    """24,624 rows under ``index,airport,...,zebra`` against the published ``train1_0.5.csv``,
    whose 81 columns are 0..80: read by position, each training id found."""
    complete = nus_reference.drop(columns="fold")
    cells = np.where(complete.to_numpy() == 1, "0.0", "0.75")  # 0 at every positive, as theirs
    weights = pd.DataFrame(cells, index=pd.Index(complete.index, name="index"),
                           columns=list(NUSWIDE_CONCEPTS))
    weights.to_csv(tmp_path / GLOBAL_WEIGHTS)
    train = reference_dir / "labels_balanced_nus" / ratio_folder(0.5) / "train1_0.5.csv"
    frame, record = read_global_weights(tmp_path / GLOBAL_WEIGHTS, table_classes(train), train)
    assert record["columns"] == BY_POSITION and record["rows"] == 24624
    ids = table_ids(train)
    rows = weights_of_rows(frame, tmp_path / GLOBAL_WEIGHTS, ids, train)
    np.testing.assert_array_equal(rows == 0, complete.loc[ids].to_numpy() == 1)


# ----------------------------------------------------------------- the published files themselves


@pytest.mark.parametrize("folder, train, test", [("labels_balanced_4labels", 24731, 8321),
                                                 ("labels_balanced_nus", 18453, 6171)])
def test_the_published_files_read_as_before(reference_dir, folder, train, test):
    files = read_run_labels(reference_dir / folder, 0.5, 1)
    assert files["train"].shape[0] == train and files["test"].shape[0] == test
    assert (files["negative_weights"].to_numpy() == 0).sum() > 0
    assert found_split(reference_dir / folder) == {"ratios": [0.5], "n_folds": 1}
    naming = "nuswide" if folder.endswith("nus") else "coco"
    assert experiment_naming(reference_dir / folder) == naming
    # Only ratio 0.5 of fold 1 is kept here: no complete labels without the folder of ratio 0.
    with pytest.raises(DataError, match="missing_labels0.0: folder not found"):
        read_complete_labels(reference_dir / folder)


def test_the_published_folds_partition_the_whole_set(nus_reference, tmp_path):
    """The four test files of the authors' NUS-WIDE folds (24,624 rows) give the whole set."""
    labels = nus_reference.drop(columns="fold").astype(np.uint8)
    folder = tmp_path / ratio_folder(0.0)
    folder.mkdir()
    for k in (1, 2, 3, 4):
        labels[nus_reference["fold"] == k].to_csv(folder / f"test{k}_0.0.csv")
    complete = read_complete_labels(tmp_path)
    assert len(complete) == 24624 and sorted(complete.index) == sorted(labels.index)
    pd.testing.assert_frame_equal(complete.loc[labels.index], labels, check_names=False)


# ----------------------------------------------------------------- bad input


def cli(*argv) -> tuple[int, str]:
    """``mlml-tf argv`` in this process: (exit status, stderr)."""
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main([str(a) for a in argv])
    return code, err.getvalue()


def lines(path: Path) -> list[str]:
    return path.read_text().split("\n")


def rewrite(path: Path, edit) -> None:
    path.write_text("\n".join(edit(lines(path))))


def ratio0_test(k: int) -> str:
    return f"{ratio_folder(0.0)}/test{k}_0.0.csv"


def _missing_test(data):
    (data / ratio0_test(3)).unlink()
    return f"{ratio0_test(3)}: file not found"


def _row_in_two_tests(data):
    row = lines(data / ratio0_test(1))[1]
    rewrite(data / ratio0_test(2), lambda ls: [*ls[:-1], row, ""])
    return (f"{ratio0_test(2)}, line {ROWS_PER_FOLD + 2}: id {row.split(',')[0]!r} is also in "
            "test1_0.0.csv (line 2)")


def _other_columns(data):
    def swap(ls):
        header = ls[0].split(",")
        header[1], header[2] = header[2], header[1]
        return [",".join(header), *ls[1:]]
    rewrite(data / ratio0_test(3), swap)
    return f"{ratio0_test(3)}, line 1: columns differ from those of test1_0.0.csv at position 1"


def _not_binary(data):
    rewrite(data / ratio0_test(4),
            lambda ls: [ls[0], ls[1], ls[2].rsplit(",", 1)[0] + ",2", *ls[3:]])
    return f"{ratio0_test(4)}, line 3, column '{CLASSES - 1}': value '2' is not 0 or 1"


def _no_folder_of_ratio_0(data):
    shutil.rmtree(data / ratio_folder(0.0))
    return f"{ratio_folder(0.0)}: folder not found"


def _test_file_cut_at_a_line_end(data):
    last = lines(data / ratio0_test(2))[-2].split(",")[0]
    rewrite(data / ratio0_test(2), lambda ls: [*ls[:-2], ""])
    train = f"{ratio_folder(0.0)}/train1_0.0.csv"
    line = lines(data / train).index(next(x for x in lines(data / train)
                                          if x.split(",")[0] == last)) + 1
    return f"{train}, line {line}: id {last!r} is in no test file of ratio 0.0"


def _class_too_many(data):
    rewrite(data / GLOBAL_WEIGHTS, lambda ls: [ls[0] + ",extra", *(x + ",0.5" for x in ls[1:-1]),
                                               ""])
    return (f"{GLOBAL_WEIGHTS}, line 1: {CLASSES + 1} class columns where train1_0.5.csv has "
            f"{CLASSES}, numbered 0 to {CLASSES - 1}: read by position only when the counts "
            "match, and by name column 'sky' is not one of them")


def _class_too_few(data):
    rewrite(data / GLOBAL_WEIGHTS, lambda ls: [x.rsplit(",", 1)[0] for x in ls[:-1]] + [""])
    return (f"{GLOBAL_WEIGHTS}, line 1: {CLASSES - 1} class columns where train1_0.5.csv has "
            f"{CLASSES}, numbered 0 to {CLASSES - 1}")


def _ids_it_lacks(data):
    train = lines(data / ratio_folder(0.5) / "train1_0.5.csv")
    lacking = train[5].split(",")[0]
    rewrite(data / GLOBAL_WEIGHTS, lambda ls: [x for x in ls if x.split(",")[0] != lacking])
    return f"{GLOBAL_WEIGHTS}: id {lacking!r} of train1_0.5.csv (line 6) has no row"


def _nan(data):
    rewrite(data / GLOBAL_WEIGHTS, lambda ls: [*ls[:4], ls[4].rsplit(",", 1)[0] + ",NaN", *ls[5:]])
    last = pd.read_csv(data / GLOBAL_WEIGHTS, nrows=0).columns[-1]
    return f"{GLOBAL_WEIGHTS}, line 5, column {last!r}: value 'NaN' is not a number in [0, 1]"


def _positions_for_ids(data):
    rewrite(data / GLOBAL_WEIGHTS, lambda ls: [ls[0], *(f"{j}," + x.split(",", 1)[1]
                                                      for j, x in enumerate(ls[1:-1])), ""])
    return "row positions, not the ids of the label files"


LABEL_FAULTS = [_missing_test, _row_in_two_tests, _other_columns, _not_binary,
                _no_folder_of_ratio_0, _test_file_cut_at_a_line_end]
WEIGHT_FAULTS = [_class_too_many, _class_too_few, _ids_it_lacks, _nan, _positions_for_ids]


@pytest.mark.parametrize("fault", LABEL_FAULTS + WEIGHT_FAULTS, ids=lambda f: f.__name__[1:])
def test_bad_published_folders_stop_with_the_file_and_line_and_write_nothing(published,
                                                                             tmp_path, fault):
    data = copy_of(published, tmp_path)
    expected = fault(data)
    before = tree_digests(data, locks=True)
    out = tmp_path / "out"
    code, err = cli("run", "--data", data, "--out", out, "--images", tmp_path, "--methods",
                    "ce", "cb-wce", "--cb-source", "file", "--ratios", "0.5", "--folds", "1")
    assert code == 2 and expected in err, err
    assert str(data) in err, "the file is named with its folder"
    if fault in LABEL_FAULTS:
        code, err = cli("prepare", "published", data)
        assert code == 2 and expected in err, err
        code, err = cli("run", "--data", data, "--out", out, "--images", tmp_path, "--faithful")
        assert code == 2 and expected in err, err
    assert tree_digests(data, locks=True) == before, "the data folder is unchanged"
    assert not out.exists(), "nothing written"
