"""An offline multi-label data set: mosaics of handwritten digits, with labels that co-occur.

Every image is a 48 x 48 RGB canvas (dark ink on white paper) cut into a 3 x 3 grid of 16-pixel
cells. Between 4 and 6 cells hold one digit each: a scikit-learn ``load_digits`` glyph (8 x 8,
values 0..16) upscaled to 14 x 14 and shifted by 0 to 2 pixels inside its cell, so digits never
overlap. The labels of an image are the set of digits it shows (class names "zero".."nine").

How digits co-occur (the rule, defined once, in :data:`SCENES`): like objects in photographs,
digits come in scenes. Each image first draws a scene with the scene's share as probability;
then it draws its number of digits, 4, 5 or 6 with equal chance, and that many digits with
replacement, each favoured digit of the scene being :data:`FAVOUR` times as likely as any other
digit. A draw with fewer than :data:`MIN_LABELS` distinct digits is redrawn whole, so every image
has at least 3 labels (the paper kept COCO images with at least 4): hiding 25 to 75 % of them
always hides something. Positive labels are therefore correlated (a 1 makes a 4 and a 7 likely),
which is what the confidence weights of CB-WCE (paper eq. 3) count on.

``load_digits`` is split in two halves by a seeded permutation (:func:`digit_split`): one half
pretrains the demo's backbone on single digits, the other draws the glyphs of the mosaics, so the
backbone never saw a glyph it is later asked about.

numpy, scikit-learn and PIL only; the same seed gives byte-identical files.
"""

from __future__ import annotations

import functools
import io
import os
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.datasets import load_digits

from mlml_tf.errors import DataError
from mlml_tf.files.atomic import write_bytes_atomic
from mlml_tf.files.layout import IMAGES, write_groundtruth, write_image_list

#: Class names, in column order: class k is the digit k.
CLASS_NAMES: tuple[str, ...] = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
)
#: Scenes: favoured digits and the share of images that show the scene (sum 1).
SCENES: dict[str, dict] = {
    "strokes": {"favoured": (1, 4, 7), "share": 0.40},
    "loops": {"favoured": (0, 6, 8, 9), "share": 0.35},
    "curves": {"favoured": (2, 3, 5), "share": 0.25},
}
#: A favoured digit of the scene is this many times as likely as another digit.
FAVOUR = 8.0
#: Digits per image (inclusive) and the least number of distinct digits (labels) per image.
MIN_DIGITS, MAX_DIGITS = 4, 6
MIN_LABELS = 3
#: Geometry in pixels: glyph size, grid cells per side, cell size, canvas size. A glyph moves by
#: up to CELL - GLYPH pixels inside its cell.
GLYPH, GRID, CELL = 14, 3, 16
CANVAS = GRID * CELL
JITTER = CELL - GLYPH
PAPER, INK = 255, 255


