"""Raw data sets -> label tables, as the original built them (docs/original.md section 1), and
downloads."""

import hashlib
import http.server
import json
import threading
import zipfile

import numpy as np
import pandas as pd
import pytest
from fixtures import make_coco_fixture, make_nuswide_fixture, write_nuswide_files
from PIL import Image

from mlml_tf.datasets import (
    COCO_CATEGORIES,
    COCO_CLASS_NAMES,
    NUSWIDE_CONCEPTS,
    annotation_counts,
    box_survives,
    coco_image_files,
    coco_image_root,
    download_coco,
    extract_zip,
    min_labels_filter,
    nuswide_image_files,
    prepare_coco,
    prepare_nuswide,
    read_coco,
    read_nuswide,
)
from mlml_tf.datasets import coco_labels as load_coco_labels
from mlml_tf.datasets.download import Archive, download
from mlml_tf.errors import DataError

# ----------------------------------------------------------------------------------------------
# gluoncv's box rule


def gluoncv_keeps(bbox, width, height):
    """gluoncv's bbox_xywh_to_xyxy, bbox_clip_xyxy and the test of COCODetection._check_load_bbox,
    transcribed with the same numpy calls."""
    w, h = np.maximum(bbox[2] - 1, 0), np.maximum(bbox[3] - 1, 0)
    xyxy = (bbox[0], bbox[1], bbox[0] + w, bbox[1] + h)
    x1 = np.minimum(width - 1, np.maximum(0, xyxy[0]))
    y1 = np.minimum(height - 1, np.maximum(0, xyxy[1]))
    x2 = np.minimum(width - 1, np.maximum(0, xyxy[2]))
    y2 = np.minimum(height - 1, np.maximum(0, xyxy[3]))
    return bool(x2 > x1 and y2 > y1)


@pytest.mark.parametrize(
    "bbox, size, kept",
    [
        ([10, 10, 5, 5], (100, 100), True),
        ([0, 0, 100, 100], (100, 100), True),  # the whole image
        ([10, 10, 1, 5], (100, 100), False),  # width 1: x2 = x + max(1 - 1, 0) = x1
        ([10, 10, 5, 1], (100, 100), False),  # height 1
        ([10, 10, 1.5, 5], (100, 100), True),  # x2 = x1 + 0.5
        ([10, 10, 0, 5], (100, 100), False),  # width 0
        ([-20, 10, 25, 5], (100, 100), True),  # cut by the left border, clipped to x1 = 0
        ([-20, 10, 21, 5], (100, 100), False),  # x2 = 0 after conversion: nothing left
        ([-20, 10, 21.5, 5], (100, 100), True),  # x2 = 0.5
        ([90, 10, 50, 5], (100, 100), True),  # cut by the right border: x2 = 99
        ([99, 10, 5, 5], (100, 100), False),  # starts on the last column: x1 = x2 = 99
        ([98.5, 10, 5, 5], (100, 100), True),
        ([150, 10, 5, 5], (100, 100), False),  # right of the image
        ([10, 120, 5, 5], (100, 100), False),  # below the image
        ([10, -30, 5, 20], (100, 100), False),  # above the image: y1 = y2 = 0
        ([0, 0, 2, 2], (1, 1), False),  # a 1x1 image has no room for any box
        ([3, 4, 10, 10], (200, 5), False),  # y clipped to [0, 4]: y1 = y2 = 4
    ],
)
def test_box_rule_on_hand_made_boxes(bbox, size, kept):
    assert box_survives(bbox, *size) is kept
    assert gluoncv_keeps(bbox, *size) is kept


def test_box_rule_equals_gluoncv_on_random_boxes():
    rng = np.random.default_rng(0)
    n = 5000
    sizes = rng.integers(1, 60, size=(n, 2))
    # Coordinates on a half-pixel grid around the image, so that ties and borders come up.
    xy = rng.integers(-20, 140, size=(n, 2)) / 2
    wh = rng.integers(0, 80, size=(n, 2)) / 2
    for (w_img, h_img), (x, y), (w, h) in zip(sizes, xy, wh, strict=True):
        box = [float(x), float(y), float(w), float(h)]
        assert box_survives(box, int(w_img), int(h_img)) == gluoncv_keeps(box, w_img, h_img)


