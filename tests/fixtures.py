"""What the tests share: small raw data sets in the real file formats of COCO 2017 and NUS-WIDE
on real photographs, data folders with feature caches that runs learn from, and file digests.

The images come from ``skimage.data`` (cropped, flipped and resized so that every file differs).
The labels are random but planned: each annotation is made to count or not by construction
(crowd boxes count, boxes cut by the image border count, boxes that collapse do not), so the
expected label table is known without running the code under test. Everything is determined by
``seed``.

Tests import it as ``from fixtures import make_coco_fixture, tree_digests``: pytest puts
this folder on ``sys.path`` (a top-level ``tests`` package installed by a dependency would shadow
``tests.fixtures``).
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from mlml_tf.datasets.coco import COCO_CATEGORIES
from mlml_tf.datasets.nuswide import NUSWIDE_CONCEPTS
from mlml_tf.features.cache import FeatureCache, build_feature_cache
from mlml_tf.files.layout import write_groundtruth
from mlml_tf.files.split import split

# Categories drawn for the COCO fixture, with their relative frequencies: a few classes carry
# most labels, as in COCO, so that folds and class weights have something to work on.
COCO_POOL = {
    "person": 8, "car": 4, "dog": 3, "cat": 3, "chair": 3, "cup": 2, "bottle": 2,
    "bicycle": 2, "bird": 1, "book": 1, "clock": 1, "tv": 1,
}
NUS_POOL = {
    "sky": 8, "clouds": 5, "water": 5, "sunset": 3, "beach": 3, "tree": 2, "grass": 2,
    "animal": 2, "buildings": 2, "flowers": 1, "snow": 1, "cat": 1, "person": 1,
}
# Annotations that must not count (docs/original.md section 1): how each one is placed in a W x H
# image.
NON_COUNTING = ("zero_width", "unit_width", "right_of_image", "below_image", "zero_area")


@functools.lru_cache(maxsize=1)
def _photographs() -> tuple[np.ndarray, ...]:
    from skimage import data

    names = [
        "astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "hubble_deep_field",
        "immunohistochemistry", "clock", "moon", "page", "text", "brick", "grass", "gravel",
        "colorwheel", "retina",
    ]
    images = [getattr(data, name)() for name in names] + [data.stereo_motorcycle()[0]]
    return tuple(np.stack([im] * 3, axis=-1) if im.ndim == 2 else im[..., :3] for im in images)


def _photo(i: int, rng: np.random.Generator) -> np.ndarray:
    """A distinct RGB uint8 picture: a random crop of a skimage photograph, maybe mirrored,
    resized to a small random size."""
    from skimage.transform import resize

    src = _photographs()[i % len(_photographs())]
    h, w = src.shape[:2]
    ch, cw = int(h * rng.uniform(0.55, 1.0)), int(w * rng.uniform(0.55, 1.0))
    y0, x0 = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    crop = src[y0:y0 + ch, x0:x0 + cw]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    size = (int(rng.integers(80, 161)), int(rng.integers(96, 193)))
    return (resize(crop, size, anti_aliasing=True) * 255).round().astype(np.uint8)


def _save_jpeg(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format="JPEG", quality=90)


def _draw(pool: dict[str, int], n: int, rng: np.random.Generator) -> list[str]:
    names = list(pool)
    p = np.array([pool[k] for k in names], dtype=float)
    return [names[j] for j in rng.choice(len(names), size=n, replace=False, p=p / p.sum())]


def _rle(mask: np.ndarray) -> dict:
    """Uncompressed COCO RLE (column-major run lengths, starting with a run of zeros)."""
    flat = mask.flatten(order="F").astype(np.int8)
    edges = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], edges, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0] == 1:
        counts = [0] + counts
    return {"counts": counts, "size": [int(mask.shape[0]), int(mask.shape[1])]}


def _box(width: int, height: int, rng: np.random.Generator) -> list[float]:
    """A box well inside the image (width and height at least 4 pixels)."""
    bw = float(rng.uniform(4, width * 0.6))
    bh = float(rng.uniform(4, height * 0.6))
    x = float(rng.uniform(0, width - bw - 1))
    y = float(rng.uniform(0, height - bh - 1))
    return [round(x, 2), round(y, 2), round(bw, 2), round(bh, 2)]


def _non_counting_box(kind: str, width: int, height: int, rng: np.random.Generator) -> list:
    x, y, w, h = _box(width, height, rng)
    if kind == "zero_width":
        w = 0.0
    elif kind == "unit_width":  # x2 = x + max(1 - 1, 0) = x1
        w = 1.0
    elif kind == "right_of_image":  # clipped to x1 = x2 = width - 1
        x = float(width + 3)
    elif kind == "below_image":
        y = float(height) + 0.5
    return [round(x, 2), round(y, 2), w, h]


def make_coco_fixture(root: str | Path, n_images: int = 40, seed: int = 0) -> dict:
    """Write a COCO 2017-format data set under ``root`` and return what it must give.

    Files: ``root/annotations/instances_train2017.json`` (keys info, licenses, images,
    annotations, categories; the 80 real categories with their real ids, in the real order) and
    ``root/train2017/{image_id:012d}.jpg``. The image list is stored in shuffled order.

    Planned content (``n_images`` >= 8): one image with no annotation; one whose annotations
    all fail the box check; one with 3 counting categories plus a 4th that only has a
    non-counting box (3 labels: excluded by the 4-label filter); then about 60% of the rest with
    4..7 labels and the others with 1..3. Crowd-only classes (which count), boxes cut by the
    image border (which count) and every kind of non-counting box are spread over the images.

    Returns:
        dict with ``root``, ``annotations`` (path), ``images`` (the ``train2017`` folder),
        ``class_names`` (80), ``image_ids`` (all, ascending), ``kept_ids`` (ids with at least one
        counting annotation, ascending), ``labels`` (image id -> sorted class names that count),
        ``min4_ids`` (kept ids with >= 4 labels), ``file_names`` (image id -> file name),
        ``n_images``, ``n_kept``, ``n_min4``, and ``cases`` (image ids of the planned edge cases:
        ``empty``, ``all_non_counting``, ``three_plus_non_counting``, ``crowd_only``,
        ``clipped`` and ``non_counting``, a dict kind -> [image id]).
    """
    if n_images < 8:
        raise ValueError("n_images must be at least 8")
    root = Path(root)
    rng = np.random.default_rng(seed)
    image_ids = sorted(int(i) + 1 for i in rng.choice(600_000, n_images, replace=False))
    n_rich = round((n_images - 3) * 0.6)
    roles = ["empty", "all_non_counting", "three_plus_non_counting"]
    roles += ["rich"] * n_rich + ["poor"] * (n_images - 3 - n_rich)
    roles = [roles[j] for j in rng.permutation(n_images)]

    category_id = {name: cid for cid, name, _ in COCO_CATEGORIES}
    images, annotations = [], []
    labels: dict[int, list[str]] = {}
    cases: dict = {"crowd_only": [], "clipped": [], "non_counting": {k: [] for k in NON_COUNTING}}
    kinds = iter(NON_COUNTING * n_images)
    crowd_turn = clipped_turn = 0

    def add(image_id: int, name: str, bbox: list, area: float, crowd: dict | None = None):
        x, y, w, h = bbox
        segmentation = crowd or [[x, y, x + w, y, x + w, y + h, x, y + h]]
        annotations.append({
            "id": 0, "image_id": image_id, "category_id": category_id[name],
            "bbox": bbox, "area": round(float(area), 2), "iscrowd": int(crowd is not None),
            "segmentation": segmentation,
        })

    def add_non_counting(image_id: int, name: str, width: int, height: int):
        kind = next(kinds)
        bbox = _non_counting_box(kind, width, height, rng)
        add(image_id, name, bbox, 0.0 if kind == "zero_area" else bbox[2] * bbox[3])
        cases["non_counting"][kind].append(image_id)

    for i, (image_id, role) in enumerate(zip(image_ids, roles, strict=True)):
        pixels = _photo(i, rng)
        height, width = pixels.shape[:2]
        file_name = f"{image_id:012d}.jpg"
        _save_jpeg(root / "train2017" / file_name, pixels)
        images.append({
            "license": int(rng.integers(1, 9)), "file_name": file_name,
            "coco_url": f"http://images.cocodataset.org/train2017/{file_name}",
            "height": height, "width": width, "date_captured": "2013-11-14 16:28:13",
            "flickr_url": "", "id": image_id,
        })
        if role == "empty":
            cases["empty"] = image_id
            continue
        if role == "all_non_counting":
            cases["all_non_counting"] = image_id
            for name in _draw(COCO_POOL, 2, rng):
                add_non_counting(image_id, name, width, height)
            continue
        if role == "rich":
            n = int(rng.integers(4, 8))
        elif role == "poor":
            n = int(rng.integers(1, 4))
        else:
            n = 3
        names = _draw(COCO_POOL, n + 1, rng)
        present, absent = names[:n], names[n]
        for j, name in enumerate(present):
            if j == 0 and role == "rich" and crowd_turn % 3 == 0:
                # This class has only a crowd region: gluoncv counts it all the same.
                mask = np.zeros((height, width), dtype=bool)
                x, y, w, h = _box(width, height, rng)
                mask[int(y):int(y + h) + 1, int(x):int(x + w) + 1] = True
                add(image_id, name, [x, y, w, h], mask.sum(), crowd=_rle(mask))
                cases["crowd_only"].append(image_id)
            elif j == 1 and clipped_turn % 3 == 0:
                # Starts left of the image and is clipped to x1 = 0, yet keeps an extent.
                x, y, w, h = _box(width, height, rng)
                add(image_id, name, [round(-w / 2, 2), y, w, h], w * h / 2)
                cases["clipped"].append(image_id)
            else:
                for _ in range(int(rng.integers(1, 4))):
                    bbox = _box(width, height, rng)
                    add(image_id, name, bbox, bbox[2] * bbox[3] * 0.8)
        crowd_turn += role == "rich"
        clipped_turn += n >= 2
        if role == "three_plus_non_counting" or rng.random() < 0.4:
            add_non_counting(image_id, absent, width, height)
        if role == "three_plus_non_counting":
            cases["three_plus_non_counting"] = image_id
        labels[image_id] = sorted(present, key=list(category_id).index)

    order = rng.permutation(len(annotations))
    annotations = [annotations[j] for j in order]
    for k, ann in enumerate(annotations):
        ann["id"] = 100_000 + 37 * k
    dataset = {
        "info": {
            "description": "COCO 2017 Dataset (test fixture)", "url": "http://cocodataset.org",
            "version": "1.0", "year": 2017, "contributor": "COCO Consortium",
            "date_created": "2017/09/01",
        },
        "licenses": [{"url": "http://creativecommons.org/licenses/by/2.0/", "id": k,
                      "name": "Attribution License"} for k in range(1, 9)],
        "images": [images[j] for j in rng.permutation(len(images))],
        "annotations": annotations,
        "categories": [{"supercategory": sup, "id": cid, "name": name}
                       for cid, name, sup in COCO_CATEGORIES],
    }
    path = root / "annotations" / "instances_train2017.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dataset))

    kept = sorted(labels)
    min4 = [i for i in kept if len(labels[i]) >= 4]
    return {
        "root": root, "annotations": path, "images": root / "train2017",
        "class_names": [name for _, name, _ in COCO_CATEGORIES],
        "image_ids": image_ids, "kept_ids": kept, "labels": labels, "min4_ids": min4,
        "file_names": {image_id: f"{image_id:012d}.jpg" for image_id in image_ids},
        "n_images": n_images, "n_kept": len(kept), "n_min4": len(min4), "cases": cases,
    }


def write_nuswide_files(
    root: str | Path, stems: list[str], folders: list[str], matrix: np.ndarray,
    concepts: list[str] | tuple[str, ...] = NUSWIDE_CONCEPTS,
) -> None:
    """Write ``ImageList/Imagelist.txt``, ``AllTags81.txt`` and ``Concepts81.txt`` under ``root``
    (the list in Windows form, ``Flickr\\<folder>\\<stem>.jpg``)."""
    root = Path(root)
    (root / "ImageList").mkdir(parents=True, exist_ok=True)
    (root / "ImageList" / "Imagelist.txt").write_text(
        "".join(f"Flickr\\{f}\\{s}.jpg\n" for s, f in zip(stems, folders, strict=True))
    )
    rows = np.asarray(matrix, dtype=np.uint8).astype(str)
    (root / "AllTags81.txt").write_text("".join(" ".join(row) + "\n" for row in rows))
    (root / "Concepts81.txt").write_text("".join(f"{c}\n" for c in concepts))


def make_nuswide_fixture(root: str | Path, n_images: int = 30, seed: int = 0) -> dict:
    """Write a NUS-WIDE-format data set under ``root`` and return what it must give.

    Files: ``ImageList/Imagelist.txt``, ``AllTags81.txt``, ``Concepts81.txt`` (the 81 real
    concept names) and the images ``root/Flickr/<folder>/<stem>.jpg``; stems look like the real
    ones (``0007_2124494179``). About a quarter of the images have fewer than 3 labels.

    Returns:
        dict with ``root``, ``class_names`` (81), ``ids`` (all stems in list order),
        ``kept_ids`` (stems with >= 3 labels, in list order), ``labels`` (stem -> sorted
        column indexes that are 1), ``files`` (stem -> ``Flickr/<folder>/<stem>.jpg``),
        ``n_images`` and ``n_kept``.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    n_poor = max(2, n_images // 4)
    poor = set(rng.choice(n_images, n_poor, replace=False).tolist())
    column = {name: k for k, name in enumerate(NUSWIDE_CONCEPTS)}
    photo_ids = 10**8 + rng.choice(29 * 10**8, n_images, replace=False)
    stems, folders = [], []
    matrix = np.zeros((n_images, len(NUSWIDE_CONCEPTS)), dtype=np.uint8)
    for i in range(n_images):
        n = int(rng.integers(0, 3)) if i in poor else int(rng.integers(3, 7))
        names = _draw(NUS_POOL, n, rng)
        matrix[i, [column[c] for c in names]] = 1
        # NUS-WIDE folders are named after the Flickr query that found the image.
        folders.append(names[0] if names else "actor")
        stems.append(f"{i % 40 + 1:04d}_{photo_ids[i]}")
        _save_jpeg(root / "Flickr" / folders[i] / f"{stems[i]}.jpg", _photo(i, rng))
    write_nuswide_files(root, stems, folders, matrix)
    labels = {s: np.flatnonzero(row).tolist() for s, row in zip(stems, matrix, strict=True)}
    kept = [s for s in stems if len(labels[s]) >= 3]
    return {
        "root": root, "class_names": list(NUSWIDE_CONCEPTS), "ids": stems, "kept_ids": kept,
        "labels": labels,
        "files": {s: f"Flickr/{f}/{s}.jpg" for s, f in zip(stems, folders, strict=True)},
        "n_images": n_images, "n_kept": len(kept),
    }



def make_own_fixture(root: str | Path, n_images: int = 48, seed: int = 0,
                     unknown: float = 0.3) -> dict:
    """A user's own images folder and label table (:func:`mlml_tf.datasets.photos.own_data_example`,
    what the Own-data notebook shows), under ``root``."""
    from mlml_tf.datasets.photos import own_data_example

    return own_data_example(root, n_images, seed, unknown)


# ---------------------------------------------------------------------- files and data folders


def tree_digests(root: str | Path, pattern: str = "*", locks: bool = False) -> dict[str, str]:
    """Every file under ``root`` matching ``pattern`` (hidden ones too; ``.lock`` files only
    with ``locks``) -> the SHA-256 of its bytes, by path relative to ``root``."""
    root = Path(root)
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob(pattern))
            if p.is_file() and (locks or p.name != ".lock")}


