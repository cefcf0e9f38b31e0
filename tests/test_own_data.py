"""A user's own label table over real photographs: 1 / 0 / -1 / empty cells, images found by
path or by pattern, the faults named, and the held-out rows stratified."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures import _photo, _save_jpeg

from mlml_tf.errors import DataError
from mlml_tf.files.own_table import read_label_table, validation_rows


@pytest.fixture()
def images(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    (root / "street").mkdir(parents=True)
    for i in range(6):
        _save_jpeg(root / ("street" if i % 2 else "") / f"p{i}.jpg", _photo(i, rng))
    return root


def _table(tmp_path, text):
    path = tmp_path / "labels.csv"
    path.write_text(text)
    return path


def test_a_table_reads_with_empty_cells_as_unknown_and_paths_under_the_folder(images, tmp_path):
    path = _table(tmp_path, "image,cat,dog,car\np0.jpg,1,,0\nstreet/p1.jpg,-1,1,\n"
                            "p2.jpg,0,0,1\n")
    table = read_label_table(path, images)
    assert table.classes == ["cat", "dog", "car"] and table.names[1] == "street/p1.jpg"
    np.testing.assert_array_equal(table.labels, [[1, -1, 0], [-1, 1, -1], [0, 0, 1]])
    assert table.paths[1] == images / "street" / "p1.jpg" and len(table) == 3
    by_id = _table(tmp_path, "id,cat\np0,1\np2,0\n")
    assert read_label_table(by_id, images, "{id}.jpg").paths == [images / "p0.jpg",
                                                                   images / "p2.jpg"]


@pytest.mark.parametrize("text, where", [
    ("image,cat,dog\np0.jpg,1,0\np9.jpg,0,1\n", "line 3: image 'p9.jpg' of row 'p9.jpg' is not"),
    ("image,cat,dog\np0.jpg,1,\np2.jpg,0,-1\n", "line 1, column 'dog': class 'dog' is unknown"),
    ("image,cat,dog\np0.jpg,0,-1\np2.jpg,0,0\n", "no row has a positive label"),
    ("image,cat,dog\np0.jpg,1,2\n", "line 2, column 'dog': value '2' is not 1, 0, -1 or empty"),
    ("image,cat,dog\np0.jpg,1,0\np0.jpg,0,1\n", "id 'p0.jpg' appears twice (lines 2 and 3)"),
    ("image,cat\np0.jpg,1,0\n", "line 2: 3 fields where the header has 2"),
])
def test_faults_of_the_table_are_named_with_the_row(images, tmp_path, text, where):
    path = _table(tmp_path, text)
    with pytest.raises(DataError) as info:
        read_label_table(path, images)
    assert str(info.value).startswith(str(path)) and where in str(info.value), info.value


def test_an_empty_or_missing_images_folder_is_named(tmp_path):
    path = _table(tmp_path, "image,cat\np0.jpg,1\n")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no image here")
    with pytest.raises(DataError, match="empty: the images folder holds no image"):
        read_label_table(path, tmp_path / "empty")
    with pytest.raises(DataError, match="nowhere: images folder not found"):
        read_label_table(path, tmp_path / "nowhere")


def test_an_image_pattern_that_cannot_name_an_image_is_named(images, tmp_path):
    path = _table(tmp_path, "id,cat\np0,1\n")
    with pytest.raises(DataError, match="--image-pattern '{name}.jpg' cannot name an image"):
        read_label_table(path, images, "{name}.jpg")


def test_validation_rows_are_stratified_seeded_and_disjoint(coco_labels):
    labels = np.where(coco_labels[:2000] == 1, 1, -1).astype(np.int8)
    train, held = validation_rows(labels, 0.2, seed=3)
    assert len(np.intersect1d(train, held)) == 0 and len(train) + len(held) == 2000
    assert abs(len(held) - 400) <= 20
    share = (labels[held] == 1).sum(0) / np.maximum((labels == 1).sum(0), 1)
    common = (labels == 1).sum(0) >= 20
    assert np.abs(share[common] - 0.2).max() < 0.07, "each class held out at about 20 %"
    again = validation_rows(labels, 0.2, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip((train, held), again, strict=True))
    assert not np.array_equal(held, validation_rows(labels, 0.2, seed=4)[1])
    assert len(validation_rows(labels, 0.0)[1]) == 0
    with pytest.raises(DataError, match="validation fraction 1.0 is outside"):
        validation_rows(labels, 1.0)


def test_a_missing_image_named_by_an_absolute_path_is_named_as_written(images, tmp_path):
    gone = tmp_path / "elsewhere" / "gone.jpg"
    path = _table(tmp_path, f"image,cat\np0.jpg,1\n{gone},0\n")
    with pytest.raises(DataError) as info:
        read_label_table(path, images)
    assert f"line 3: image {str(gone)!r} of row {str(gone)!r} is not in" in str(info.value)