def test_an_annotation_counts_with_positive_area_and_no_ignore_flag():
    ann = {"bbox": [10, 10, 5, 5], "area": 25.0, "iscrowd": 0}
    assert annotation_counts(ann, 100, 100)
    assert annotation_counts({**ann, "iscrowd": 1}, 100, 100)  # crowd regions count
    assert not annotation_counts({**ann, "area": 0}, 100, 100)
    assert not annotation_counts({**ann, "area": -1.0}, 100, 100)
    assert not annotation_counts({**ann, "ignore": 1}, 100, 100)
    assert not annotation_counts({**ann, "bbox": [10, 10, 1, 5]}, 100, 100)


# ----------------------------------------------------------------------------------------------
# COCO on a fixture in the real format


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    return make_coco_fixture(tmp_path_factory.mktemp("coco"))


def test_coco_fixture_is_a_real_coco_file(coco):
    data = json.loads(coco["annotations"].read_text())
    assert set(data) == {"info", "licenses", "images", "annotations", "categories"}
    assert [(c["id"], c["name"], c["supercategory"]) for c in data["categories"]] == list(
        COCO_CATEGORIES
    )
    listed = [im["id"] for im in data["images"]]
    assert sorted(listed) == coco["image_ids"] and listed != coco["image_ids"]
    for im in data["images"]:
        with Image.open(coco["images"] / im["file_name"]) as pic:
            assert pic.size == (im["width"], im["height"]) and pic.mode == "RGB"
    assert any(a["iscrowd"] == 1 and isinstance(a["segmentation"], dict)
               for a in data["annotations"])


def test_coco_rows_are_images_with_a_counting_annotation_in_ascending_id_order(coco):
    labels, files = read_coco(coco["annotations"], ids="coco")
    assert list(labels.index) == [str(i) for i in coco["kept_ids"]]
    assert list(labels.columns) == coco["class_names"]
    assert labels.dtypes.unique().tolist() == [np.uint8]
    for image_id in coco["kept_ids"]:
        row = labels.loc[str(image_id)]
        assert list(row.index[row == 1]) == coco["labels"][image_id]
    assert files.to_dict() == {str(i): coco["file_names"][i] for i in coco["kept_ids"]}
    assert files.index.equals(labels.index)


def test_coco_edge_cases_decide_as_gluoncv(coco):
    labels = load_coco_labels(coco["annotations"], ids="coco")
    cases = coco["cases"]
    assert str(cases["empty"]) not in labels.index
    assert str(cases["all_non_counting"]) not in labels.index
    assert labels.loc[str(cases["three_plus_non_counting"])].sum() == 3
    assert cases["crowd_only"] and cases["clipped"]
    for image_id in cases["crowd_only"] + cases["clipped"]:
        assert str(image_id) in labels.index
    data = json.loads(coco["annotations"].read_text())
    names = {cid: name for cid, name, _ in COCO_CATEGORIES}
    for kind, image_ids in cases["non_counting"].items():
        assert image_ids, kind
        for image_id in image_ids:
            annotated = {names[a["category_id"]] for a in data["annotations"]
                         if a["image_id"] == image_id}
            not_counted = annotated - set(coco["labels"].get(image_id, []))
            assert not_counted, (kind, image_id)
            if str(image_id) in labels.index:
                assert labels.loc[str(image_id), sorted(not_counted)].sum() == 0


