"""Image input pipeline (tf.data): files -> decoded, resized, scaled batches.

Unreadable images are found before any training starts: :func:`image_dataset` checks every file
first (cheaply, in parallel) and either stops with a :class:`~mlml_tf.errors.DataError` naming the
first bad file or, with ``skip_bad=True``, leaves the bad ones out and says which they were.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from mlml_tf.errors import DataError

log = logging.getLogger(__name__)

#: The original's scaling, (x / 255 - mean) / std with ImageNet statistics (SPEC 5).
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
#: "imagenet": the original's scaling (default); "inception": Keras' Inception scaling to [-1, 1].
SCALINGS: tuple[str, ...] = ("imagenet", "inception")
#: How image_dataset checks files before use: "quick" reads each file's first and last bytes and
#: decodes only files whose end marker is missing; "full" decodes every file; "none" trusts them.
CHECKS: tuple[str, ...] = ("quick", "full", "none")

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND\xaeB`\x82"
_TAIL_BYTES = 1024


def scale_images(x, mode: str = "imagenet") -> tf.Tensor:
    """Scale pixel values in [0, 255] the way the backbone expects.

    Args:
        x: images (any shape ending in 3 channels), integer or float, values in [0, 255].
        mode: ``"imagenet"``, the original's ``(x / 255 - mean) / std`` with ImageNet mean and
            std per channel (SPEC 5), or ``"inception"``, ``x / 127.5 - 1`` (range [-1, 1]),
            which is what Keras' Inception-ResNet-v2 ImageNet weights were trained with.

    Returns:
        float32 tensor of the same shape.

    Example:
        >>> scale_images(np.full((1, 1, 3), 255, np.uint8)).numpy().round(4)
        array([[[2.2489, 2.4286, 2.64  ]]], dtype=float32)
    """
    x = tf.cast(x, tf.float32)
    if mode == "imagenet":
        return (x / 255.0 - tf.constant(IMAGENET_MEAN)) / tf.constant(IMAGENET_STD)
    if mode == "inception":
        return x / 127.5 - 1.0
    raise DataError(f"unknown scaling {mode!r}: choose one of {list(SCALINGS)}")


class BadImage(NamedTuple):
    """An image that cannot be used: its position in the input, its path, and why."""

    index: int
    path: str
    reason: str


@dataclass(frozen=True)
class ImageSet:
    """What :func:`image_dataset` returns: the dataset and which input rows it holds.

    Attributes:
        dataset: batches of images, ``(images, labels)`` or ``(images, labels, weights)``.
        paths: the images in the dataset, in input order (before any shuffling).
        indices: their positions in the input; rows of labels/ids to keep beside predictions.
        skipped: the images left out with ``skip_bad=True`` (empty otherwise).
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


