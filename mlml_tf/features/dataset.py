"""The tf.data pipeline of image files.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from mlml_tf.errors import DataError
from mlml_tf.features.checks import CHECKS, BadImage, check_images, log, non_rgb_images
from mlml_tf.features.images import load_image
from mlml_tf.settings import RESIZES, SCALINGS


@dataclass(frozen=True)
class ImageSet:
    """What :func:`image_dataset` returns: the dataset and which input rows it holds.

    Attributes:
        dataset: batches of images, ``(images, labels)`` or ``(images, labels, weights)``.
        paths: the images in the dataset, in input order (before any shuffling).
        indices: their positions in the input; rows of labels/ids to keep beside predictions.
        skipped: the images left out, in input order: unreadable ones with ``skip_bad=True``,
            images not stored as RGB with ``rgb_only=True`` (empty otherwise).
    """

    dataset: tf.data.Dataset
    paths: tuple[str, ...]
    indices: np.ndarray
    skipped: tuple[BadImage, ...]

    @property
    def skipped_paths(self) -> list[str]:
        return [bad.path for bad in self.skipped]

    def __len__(self) -> int:
        return len(self.paths)


def image_dataset(
    paths: Sequence[str | os.PathLike],
    labels: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    image_size: tuple[int, int] = (224, 224),
    scaling: str = "imagenet",
    batch_size: int = 32,
    shuffle_buffer: int = 0,
    seed: int | None = None,
    skip_bad: bool = False,
    check: str = "quick",
    num_parallel_calls: int = tf.data.AUTOTUNE,
    resize: str = "skimage",
    rgb_only: bool = False,
    jpeg_idct: str = "fast",
) -> ImageSet:
    """A batched, prefetched ``tf.data.Dataset`` of scaled images, with labels and weights.

    Every file is checked first (see :func:`check_images`). A bad file stops everything with a
    :class:`DataError` naming it, unless ``skip_bad=True``: then bad files are left out (with
    their label and weight rows), logged, and listed in ``ImageSet.skipped``. With
    ``rgb_only=True`` images not stored as RGB are left out and listed the same way, as the
    original's NUS-WIDE preprocessing did (see :func:`non_rgb_images`). Images are decoded
    (JPEG, PNG, GIF, BMP; always 3 channels, first frame of an animation), resized to
    ``image_size`` (see :func:`resize_image`) and scaled. The last batch may be short: every
    image is used.

    Args:
        paths: image files, one per row.
        labels: optional (rows, classes) array of 0/1 labels.
        weights: optional (rows, classes) per-entry loss weights (see ``entry_weights``); needs
            ``labels``.
        image_size: (height, width) after resizing.
        scaling: ``"imagenet"`` (the original's) or ``"inception"``, see :func:`scale_images`.
        batch_size: images per batch.
        shuffle_buffer: size of the shuffle buffer (the original used 100 for training);
            0 keeps the input order.
        seed: seed of the shuffling; ``None`` for a different order each run.
        skip_bad: leave unreadable images out instead of raising.
        check: ``"quick"``, ``"full"`` or ``"none"`` (see ``CHECKS``).
        num_parallel_calls: parallel decoders.
        resize: ``"skimage"`` (the original's) or ``"bilinear"``, see :func:`resize_image`.
        rgb_only: leave out the images not stored as RGB (grayscale, CMYK, ...), as the
            original did for NUS-WIDE; ``False`` keeps them, converted to RGB.
        jpeg_idct: "fast" (TensorFlow's default) or "accurate" (Pillow's and OpenCV's pixels),
            see :func:`decode_image`.

    Returns:
        An :class:`ImageSet`; its ``dataset`` yields ``images``, ``(images, labels)`` or
        ``(images, labels, weights)``, images of shape (batch, height, width, 3), float32.

    Example:
        >>> weights = entry_weights(labels, P, w_bar)
        >>> train = image_dataset(paths, labels, weights, shuffle_buffer=100, seed=0)
        >>> model.fit(train.dataset, epochs=20)
    """

    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise DataError("no image paths given")
    if scaling not in SCALINGS:
        raise DataError(f"unknown scaling {scaling!r}: choose one of {list(SCALINGS)}")
    if check not in CHECKS:
        raise DataError(f"unknown check {check!r}: choose one of {list(CHECKS)}")
    if resize not in RESIZES:
        raise DataError(f"unknown resize {resize!r}: choose one of {list(RESIZES)}")
    columns = _row_arrays(len(paths), labels, weights)

    bad = [] if check == "none" else check_images(paths, check)
    if bad and not skip_bad:
        first = bad[0]
        more = f" ({len(bad) - 1} more bad images)" if len(bad) > 1 else ""
        raise DataError(
            f"image {first.index + 1} of {len(paths)}: {first.reason}{more}", file=first.path
        )
    if bad:
        log.warning(
            "skipped %d of %d images that cannot be read: %s%s",
            len(bad),
            len(paths),
            ", ".join(b.path for b in bad[:5]),
            " ..." if len(bad) > 5 else "",
        )
    dropped = np.zeros(len(paths), dtype=bool)
    dropped[[b.index for b in bad]] = True
    if rgb_only:
        readable = np.flatnonzero(~dropped)
        not_rgb = [BadImage(int(readable[b.index]), b.path, b.reason)
                   for b in non_rgb_images([paths[i] for i in readable])]
        if not_rgb:
            log.warning("left out %d of %d images not stored as RGB: %s%s", len(not_rgb),
                        len(paths), ", ".join(b.path for b in not_rgb[:5]),
                        " ..." if len(not_rgb) > 5 else "")
        dropped[[b.index for b in not_rgb]] = True
        bad = sorted([*bad, *not_rgb])
    indices = np.flatnonzero(~dropped)
    if len(indices) == 0:
        raise DataError(f"none of the {len(paths)} images can be read"
                        + (" as RGB" if rgb_only else ""))
    kept_paths = tuple(paths[i] for i in indices)

    slices = (np.asarray(kept_paths), *(column[indices] for column in columns))
    dataset = tf.data.Dataset.from_tensor_slices(slices if columns else slices[0])
    if shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)

    def load(path, *rest):
        image = load_image(path, image_size, scaling, resize, jpeg_idct)
        return (image, *rest) if rest else image

    dataset = dataset.map(load, num_parallel_calls=num_parallel_calls)
    dataset = dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    return ImageSet(dataset, kept_paths, indices, tuple(bad))


def _row_arrays(n: int, labels, weights) -> list[np.ndarray]:
    if weights is not None and labels is None:
        raise DataError("weights were given without labels")
    columns = []
    for name, array in (("labels", labels), ("weights", weights)):
        if array is None:
            continue
        array = np.asarray(array, dtype=np.float32)
        if array.ndim != 2 or len(array) != n:
            raise DataError(
                f"{name} must have shape ({n}, classes) for {n} images, got {array.shape}"
            )
        columns.append(array)
    if len(columns) == 2 and columns[0].shape != columns[1].shape:
        raise DataError(
            f"weights of shape {columns[1].shape} do not match labels of shape {columns[0].shape}"
        )
    return columns