def test_original_ids_are_row_numbers_given_before_the_label_filter(coco):
    every = load_coco_labels(coco["annotations"])
    assert list(every.index) == [str(r) for r in range(coco["n_kept"])]
    kept = prepare_coco(coco["annotations"])
    assert list(kept.index) == [str(coco["kept_ids"].index(i)) for i in coco["min4_ids"]]
    assert len(kept) == coco["n_min4"] and (kept.sum(axis=1) >= 4).all()
    by_image = prepare_coco(coco["annotations"], ids="coco")
    assert list(by_image.index) == [str(i) for i in coco["min4_ids"]]
    np.testing.assert_array_equal(kept.to_numpy(), by_image.to_numpy())
    three = str(coco["cases"]["three_plus_non_counting"])
    assert three not in by_image.index


def test_coco_image_files_are_in_the_image_folder(coco):
    root = coco_image_root(coco["annotations"])
    assert root == coco["images"]
    files = coco_image_files(coco["annotations"])
    assert files.index.equals(load_coco_labels(coco["annotations"]).index)
    assert all((root / name).is_file() for name in files)
    with pytest.raises(DataError, match="instances_<split>.json"):
        coco_image_root(coco["root"] / "other.json")


def test_min_labels_filter_keeps_ids_and_order():
    frame = pd.DataFrame(
        [[1, 1, 0], [0, 0, 0], [1, 1, 1], [0, 1, 1]], index=["5", "7", "9", "12"],
        columns=list("abc"), dtype=np.uint8,
    )
    assert list(min_labels_filter(frame, 2).index) == ["5", "9", "12"]
    assert list(min_labels_filter(frame, 3).index) == ["9"]
    assert min_labels_filter(frame, 0).equals(frame)
    for bad in (-1, 2.5, "2", True):
        with pytest.raises(DataError, match="min_labels"):
            min_labels_filter(frame, bad)


# ----------------------------------------------------------------------------------------------
# Malformed COCO files


def tiny_coco():
    return {
        "images": [{"id": 3, "file_name": "a.jpg", "width": 50, "height": 40},
                   {"id": 1, "file_name": "b.jpg", "width": 50, "height": 40}],
        "annotations": [
            {"id": 10, "image_id": 3, "category_id": 18, "bbox": [1, 1, 9, 9], "area": 81,
             "iscrowd": 0},
            {"id": 11, "image_id": 1, "category_id": 1, "bbox": [1, 1, 9, 9], "area": 81,
             "iscrowd": 0},
        ],
        "categories": [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}],
    }


def test_tiny_coco_reads(tmp_path):
    path = tmp_path / "instances_x.json"
    path.write_text(json.dumps(tiny_coco()))
    labels = load_coco_labels(path)
    assert labels.to_dict("index") == {"0": {"person": 1, "dog": 0}, "1": {"person": 0, "dog": 1}}


def _break(data, part, pos, **change):
    data[part][pos].update(change)
    return data


@pytest.mark.parametrize(
    "data, place, reason",
    [
        ([1, 2], None, "top level is not a JSON object"),
        ({"images": [], "categories": []}, None, "no 'annotations' list"),
        (_break(tiny_coco(), "annotations", 1, bbox=[1, 2, 3]), "annotation id 11", "bbox"),
        (_break(tiny_coco(), "annotations", 1, bbox=[1, 2, "3", 4]), "annotation id 11", "bbox"),
        (_break(tiny_coco(), "annotations", 1, bbox=[1, 2, -3, 4]), "annotation id 11", "bbox"),
        (_break(tiny_coco(), "annotations", 0, bbox=None), "annotation id 10", "bbox"),
        (_break(tiny_coco(), "annotations", 0, image_id=99), "annotation id 10", "image_id 99"),
        (_break(tiny_coco(), "annotations", 0, category_id=2), "annotation id 10", "category_id"),
        (_break(tiny_coco(), "annotations", 1, area="big"), "annotation id 11", "area"),
        (_break(tiny_coco(), "annotations", 1, id=10), "annotation id 10", "twice"),
        (_break(tiny_coco(), "images", 1, width=0), "image id 1", "width"),
        (_break(tiny_coco(), "images", 0, file_name=None), "image id 3", "file_name"),
        (_break(tiny_coco(), "images", 1, id=3), "image id 3", "twice"),
        (_break(tiny_coco(), "categories", 1, name="person"), "category id 18", "two categories"),
        (_break(tiny_coco(), "categories", 0, id="1"), "categories[0]", "integer 'id'"),
    ],
)
def test_malformed_coco_names_file_and_place(tmp_path, data, place, reason):
    path = tmp_path / "instances_bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DataError) as err:
        load_coco_labels(path)
    assert err.value.file == str(path)
    assert reason in str(err.value) and str(path) in str(err.value)
    if place is not None:
        assert place in str(err.value)


