"""A small data set of one's own, made of the two photographs scikit-learn ships.

``sklearn.datasets.load_sample_images`` holds two real photographs (a pagoda above a lake among
trees, and a dahlia among leaves), installed with the package's own dependencies. Each picture
of the data set is a random crop of one of them; its labels say what the crop shows, from a
coarse map of each photograph's regions (:data:`REGIONS`), and a share of them is left unknown,
as in a table one labels by hand. The Own-data notebook, the tests and the benchmarks use it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_sample_images

from mlml_tf.files.atomic import write_bytes_atomic

#: The regions of each photograph, as (class, shape, box): a rectangle or an ellipse given by
#: (left, top, right, bottom) in fractions of the width and height.
REGIONS: dict[str, tuple[tuple[str, str, tuple[float, float, float, float]], ...]] = {
    "china.jpg": (
        ("sky", "rectangle", (0.0, 0.0, 1.0, 0.47)),
        ("building", "rectangle", (0.28, 0.04, 0.37, 0.16)),
        ("building", "rectangle", (0.16, 0.15, 0.51, 0.42)),
        ("building", "rectangle", (0.12, 0.42, 0.56, 0.86)),
        ("building", "rectangle", (0.30, 0.86, 0.58, 0.98)),
        ("water", "rectangle", (0.56, 0.49, 0.86, 0.72)),
        ("tree", "rectangle", (0.0, 0.44, 0.12, 1.0)),
        ("tree", "rectangle", (0.0, 0.86, 0.30, 1.0)),
        ("tree", "rectangle", (0.56, 0.72, 1.0, 1.0)),
        ("tree", "rectangle", (0.85, 0.40, 1.0, 1.0)),
    ),
    "flower.jpg": (
        ("leaves", "rectangle", (0.0, 0.0, 1.0, 1.0)),
        ("flower", "ellipse", (0.255, 0.16, 0.695, 0.82)),
        ("flower", "ellipse", (0.41, 0.85, 0.65, 1.09)),
    ),
}
#: The classes, in the table's order.
CLASSES: tuple[str, ...] = ("building", "sky", "tree", "water", "flower", "leaves")
#: The share of a crop a region must cover for the crop to show its class.
SHOWN = 0.15


def region_masks(name: str, height: int, width: int) -> dict[str, np.ndarray]:
    """One boolean (height, width) mask per class of photograph ``name``; a later region of
    the same photograph is drawn over the earlier ones (a building in front of the sky)."""
    masks = {c: np.zeros((height, width), bool) for c in CLASSES}
    y, x = np.mgrid[0:height, 0:width]
    y, x = (y + 0.5) / height, (x + 0.5) / width
    for cls, shape, (left, top, right, bottom) in REGIONS[name]:
        if shape == "rectangle":
            inside = (x >= left) & (x < right) & (y >= top) & (y < bottom)
        else:
            cx, cy, rx, ry = (left + right) / 2, (top + bottom) / 2, (right - left) / 2, \
                (bottom - top) / 2
            inside = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0
        for other in masks.values():
            other &= ~inside
        masks[cls] |= inside
    return masks


def own_data_example(root: str | os.PathLike, n_images: int = 48, seed: int = 0,
                     unknown: float = 0.3) -> dict:
    """Write ``root/images/`` (JPEG and PNG files in two subfolders, each a random crop of one
    of the two photographs, maybe mirrored, at a random small size) and ``root/labels.csv``
    over it: what each crop shows, with a share ``unknown`` of the entries left empty (some
    written -1). Seeded: the same seed writes the same files.

    Returns:
        The paths (``images``, ``labels``), the image names, the complete labels (``truth``,
        (n_images, classes) int8) and the ``classes``.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    photographs = load_sample_images()
    sources = []
    for path, picture in zip(photographs.filenames, photographs.images, strict=True):
        name = Path(path).name
        sources.append((picture, region_masks(name, *picture.shape[:2])))
    images, names, truth = root / "images", [], []
    for i in range(n_images):
        picture, masks = sources[i % len(sources)]
        h, w = picture.shape[:2]
        ch, cw = int(h * rng.uniform(0.35, 0.75)), int(w * rng.uniform(0.35, 0.75))
        top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        window = (slice(top, top + ch), slice(left, left + cw))
        crop = picture[window]
        crop = crop[:, ::-1] if rng.random() < 0.5 else crop
        size = (int(rng.integers(48, 96)), int(rng.integers(48, 96)))
        name = f"{'a' if i % 2 else 'b'}/img{i:03d}.{'png' if i % 3 == 0 else 'jpg'}"
        path = images / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(crop)).resize(size, Image.BILINEAR).save(
            path, format="PNG" if name.endswith("png") else "JPEG", quality=90)
        names.append(name)
        truth.append([int(masks[c][window].mean() >= SHOWN) for c in CLASSES])
    truth = np.array(truth, dtype=np.int8)
    shown = truth.astype(object)
    hide = rng.random(truth.shape) < unknown
    shown[hide] = ""
    shown[hide & (rng.random(truth.shape) < 0.3)] = -1
    lines = ["image," + ",".join(CLASSES)]
    lines += [",".join([n, *map(str, row)]) for n, row in zip(names, shown, strict=True)]
    labels = root / "labels.csv"
    write_bytes_atomic(labels, ("\n".join(lines) + "\n").encode())
    return {"images": images, "labels": labels, "names": names, "truth": truth,
            "classes": list(CLASSES)}
