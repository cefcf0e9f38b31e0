"""COCO 2017 labels, row for row as the original read them through gluoncv (docs/original.md section
1).

An image is a row, a category a column; an entry is 1 when at least one annotation of that
category survives gluoncv's box check. The index is the sample id of the original files: the
row number among images with a surviving annotation, counted *before* the at-least-4-labels
filter (so the ids of the filtered set have gaps: 8, 17, 21, ...).

Example:
    >>> labels = prepare_coco("coco/annotations/instances_train2017.json")  # doctest: +SKIP
    >>> labels.shape                                                         # doctest: +SKIP
    (33052, 80)
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pycocotools.coco import COCO

from mlml_tf.errors import DataError

IdScheme = Literal["original", "coco"]

#: The 80 categories of COCO 2017 as ``(id, name, supercategory)``, in the order of the
#: ``categories`` list of ``instances_train2017.json`` (ids run 1..90 with gaps). Column k of the
#: label files is the k-th entry.
COCO_CATEGORIES: tuple[tuple[int, str, str], ...] = (
    (1, "person", "person"), (2, "bicycle", "vehicle"), (3, "car", "vehicle"),
    (4, "motorcycle", "vehicle"), (5, "airplane", "vehicle"), (6, "bus", "vehicle"),
    (7, "train", "vehicle"), (8, "truck", "vehicle"), (9, "boat", "vehicle"),
    (10, "traffic light", "outdoor"), (11, "fire hydrant", "outdoor"),
    (13, "stop sign", "outdoor"), (14, "parking meter", "outdoor"), (15, "bench", "outdoor"),
    (16, "bird", "animal"), (17, "cat", "animal"), (18, "dog", "animal"), (19, "horse", "animal"),
    (20, "sheep", "animal"), (21, "cow", "animal"), (22, "elephant", "animal"),
    (23, "bear", "animal"), (24, "zebra", "animal"), (25, "giraffe", "animal"),
    (27, "backpack", "accessory"), (28, "umbrella", "accessory"), (31, "handbag", "accessory"),
    (32, "tie", "accessory"), (33, "suitcase", "accessory"), (34, "frisbee", "sports"),
    (35, "skis", "sports"), (36, "snowboard", "sports"), (37, "sports ball", "sports"),
    (38, "kite", "sports"), (39, "baseball bat", "sports"), (40, "baseball glove", "sports"),
    (41, "skateboard", "sports"), (42, "surfboard", "sports"), (43, "tennis racket", "sports"),
    (44, "bottle", "kitchen"), (46, "wine glass", "kitchen"), (47, "cup", "kitchen"),
    (48, "fork", "kitchen"), (49, "knife", "kitchen"), (50, "spoon", "kitchen"),
    (51, "bowl", "kitchen"), (52, "banana", "food"), (53, "apple", "food"),
    (54, "sandwich", "food"), (55, "orange", "food"), (56, "broccoli", "food"),
    (57, "carrot", "food"), (58, "hot dog", "food"), (59, "pizza", "food"), (60, "donut", "food"),
    (61, "cake", "food"), (62, "chair", "furniture"), (63, "couch", "furniture"),
    (64, "potted plant", "furniture"), (65, "bed", "furniture"), (67, "dining table", "furniture"),
    (70, "toilet", "furniture"), (72, "tv", "electronic"), (73, "laptop", "electronic"),
    (74, "mouse", "electronic"), (75, "remote", "electronic"), (76, "keyboard", "electronic"),
    (77, "cell phone", "electronic"), (78, "microwave", "appliance"), (79, "oven", "appliance"),
    (80, "toaster", "appliance"), (81, "sink", "appliance"), (82, "refrigerator", "appliance"),
    (84, "book", "indoor"), (85, "clock", "indoor"), (86, "vase", "indoor"),
    (87, "scissors", "indoor"), (88, "teddy bear", "indoor"), (89, "hair drier", "indoor"),
    (90, "toothbrush", "indoor"),
)
COCO_CLASS_NAMES: tuple[str, ...] = tuple(name for _, name, _ in COCO_CATEGORIES)

#: Minimum number of positive labels of the COCO subset of the paper (docs/original.md section 1).
COCO_MIN_LABELS = 4


def box_survives(bbox: Any, width: float, height: float) -> bool:
    """gluoncv's box check: does a COCO ``[x, y, w, h]`` box keep a non-empty extent?

    The box becomes x2 = x + max(w - 1, 0), y2 = y + max(h - 1, 0); all four corners are
    clipped to [0, width - 1] x [0, height - 1]; it survives when x2 > x1 and y2 > y1. So a box
    of width 1 or less, or one lying wholly outside the image, does not survive.

    Example:
        >>> box_survives([10, 10, 5, 5], 100, 100), box_survives([10, 10, 1, 5], 100, 100)
        (True, False)
    """
    x, y, w, h = bbox
    x1 = min(width - 1, max(0, x))
    y1 = min(height - 1, max(0, y))
    x2 = min(width - 1, max(0, x + max(w - 1, 0)))
    y2 = min(height - 1, max(0, y + max(h - 1, 0)))
    return x2 > x1 and y2 > y1


def annotation_counts(annotation: Mapping[str, Any], width: float, height: float) -> bool:
    """Whether one annotation makes its category a positive label of its image (docs/original.md
    section 1).

    Crowd annotations count like any other (gluoncv read them with ``iscrowd=None``); an
    annotation needs a positive ``area``, no ``ignore: 1`` flag, and a box that survives
    :func:`box_survives`.
    """
    if annotation.get("ignore", 0) == 1:
        return False
    return annotation["area"] > 0 and box_survives(annotation["bbox"], width, height)


def read_coco(
    annotations: str | os.PathLike, ids: IdScheme = "original"
) -> tuple[pd.DataFrame, pd.Series]:
    """Read a COCO instances file into the label table and the image file of each row.

    Args:
        annotations: path of a COCO instances JSON, e.g. ``instances_train2017.json``.
        ids: ``"original"`` (default): the id of a row is its 0-based position among the images
            that keep at least one annotation, as in the published label files;
            ``"coco"``: the COCO image id.

    Returns:
        ``(labels, files)``. ``labels``: one row per image with a surviving annotation, in
        ascending COCO image id order; columns = category names in the order of the JSON's
        ``categories`` list; uint8 0/1; index = ids as strings. ``files``: the same index ->
        the image's ``file_name`` (relative to the image folder, see :func:`coco_image_root`).

    Raises:
        DataError: the file is not JSON or not a COCO instances file; the message names the
            file and the offending image, annotation or category.
    """
    if ids not in ("original", "coco"):
        raise DataError(f"ids must be 'original' or 'coco', got {ids!r}")
    path = Path(annotations)
    coco = _load_coco(path)
    categories = coco.loadCats(coco.getCatIds())
    column_of = {cat["id"]: k for k, cat in enumerate(categories)}

    rows: list[list[int]] = []
    image_ids: list[int] = []
    file_names: list[str] = []
    for image_id in sorted(coco.getImgIds()):
        image = coco.imgs[image_id]
        # A list, not a bare id: pycocotools treats a bare str id as an iterable of characters.
        found = coco.loadAnns(coco.getAnnIds(imgIds=[image_id], iscrowd=None))
        classes = {
            column_of[ann["category_id"]]
            for ann in found
            if annotation_counts(ann, image["width"], image["height"])
        }
        if classes:
            rows.append(sorted(classes))
            image_ids.append(image_id)
            file_names.append(image["file_name"])

    matrix = np.zeros((len(rows), len(categories)), dtype=np.uint8)
    for r, classes in enumerate(rows):
        matrix[r, classes] = 1
    if ids == "original":
        index = pd.Index([str(r) for r in range(len(rows))])
    else:
        index = pd.Index([str(i) for i in image_ids])
    columns = pd.Index([cat["name"] for cat in categories])
    labels = pd.DataFrame(matrix, index=index, columns=columns)
    files = pd.Series(file_names, index=index.copy(), name="file_name")
    return labels, files


def coco_labels(annotations: str | os.PathLike, ids: IdScheme = "original") -> pd.DataFrame:
    """The label table of :func:`read_coco`: every image with a surviving annotation."""
    return read_coco(annotations, ids)[0]


def coco_image_files(annotations: str | os.PathLike, ids: IdScheme = "original") -> pd.Series:
    """Id -> image ``file_name`` for the rows of :func:`coco_labels` (same ids, same order)."""
    return read_coco(annotations, ids)[1]


def coco_image_root(annotations: str | os.PathLike) -> Path:
    """Folder of the images of a COCO instances file in the standard layout.

    ``<root>/annotations/instances_<split>.json`` has its images in ``<root>/<split>/``
    (``train2017/`` for the paper's data).
    """

    path = Path(annotations)
    match = re.fullmatch(r"instances_(\w+)\.json", path.name)
    if match is None:
        raise DataError(
            "cannot tell the image folder: the file is not named instances_<split>.json "
            "(give the image folder explicitly)",
            file=path,
        )
    return path.parent.parent / match.group(1)


def min_labels_filter(frame: pd.DataFrame, min_labels: int) -> pd.DataFrame:
    """Keep the rows with at least ``min_labels`` positive labels; ids and order unchanged.

    The ids stay those given before filtering, as in the original files (docs/original.md section
    1).
    """
    if isinstance(min_labels, bool) or not isinstance(min_labels, (int, np.integer)):
        raise DataError(f"min_labels must be an integer, got {min_labels!r}")
    if min_labels < 0:
        raise DataError(f"min_labels must be >= 0, got {min_labels}")
    return frame[frame.to_numpy().sum(axis=1) >= min_labels]


def prepare_coco(
    annotations: str | os.PathLike,
    min_labels: int = COCO_MIN_LABELS,
    ids: IdScheme = "original",
) -> pd.DataFrame:
    """The COCO subset of the paper: images with at least ``min_labels`` labels (docs/original.md
    section 1).

    Args:
        annotations: path of ``instances_train2017.json``.
        min_labels: minimum number of positive labels of a kept image (the paper: 4).
        ids: ``"original"`` row ids (default) or ``"coco"`` image ids; see :func:`read_coco`.

    Returns:
        uint8 0/1 DataFrame, index = ids (str), columns = the 80 category names. On COCO 2017
        train: 33,052 rows, 5.28 labels each on average.
    """
    return min_labels_filter(coco_labels(annotations, ids), min_labels)


def _load_coco(path: Path) -> COCO:
    try:
        with open(path, encoding="utf-8") as f:
            dataset = json.load(f)
    except FileNotFoundError:
        raise DataError("file not found", file=path) from None
    except json.JSONDecodeError as err:
        raise DataError(f"not valid JSON: {err.msg}", file=path, row=err.lineno) from None
    except UnicodeDecodeError as err:
        raise DataError(f"not a UTF-8 text file ({err.reason})", file=path) from None
    except OSError as err:
        raise DataError(f"cannot read ({err.strerror})", file=path) from None
    _check_instances(dataset, path)
    coco = COCO()
    coco.dataset = dataset
    # pycocotools prints progress messages while indexing.
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    )


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_instances(dataset: Any, path: Path) -> None:
    """Check the parts of a COCO instances file that the labels depend on."""
    if not isinstance(dataset, dict):
        raise DataError("not a COCO instances file: the top level is not a JSON object", file=path)
    for key in ("images", "annotations", "categories"):
        if not isinstance(dataset.get(key), list):
            raise DataError(f"not a COCO instances file: no {key!r} list", file=path)

    category_ids: set[int] = set()
    names: set[str] = set()
    for pos, cat in enumerate(dataset["categories"]):
        where = f"categories[{pos}]"
        if not isinstance(cat, dict) or not _is_id(cat.get("id")):
            raise DataError(f"{where} has no integer 'id'", file=path)
        where = f"category id {cat['id']}"
        if not isinstance(cat.get("name"), str) or not cat["name"]:
            raise DataError(f"{where} has no 'name'", file=path)
        if cat["id"] in category_ids:
            raise DataError(f"{where} appears twice", file=path)
        if cat["name"] in names:
            raise DataError(f"{where}: name {cat['name']!r} is used by two categories", file=path)
        category_ids.add(cat["id"])
        names.add(cat["name"])

    image_ids: set[int] = set()
    for pos, image in enumerate(dataset["images"]):
        if not isinstance(image, dict) or not _is_id(image.get("id")):
            raise DataError(f"images[{pos}] has no integer 'id'", file=path)
        where = f"image id {image['id']}"
        if image["id"] in image_ids:
            raise DataError(f"{where} appears twice", file=path)
        if not isinstance(image.get("file_name"), str) or not image["file_name"]:
            raise DataError(f"{where} has no 'file_name'", file=path)
        for key in ("width", "height"):
            if not _is_number(image.get(key)) or image[key] <= 0:
                raise DataError(
                    f"{where}: {key} {image.get(key)!r} is not a positive number", file=path
                )
        image_ids.add(image["id"])

    annotation_ids: set[int] = set()
    for pos, ann in enumerate(dataset["annotations"]):
        if not isinstance(ann, dict) or not _is_id(ann.get("id")):
            raise DataError(f"annotations[{pos}] has no integer 'id'", file=path)
        where = f"annotation id {ann['id']}"
        if ann["id"] in annotation_ids:
            raise DataError(f"{where} appears twice", file=path)
        # A list or an object is no id (and cannot even be looked up in a set).
        if not _is_id(ann.get("image_id")) or ann["image_id"] not in image_ids:
            raise DataError(f"{where}: image_id {ann.get('image_id')!r} is not an image", file=path)
        where = f"{where} (image id {ann['image_id']})"
        if not _is_id(ann.get("category_id")) or ann["category_id"] not in category_ids:
            raise DataError(
                f"{where}: category_id {ann.get('category_id')!r} is not a category", file=path
            )
        bbox = ann.get("bbox")
        if (
            not isinstance(bbox, list)
            or len(bbox) != 4
            or not all(_is_number(v) for v in bbox)
            or bbox[2] < 0
            or bbox[3] < 0
        ):
            raise DataError(
                f"{where}: bbox {bbox!r} is not [x, y, width, height] with width, height >= 0",
                file=path,
            )
        if not _is_number(ann.get("area")):
            raise DataError(f"{where}: area {ann.get('area')!r} is not a number", file=path)
        annotation_ids.add(ann["id"])