def test_coco_file_that_is_not_json(tmp_path):
    path = tmp_path / "instances_bad.json"
    path.write_text('{"images": [\n  {"id": 1,,}\n]}')
    with pytest.raises(DataError, match="not valid JSON") as err:
        prepare_coco(path)
    assert err.value.file == str(path) and err.value.row == 2
    with pytest.raises(DataError, match="not found"):
        prepare_coco(tmp_path / "missing.json")
    with pytest.raises(DataError, match="ids must be"):
        prepare_coco(path, ids="row")


# ----------------------------------------------------------------------------------------------
# Published label data


def test_coco_reference_columns_are_the_coco_categories_in_json_order(coco_reference):
    assert list(coco_reference.columns[1:]) == list(COCO_CLASS_NAMES)


def test_coco_reference_ids_are_original_row_numbers(coco_reference):
    ids = coco_reference.index.astype(int).to_numpy()
    assert ids[:4].tolist() == [8, 17, 21, 22]
    assert (np.diff(ids) > 0).all()
    # Row numbers among the 118,287 - 1,021 images that have any annotation (docs/original.md
    # section 1).
    assert ids.max() < 118_287 - 1_021
    labels = coco_reference.drop(columns="fold")
    assert len(min_labels_filter(labels, 4)) == len(labels) == 33_052
    assert labels.to_numpy().sum(axis=1).mean() == pytest.approx(5.28, abs=0.005)


def test_nus_reference_counts(nus_reference):
    labels = nus_reference.drop(columns="fold")
    assert list(labels.columns) == [str(c) for c in range(81)]
    assert len(min_labels_filter(labels, 3)) == len(labels) == 24_624
    assert labels.to_numpy().sum(axis=1).mean() == pytest.approx(3.81, abs=0.005)


def test_nuswide_reproduces_the_published_rows(tmp_path, nus_reference):
    """A NUS-WIDE folder holding the published rows plus rows with fewer than 3 labels gives
    back exactly the published rows, in order."""
    published = nus_reference.drop(columns="fold").astype(np.uint8)
    rng = np.random.default_rng(1)
    n_extra = 3000
    extra = np.zeros((n_extra, 81), dtype=np.uint8)
    for row, k in zip(extra, rng.integers(0, 3, n_extra), strict=True):
        row[rng.choice(81, k, replace=False)] = 1
    matrix = np.concatenate([published.to_numpy(), extra])
    stems = list(published.index) + [f"{i % 900 + 1:04d}_{10**9 + i}" for i in range(n_extra)]
    order = rng.permutation(len(stems))
    matrix, stems = matrix[order], [stems[j] for j in order]
    folders = [NUSWIDE_CONCEPTS[int(np.argmax(row))] if row.any() else "actor" for row in matrix]
    write_nuswide_files(tmp_path, stems, folders, matrix)

    labels, concepts = prepare_nuswide(tmp_path)
    expected = published.loc[[s for s in stems if s in published.index]]
    pd.testing.assert_frame_equal(labels, expected, check_index_type=False)
    assert concepts == list(NUSWIDE_CONCEPTS)
    files = nuswide_image_files(tmp_path)
    assert files[stems[0]] == f"Flickr/{folders[0]}/{stems[0]}.jpg"


# ----------------------------------------------------------------------------------------------
# NUS-WIDE files