def check_images(
    paths: Sequence[str | os.PathLike], check: str = "quick", num_threads: int | None = None
) -> list[BadImage]:
    """Find the files among ``paths`` that are missing or cannot be decoded.

    ``"quick"`` opens each file, reads its first 16 and last 1024 bytes and accepts a JPEG, PNG,
    GIF or BMP whose start and end markers are both present (a truncated file loses its end
    marker); any other file is decoded in full to decide. ``"full"`` decodes every file. Files
    are checked in parallel threads.

    Args:
        paths: image files (local or any ``tf.io.gfile`` file system).
        check: ``"quick"`` or ``"full"``.
        num_threads: parallel readers; default 4 per CPU, at most 32.

    Returns:
        The bad images, in input order; empty if all are fine.

    Example:
        >>> [bad.reason for bad in check_images(["ok.jpg", "gone.jpg"])]
        ['file not found']
    """
    if check not in ("quick", "full"):
        raise DataError(f"unknown check {check!r}: choose 'quick' or 'full'")
    paths = [os.fspath(p) for p in paths]
    workers = num_threads or min(32, 4 * (os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        reasons = list(pool.map(lambda p: _problem(p, full=check == "full"), paths))
    return [
        BadImage(i, p, r)
        for i, (p, r) in enumerate(zip(paths, reasons, strict=True))
        if r is not None
    ]


def _problem(path: str, full: bool) -> str | None:
    try:
        if not tf.io.gfile.exists(path):
            return "file not found"
        with tf.io.gfile.GFile(path, "rb") as f:
            size = f.size()
            if size == 0:
                return "empty file"
            head = f.read(16)
            f.seek(max(size - _TAIL_BYTES, 0))
            tail = f.read()
    except (OSError, tf.errors.OpError) as error:
        return f"cannot read file: {_first_line(error)}"
    if not full and _looks_complete(head, tail, size):
        return None
    try:
        tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    except tf.errors.OpError as error:
        return f"cannot decode image: {_first_line(error)}"
    return None


def _looks_complete(head: bytes, tail: bytes, size: int) -> bool:
    if head.startswith(b"\xff\xd8\xff"):
        return tail.endswith(b"\xff\xd9")
    if head.startswith(_PNG_SIGNATURE):
        return tail.endswith(_PNG_END)
    if head.startswith(b"GIF8"):
        return tail.endswith(b";")
    if head.startswith(b"BM") and len(head) >= 6:
        return int.from_bytes(head[2:6], "little") == size
    return False


def _first_line(error: Exception) -> str:
    message = getattr(error, "message", None) or str(error)
    # TF prefixes op errors with "{{function_node ...}}" and appends "[Op:...]".
    message = message.split("}}")[-1].split("[Op:")[0]
    return message.strip().splitlines()[0] if message.strip() else type(error).__name__


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
) -> ImageSet:
    """A batched, prefetched ``tf.data.Dataset`` of scaled images, with labels and weights.

    Every file is checked first (see :func:`check_images`). A bad file stops everything with a
    :class:`DataError` naming it, unless ``skip_bad=True``: then bad files are left out (with
    their label and weight rows), logged, and listed in ``ImageSet.skipped``. Images are decoded
    (JPEG, PNG, GIF, BMP; always 3 channels, first frame of an animation), resized bilinearly to
    ``image_size`` and scaled. The last batch may be short: every image is used.

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
    indices = np.flatnonzero(~dropped)
    if len(indices) == 0:
        raise DataError(f"none of the {len(paths)} images can be read")
    kept_paths = tuple(paths[i] for i in indices)

    slices = (np.asarray(kept_paths), *(column[indices] for column in columns))
    dataset = tf.data.Dataset.from_tensor_slices(slices if columns else slices[0])
    if shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)

    def load(path, *rest):
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        image.set_shape([None, None, 3])
        image = scale_images(tf.image.resize(image, image_size), scaling)
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


def image_paths_for_ids(
    image_dir: str | os.PathLike,
    ids: Sequence,
    pattern: str | Callable[[object], str] = "{id}.jpg",
) -> list[str]:
    """The image file of each id, checked to exist.

    Args:
        image_dir: folder of the images.
        ids: sample ids, e.g. the first column of a label CSV.
        pattern: file name of an id inside ``image_dir``: a format string with ``{id}`` (e.g.
            ``"{id}.jpg"``, ``"{id:0>12}.jpg"`` for COCO's zero-padded names) or a function of
            the id returning a relative (or absolute) path.

    Returns:
        One path per id, in order.

    Raises:
        DataError: naming the first id without a file, and how many more are missing.

    Example:
        >>> image_paths_for_ids("coco/train2017", [391895], "{id:0>12}.jpg")
        ['coco/train2017/000000391895.jpg']
    """
    image_dir = os.fspath(image_dir)
    ids = list(ids)
    name = pattern if callable(pattern) else (lambda i: pattern.format(id=i))
    paths = [os.path.join(image_dir, os.fspath(name(i))) for i in ids]
    missing = [k for k, path in enumerate(paths) if not tf.io.gfile.exists(path)]
    if missing:
        first = missing[0]
        more = f" ({len(missing) - 1} more ids have no image)" if len(missing) > 1 else ""
        raise DataError(f"no image for id {ids[first]!r}{more}", file=paths[first])
    return paths