def top_classes(reference: pd.DataFrame, rows: int, classes: int,
                keep_empty: bool = False) -> pd.DataFrame:
    """The first ``rows`` rows of a published label table (its ``fold`` column dropped) on their
    ``classes`` most frequent classes; rows without a positive left out unless ``keep_empty``."""
    frame = reference.drop(columns="fold").iloc[:rows]
    frame = frame.loc[:, frame.sum().sort_values(ascending=False).index[:classes]]
    return (frame if keep_empty else frame[frame.sum(axis=1) > 0]).astype(np.uint8)


def learnable_features(labels: np.ndarray, shape: tuple[int, ...], seed: int = 0,
                       noise: float = 0.5) -> np.ndarray:
    """Features that carry the labels: a fixed random projection of them, plus noise."""
    rng = np.random.default_rng(seed)
    proj = rng.normal(size=(labels.shape[1], int(np.prod(shape))))
    x = np.asarray(labels) @ proj + noise * rng.normal(size=(len(labels), proj.shape[1]))
    return x.reshape(len(labels), *shape).astype(np.float32)


def split_folder(root: str | Path, labels: pd.DataFrame, **split_args) -> Path:
    """``root/data``: ``labels`` as its groundtruth, split in the original's layout."""
    data = Path(root) / "data"
    write_groundtruth(data, labels)
    split(data, **split_args)
    return data


def feature_cache(folder: str | Path, ids, features: np.ndarray, settings: dict | None = None,
                  batches: int = 1) -> FeatureCache:
    """A feature cache of ``features`` (one row per id), built in ``batches`` batches."""
    return build_feature_cache(folder, list(ids), lambda: iter(np.array_split(features, batches)),
                               lambda batch: batch, settings or {"backbone": "projection"},
                               progress=False)