@pytest.fixture(scope="module")
def nus(tmp_path_factory):
    return make_nuswide_fixture(tmp_path_factory.mktemp("nus"))


def test_nuswide_fixture_rows_and_files(nus):
    labels, files, concepts = read_nuswide(nus["root"])
    assert list(labels.index) == nus["ids"] and list(files.index) == nus["ids"]
    assert concepts == nus["class_names"] and list(labels.columns) == [str(c) for c in range(81)]
    for stem in nus["ids"]:
        assert np.flatnonzero(labels.loc[stem].to_numpy()).tolist() == nus["labels"][stem]
        assert files[stem] == nus["files"][stem]
        assert (nus["root"] / files[stem]).is_file()
    kept, _ = prepare_nuswide(nus["root"])
    assert list(kept.index) == nus["kept_ids"] and 0 < nus["n_kept"] < nus["n_images"]
    assert kept.equals(labels.loc[nus["kept_ids"]])


def _nus_files(root, lines, rows, concepts=NUSWIDE_CONCEPTS, newline="\n"):
    (root / "ImageList").mkdir(parents=True, exist_ok=True)
    (root / "ImageList" / "Imagelist.txt").write_bytes(
        "".join(line + newline for line in lines).encode()
    )
    (root / "AllTags81.txt").write_text("".join(row + "\n" for row in rows))
    (root / "Concepts81.txt").write_text("".join(c + "\n" for c in concepts))


def _row(*ones):
    return " ".join("1" if c in ones else "0" for c in range(81))


def test_nuswide_windows_paths_with_a_drive_prefix(tmp_path):
    lines = [r"C:\ImageData\Flickr\actor\0001_2124494179.jpg", r"Flickr\sky\0002_174174086.jpg"]
    _nus_files(tmp_path, lines, [_row(1, 2, 3), _row(5) + " "], newline="\r\n")
    labels, files, _ = read_nuswide(tmp_path)
    assert list(files) == ["Flickr/actor/0001_2124494179.jpg", "Flickr/sky/0002_174174086.jpg"]
    assert list(labels.index) == ["0001_2124494179", "0002_174174086"]
    assert labels.to_numpy().sum(axis=1).tolist() == [3, 1]


def test_nuswide_files_in_the_archive_subfolders(tmp_path):
    _nus_files(tmp_path, [r"Flickr\actor\0001_1.jpg"], [_row(0, 1, 2)])
    (tmp_path / "NUS_WID_Tags").mkdir()
    (tmp_path / "AllTags81.txt").rename(tmp_path / "NUS_WID_Tags" / "AllTags81.txt")
    (tmp_path / "ConceptsList").mkdir()
    (tmp_path / "Concepts81.txt").rename(tmp_path / "ConceptsList" / "Concepts81.txt")
    assert len(prepare_nuswide(tmp_path)[0]) == 1


def test_nuswide_line_counts_must_agree(tmp_path):
    _nus_files(tmp_path, [r"Flickr\a\0001_1.jpg", r"Flickr\a\0002_2.jpg"], [_row(1, 2, 3)])
    with pytest.raises(DataError) as err:
        prepare_nuswide(tmp_path)
    message = str(err.value)
    assert "Imagelist.txt lists 2 images" in message and "AllTags81.txt has 1 rows" in message


@pytest.mark.parametrize(
    "rows, row, column, reason",
    [
        ([_row(1), _row(2).replace("0", "2", 1)], 2, "0", "'2' is not 0 or 1"),
        ([_row(1), _row(2)[:-2] + " x"], 2, "80", "'x' is not 0 or 1"),
        ([_row(1)[:-2], _row(2)], 1, None, "80 values, expected 81"),
        ([_row(1), _row(2) + " 0"], 2, None, "82 values, expected 81"),
        ([_row(1), "10 " + _row(2)[2:]], 2, "0", "'10' is not 0 or 1"),
    ],
)
def test_nuswide_bad_tag_values_name_line_and_column(tmp_path, rows, row, column, reason):
    _nus_files(tmp_path, [r"Flickr\a\0001_1.jpg", r"Flickr\a\0002_2.jpg"], rows)
    with pytest.raises(DataError) as err:
        prepare_nuswide(tmp_path)
    assert err.value.file == str(tmp_path / "AllTags81.txt")
    assert err.value.row == row and err.value.column == column and reason in str(err.value)