def digit_split(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split the 1,797 ``load_digits`` samples in two disjoint halves by a seeded permutation.

    Returns:
        ``(pretraining, mosaic)``: sorted sample indices; the first half pretrains the backbone,
        the second provides the glyphs of the mosaics.
    """

    n = len(_upscaled_digits()[1])
    order = np.random.default_rng([seed, 0]).permutation(n)
    return np.sort(order[: n // 2]), np.sort(order[n // 2 :])


def glyphs(indices: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``load_digits`` samples upscaled to 14 x 14 ink intensities.

    Args:
        indices: which samples (default all).

    Returns:
        ``(ink, digits)``: uint8 array (n, 14, 14), 0 = no ink, 255 = full ink, and int array (n,).
    """
    ink, digits = _upscaled_digits()
    if indices is None:
        return ink, digits
    indices = np.asarray(indices, dtype=np.int64)
    return ink[indices], digits[indices]


@functools.lru_cache(maxsize=1)
def _upscaled_digits() -> tuple[np.ndarray, np.ndarray]:
    data = load_digits()
    ink = np.stack([
        np.asarray(Image.fromarray((im * (INK / 16.0)).astype(np.float32), mode="F")
                   .resize((GLYPH, GLYPH), Image.BILINEAR))
        for im in data.images
    ])
    ink = np.clip(np.round(ink), 0, 255).astype(np.uint8)
    ink.setflags(write=False)
    return ink, data.target.astype(np.int64)


def _paint(canvas: np.ndarray, ink: np.ndarray, cell: int, dy: int, dx: int) -> None:
    top = (cell // GRID) * CELL + dy
    left = (cell % GRID) * CELL + dx
    canvas[top : top + GLYPH, left : left + GLYPH] = PAPER - ink


def _scene_probabilities() -> tuple[list[str], np.ndarray, np.ndarray]:
    names = list(SCENES)
    shares = np.array([SCENES[s]["share"] for s in names], dtype=np.float64)
    digit_p = np.ones((len(names), len(CLASS_NAMES)))
    for k, s in enumerate(names):
        digit_p[k, list(SCENES[s]["favoured"])] = FAVOUR
    return names, shares / shares.sum(), digit_p / digit_p.sum(axis=1, keepdims=True)


def _pool(digits: tuple[np.ndarray, np.ndarray] | None, seed: int):
    if digits is None:
        ink, labels = glyphs(digit_split(seed)[1])
    else:
        ink, labels = (np.asarray(a) for a in digits)
        if ink.ndim != 3 or ink.shape[1:] != (GLYPH, GLYPH) or len(ink) != len(labels):
            raise DataError(f"digits must be (ink (n, {GLYPH}, {GLYPH}), digits (n,)), got "
                            f"shapes {ink.shape} and {labels.shape}")
    by_digit = [np.flatnonzero(labels == d) for d in range(len(CLASS_NAMES))]
    missing = [d for d, rows in enumerate(by_digit) if len(rows) == 0]
    if missing:
        raise DataError(f"no glyph of digit(s) {missing} to draw from")
    return ink, by_digit


def make_digit_mosaics(
    n_images: int,
    seed: int = 0,
    digits: tuple[np.ndarray, np.ndarray] | None = None,
    return_scenes: bool = False,
):
    """Draw ``n_images`` mosaics of 4 to 6 digits with scene-correlated labels (module rule).

    Args:
        n_images: number of images.
        seed: seed of every random choice (split, scenes, digits, glyphs, cells, shifts).
        digits: ``(ink, digits)`` glyphs to draw from, as returned by :func:`glyphs`; by default
            the mosaic half of :func:`digit_split` for ``seed``.
        return_scenes: also return the scene name of each image.

    Returns:
        ``(images, labels)``: uint8 array (n, 48, 48, 3) and a uint8 0/1 DataFrame indexed by
        ids ``"000000"``, ``"000001"``, ... with columns :data:`CLASS_NAMES`; with
        ``return_scenes``, a third item, the list of scene names.

    Example:
        >>> images, labels = make_digit_mosaics(8, seed=0)
        >>> images.shape, int(labels.to_numpy().sum(axis=1).min()) >= 3
        ((8, 48, 48, 3), True)
    """
    if int(n_images) < 1:
        raise DataError(f"n_images must be at least 1, got {n_images}")
    n_images = int(n_images)
    ink, by_digit = _pool(digits, seed)
    names, shares, digit_p = _scene_probabilities()
    rng = np.random.default_rng([seed, 1])
    images = np.full((n_images, CANVAS, CANVAS), PAPER, dtype=np.uint8)
    labels = np.zeros((n_images, len(CLASS_NAMES)), dtype=np.uint8)
    scenes = []
    for i in range(n_images):
        scene = int(rng.choice(len(names), p=shares))
        while True:
            count = int(rng.integers(MIN_DIGITS, MAX_DIGITS + 1))
            drawn = rng.choice(len(CLASS_NAMES), size=count, p=digit_p[scene])
            if len(np.unique(drawn)) >= MIN_LABELS:
                break
        cells = rng.choice(GRID * GRID, size=count, replace=False)
        for d, cell in zip(drawn, cells, strict=True):
            glyph = by_digit[d][rng.integers(len(by_digit[d]))]
            dy, dx = rng.integers(0, JITTER + 1, size=2)
            _paint(images[i], ink[glyph], int(cell), int(dy), int(dx))
        labels[i, drawn] = 1
        scenes.append(names[scene])
    frame = pd.DataFrame(labels, index=[f"{i:06d}" for i in range(n_images)],
                         columns=list(CLASS_NAMES))
    rgb = np.repeat(images[..., None], 3, axis=-1)
    return (rgb, frame, scenes) if return_scenes else (rgb, frame)


def single_digit_images(
    indices: np.ndarray, seed: int = 0, copies: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Canvases holding one digit each, placed as in the mosaics (random cell and shift).

    Used to pretrain the demo's backbone on single digits, at the mosaics' scale and position.

    Args:
        indices: ``load_digits`` samples to draw (e.g. the pretraining half of
            :func:`digit_split`).
        seed: seed of cells and shifts.
        copies: each sample appears this many times, in different places.

    Returns:
        ``(images, digits)``: uint8 array (n * copies, 48, 48, 3) and int array (n * copies,).
    """
    ink, digits = glyphs(np.tile(np.asarray(indices, dtype=np.int64), copies))
    rng = np.random.default_rng([seed, 2])
    images = np.full((len(ink), CANVAS, CANVAS), PAPER, dtype=np.uint8)
    cells = rng.integers(0, GRID * GRID, size=len(ink))
    shifts = rng.integers(0, JITTER + 1, size=(len(ink), 2))
    for i in range(len(ink)):
        _paint(images[i], ink[i], int(cells[i]), int(shifts[i, 0]), int(shifts[i, 1]))
    return np.repeat(images[..., None], 3, axis=-1), digits


def png_bytes(image: np.ndarray) -> bytes:
    """PNG encoding of a uint8 RGB array; PIL adds no time stamp, so equal arrays, equal bytes."""

    buf = io.BytesIO()
    Image.fromarray(image, mode="RGB").save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def write_digit_dataset(root: str | os.PathLike, n_images: int, seed: int = 0) -> pd.DataFrame:
    """Write a mosaic data set as real files: images, ``groundtruth.csv``, ``images.csv``.

    Layout under ``root``: ``images/{id}.png``, ``images.csv`` (columns ``id,file``, the file
    relative to ``root``), and ``groundtruth.csv`` with ``manifest.json`` (through
    :func:`mlml_tf.layout.write_groundtruth`), ready for ``mlml-tf split``. Every file is written
    atomically; the same ``(n_images, seed)`` gives byte-identical files.

    Returns:
        The label table written to ``groundtruth.csv``.
    """

    root = Path(root)
    images, labels = make_digit_mosaics(n_images, seed=seed)
    files = [f"images/{i}.png" for i in labels.index]
    for image, rel in zip(images, files, strict=True):
        write_bytes_atomic(root / rel, png_bytes(image))
    write_image_list(root, pd.Series(files, index=labels.index))
    source = {
        "dataset": "digit-mosaics",
        "n_images": int(n_images),
        "seed": int(seed),
        "canvas": [CANVAS, CANVAS, 3],
        "scenes": {name: {"favoured": list(s["favoured"]), "share": s["share"]}
                   for name, s in SCENES.items()},
        "favour": FAVOUR,
        "digits_per_image": [MIN_DIGITS, MAX_DIGITS],
        "min_labels": MIN_LABELS,
        "images": IMAGES,
    }
    write_groundtruth(root, labels, class_names=list(CLASS_NAMES), source=source)
    return labels