def test_nuswide_duplicate_stems_name_both_lines(tmp_path):
    lines = [r"Flickr\a\0001_1.jpg", r"Flickr\b\0002_2.jpg", r"Flickr\c\0001_1.jpg"]
    _nus_files(tmp_path, lines, [_row(1)] * 3)
    with pytest.raises(DataError, match="'0001_1' repeats the one of line 1") as err:
        prepare_nuswide(tmp_path)
    assert err.value.row == 3 and err.value.file.endswith("Imagelist.txt")


def test_nuswide_concepts_and_missing_files(tmp_path):
    _nus_files(tmp_path, [r"Flickr\a\0001_1.jpg"], [_row(1)], concepts=NUSWIDE_CONCEPTS[:80])
    with pytest.raises(DataError, match="80 concept names, expected 81"):
        prepare_nuswide(tmp_path)
    _nus_files(tmp_path, [r"Flickr\a\0001_1.jpg"], [_row(1)],
               concepts=("zebra",) + NUSWIDE_CONCEPTS[1:])
    with pytest.raises(DataError, match="'zebra' repeats the one of line 1") as err:
        prepare_nuswide(tmp_path)
    assert err.value.row == 81
    (tmp_path / "Concepts81.txt").unlink()
    with pytest.raises(DataError, match="Concepts81.txt"):
        prepare_nuswide(tmp_path)


def test_nuswide_blank_line_inside_a_file(tmp_path):
    _nus_files(tmp_path, [r"Flickr\a\0001_1.jpg", "", r"Flickr\a\0002_2.jpg"], [_row(1)] * 3)
    with pytest.raises(DataError, match="blank line") as err:
        prepare_nuswide(tmp_path)
    assert err.value.row == 2


# ----------------------------------------------------------------------------------------------
# Downloads, offline


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "server" / "archive.bin"
    path.parent.mkdir()
    path.write_bytes(np.random.default_rng(0).bytes(300_000))
    return path


def test_download_file_url_with_a_good_checksum(tmp_path, source, capsys):
    dest = tmp_path / "out" / "archive.bin"
    data = source.read_bytes()
    got = download(source.as_uri(), dest, sha1=_sha1(data),
                   sha256=hashlib.sha256(data).hexdigest(), progress=False)
    assert got == dest and dest.read_bytes() == data
    assert sorted(p.name for p in dest.parent.iterdir()) == ["archive.bin"]
    assert capsys.readouterr().err == ""
    source.unlink()  # present and verified: not fetched again
    assert download(source.as_uri(), dest, sha1=_sha1(data), progress=False) == dest


def test_download_checksum_mismatch_leaves_no_file(tmp_path, source):
    dest = tmp_path / "out" / "archive.bin"
    wrong = "0" * 40
    with pytest.raises(DataError) as err:
        download(source.as_uri(), dest, sha1=wrong, progress=False)
    message = str(err.value)
    assert str(dest) in message and wrong in message and _sha1(source.read_bytes()) in message
    assert list(dest.parent.iterdir()) == []


def test_download_replaces_a_file_with_a_wrong_checksum(tmp_path, source):
    dest = tmp_path / "archive.bin"
    dest.write_bytes(b"stale")
    data = source.read_bytes()
    download(source.as_uri(), dest, md5=hashlib.md5(data).hexdigest(), progress=False)
    assert dest.read_bytes() == data


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    payload = b""
    ranges: list = []

    def do_GET(self):  # noqa: N802 (http.server's naming)
        start = 0
        wanted = self.headers.get("Range")
        type(self).ranges.append(wanted)
        if wanted:
            start = int(wanted.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range",
                             f"bytes {start}-{len(self.payload) - 1}/{len(self.payload)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(self.payload) - start))
        self.end_headers()
        self.wfile.write(self.payload[start:])

    def log_message(self, *args):
        pass


def test_download_resumes_a_partial_file_over_http(tmp_path, monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    data = np.random.default_rng(1).bytes(200_000)
    handler = type("Handler", (_RangeHandler,), {"payload": data, "ranges": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        dest = tmp_path / "big.bin"
        (tmp_path / ".big.bin.part").write_bytes(data[:75_000])
        url = f"http://127.0.0.1:{server.server_address[1]}/big.bin"
        download(url, dest, sha1=_sha1(data), progress=False)
    finally:
        server.shutdown()
        server.server_close()
    assert handler.ranges == ["bytes=75000-"]
    assert dest.read_bytes() == data and not (tmp_path / ".big.bin.part").exists()


def test_extract_zip_members_and_rerun(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("annotations/x.json", "{}")
        zf.writestr("annotations/y.json", "[]")
    out = extract_zip(archive, tmp_path / "dest", ["annotations/y.json"], progress=False)
    assert out == [tmp_path / "dest" / "annotations" / "y.json"]
    assert not (tmp_path / "dest" / "annotations" / "x.json").exists()
    assert len(extract_zip(archive, tmp_path / "dest", progress=False)) == 2
    with pytest.raises(DataError, match="not in the archive"):
        extract_zip(archive, tmp_path / "dest", ["missing"], progress=False)
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../outside.txt", "x")
    with pytest.raises(DataError, match="outside"):
        extract_zip(evil, tmp_path / "dest", progress=False)
    (tmp_path / "not.zip").write_text("plain text")
    with pytest.raises(DataError, match="not a readable zip"):
        extract_zip(tmp_path / "not.zip", tmp_path / "dest", progress=False)


def test_download_coco_offline_puts_the_standard_layout(tmp_path, coco):
    server = tmp_path / "server"
    server.mkdir()
    ann_zip, img_zip = server / "annotations_trainval2017.zip", server / "train2017.zip"
    with zipfile.ZipFile(ann_zip, "w") as zf:
        zf.write(coco["annotations"], "annotations/instances_train2017.json")
        zf.writestr("annotations/captions_train2017.json", "{}")
    with zipfile.ZipFile(img_zip, "w") as zf:
        for path in sorted(coco["images"].iterdir()):
            zf.write(path, f"train2017/{path.name}")
    archives = {
        "annotations_archive": Archive(ann_zip.as_uri(), _sha1(ann_zip.read_bytes())),
        "images_archive": Archive(img_zip.as_uri(), _sha1(img_zip.read_bytes())),
    }
    root = tmp_path / "coco"
    annotations = download_coco(root, progress=False, **archives)
    assert annotations == root / "annotations" / "instances_train2017.json"
    assert not (root / "annotations" / "captions_train2017.json").exists()
    assert sorted(p.name for p in (root / "train2017").iterdir()) == sorted(
        p.name for p in coco["images"].iterdir()
    )
    assert not (root / ann_zip.name).exists() and not (root / img_zip.name).exists()
    pd.testing.assert_frame_equal(prepare_coco(annotations), prepare_coco(coco["annotations"]))
    ann_zip.unlink()
    img_zip.unlink()  # done once: a second call fetches nothing
    assert download_coco(root, progress=False, **archives) == annotations


def test_published_coco_archives_carry_their_sha1():
    from mlml_tf.datasets.download import COCO_ANNOTATIONS, COCO_TRAIN_IMAGES

    assert COCO_ANNOTATIONS.name == "annotations_trainval2017.zip"
    assert COCO_TRAIN_IMAGES.name == "train2017.zip"
    assert all(len(a.sha1) == 40 for a in (COCO_ANNOTATIONS, COCO_TRAIN_IMAGES))
