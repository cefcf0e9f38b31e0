"""Image input pipeline (tf.data): files -> decoded, resized, scaled batches.

Unreadable images are found before any training starts: :func:`image_dataset` checks every file
first (cheaply, in parallel) and either stops with a :class:`~mlml_tf.errors.DataError` naming the
first bad file or, with ``skip_bad=True``, leaves the bad ones out and says which they were.

Images are resized as the original's ``skimage.transform.resize`` did (SPEC 5): Gaussian
anti-aliasing, then bilinear interpolation, computed with TensorFlow ops inside tf.data.
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
#: How images are brought to the backbone's input size: "skimage", as the original's
#: ``skimage.transform.resize`` (anti-aliased when shrinking, SPEC 5), or "bilinear",
#: ``tf.image.resize`` without anti-aliasing (faster, blurs less, aliases more), or "antialias",
#: ``tf.image.resize`` with its own anti-aliasing, what ``keras.layers.Resizing(antialias=True)``
#: computes inside a saved model (:mod:`mlml_tf.own_model`).
RESIZES: tuple[str, ...] = ("skimage", "bilinear", "antialias")
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


def resize_image(image, size: tuple[int, int], method: str = "skimage") -> tf.Tensor:
    """Resize one image the way the original's ``skimage.transform.resize(image, size)`` did.

    ``"skimage"`` smooths each axis that shrinks by a factor ``s`` with a Gaussian of standard
    deviation ``(s - 1) / 2`` (truncated at 4 standard deviations, as ``scipy.ndimage``), then
    interpolates bilinearly at pixel centres, edges mirrored (skimage's ``mode="reflect"``).
    Blur and interpolation together are a sparse matrix per axis, applied as a weighted sum of
    gathered rows: plain TensorFlow ops, usable inside ``tf.data``. On real photographs it
    matches skimage to within 1e-4 (values in [0, 1]). These are skimage's defaults since 0.15;
    0.14 neither smoothed nor mirrored, and the original's notebooks do not say which they ran.
    ``"bilinear"`` is ``tf.image.resize`` without anti-aliasing, ``"antialias"`` with it.

    Args:
        image: (height, width, channels) tensor, any real or integer dtype.
        size: (height, width) of the result.
        method: one of ``RESIZES``.

    Returns:
        float32 tensor of shape (*size, channels), in the value range of ``image``.

    Example:
        >>> resize_image(tf.zeros((512, 384, 3), tf.uint8), (224, 224)).shape
        TensorShape([224, 224, 3])
    """
    if method in ("bilinear", "antialias"):
        return tf.image.resize(image, size, antialias=method == "antialias")
    if method != "skimage":
        raise DataError(f"unknown resize {method!r}: choose one of {list(RESIZES)}")
    image = tf.convert_to_tensor(image)
    shape = tf.shape(image)
    height, width, channels = shape[0], shape[1], shape[2]
    rows = _skimage_axis(tf.reshape(image, [height, -1]), size[0])
    columns = tf.transpose(tf.reshape(rows, [size[0], width, channels]), [1, 0, 2])
    columns = _skimage_axis(tf.reshape(columns, [width, -1]), size[1])
    resized = tf.transpose(tf.reshape(columns, [size[1], size[0], channels]), [1, 0, 2])
    resized.set_shape(tf.TensorShape(size).concatenate(image.shape[-1:]))
    return resized


def _skimage_axis(rows: tf.Tensor, size: int) -> tf.Tensor:
    """(n, r) -> (size, r): skimage's anti-aliasing and bilinear interpolation along axis 0."""
    index, weight = _skimage_taps(tf.shape(rows)[0], size)

    def add_tap(total, k):
        return total + weight[:, k, None] * tf.cast(tf.gather(rows, index[:, k]), tf.float32)

    first = weight[:, 0, None] * tf.cast(tf.gather(rows, index[:, 0]), tf.float32)
    return tf.foldl(add_tap, tf.range(1, tf.shape(index)[1]), initializer=first)


def _skimage_taps(n: tf.Tensor, size: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Input rows and weights of each of ``size`` output rows: the Gaussian of skimage's
    ``anti_aliasing_sigma = max(0, (n / size - 1) / 2)`` followed by linear interpolation."""
    factor = tf.cast(n, tf.float32) / float(size)
    sigma = tf.maximum(0.0, (factor - 1.0) / 2.0)
    radius = tf.cast(4.0 * sigma + 0.5, tf.int32)
    offsets = tf.cast(tf.range(-radius, radius + 1), tf.float32)
    gauss = tf.exp(-0.5 * tf.math.divide_no_nan(offsets * offsets, sigma * sigma))
    gauss = tf.pad(gauss / tf.reduce_sum(gauss), [[1, 1]])
    centre = (tf.range(size, dtype=tf.float32) + 0.5) * factor - 0.5
    left = tf.floor(centre)
    t = (centre - left)[:, None]
    weight = (1.0 - t) * gauss[1:] + t * gauss[:-1]
    index = tf.cast(left, tf.int32)[:, None] + tf.range(-radius, radius + 2)
    # Mirror at the edges (numpy's "reflect": ... 2 1 | 0 1 2 ... n-1 | n-2 ...), any distance.
    period = tf.maximum(2 * (n - 1), 1)
    index = tf.math.floormod(tf.abs(index), period)
    return tf.where(index >= n, period - index, index), weight


def decode_image(data) -> tf.Tensor:
    """The (height, width, 3) uint8 pixels of an encoded image file's bytes (JPEG, PNG, GIF,
    BMP; always 3 channels, the first frame of an animation), tf.data-ready."""
    image = tf.io.decode_image(data, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def load_image(path, image_size: tuple[int, int] = (224, 224), scaling: str = "imagenet",
               resize: str = "skimage") -> tf.Tensor:
    """Read, decode (3 channels, first frame), resize and scale one image file (tf.data-ready).

    Example:
        >>> dataset = tf.data.Dataset.from_tensor_slices(paths).map(load_image)
    """
    image = decode_image(tf.io.read_file(path))
    return scale_images(resize_image(image, image_size, resize), scaling)


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


def non_rgb_images(paths: Sequence[str | os.PathLike],
                   num_threads: int | None = None) -> list[BadImage]:
    """The images among ``paths`` not stored as RGB: grayscale, CMYK, palette, with alpha, ...

    The original read NUS-WIDE with ``matplotlib.image.imread`` (Pillow) and normalized the
    array with three channel means, so an image Pillow opened in any mode but ``"RGB"`` (a 2-D
    array, or 4 channels) raised and was left out with no file (SPEC 5). Only each file's
    header is read, by Pillow as the original did, in parallel threads.

    Args:
        paths: image files (local or any ``tf.io.gfile`` file system).
        num_threads: parallel readers; default 4 per CPU, at most 32.

    Returns:
        Those images, in input order, the reason naming the colour mode; a file Pillow cannot
        open at all is among them too.

    Example:
        >>> [bad.path for bad in non_rgb_images(["photo.jpg", "scan.jpg"])]
        ['scan.jpg']
        >>> non_rgb_images(["scan.jpg"])[0].reason.split(":")[0]
        "grayscale (Pillow mode 'L'), not RGB"
    """
    paths = [os.fspath(p) for p in paths]
    workers = num_threads or min(32, 4 * (os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        reasons = list(pool.map(_not_rgb, paths))
    return [
        BadImage(i, p, r)
        for i, (p, r) in enumerate(zip(paths, reasons, strict=True))
        if r is not None
    ]


_MODE_NAMES = {"1": "black and white", "L": "grayscale", "LA": "grayscale with alpha",
               "I": "grayscale", "I;16": "grayscale", "P": "palette", "PA": "palette",
               "RGBA": "RGB with alpha", "CMYK": "CMYK", "YCbCr": "YCbCr"}


def _not_rgb(path: str) -> str | None:
    from PIL import Image

    try:
        with tf.io.gfile.GFile(path, "rb") as f, Image.open(f) as image:
            mode = image.mode
    except (OSError, ValueError, Image.DecompressionBombError, tf.errors.OpError) as error:
        return f"cannot read file: {_first_line(error)}"
    if mode == "RGB":
        return None
    return (f"{_MODE_NAMES.get(mode, 'colour mode ' + mode)} (Pillow mode {mode!r}), not RGB: "
            "the original's NUS-WIDE preprocessing could not read it")


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
    resize: str = "skimage",
    rgb_only: bool = False,
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
        image = load_image(path, image_size, scaling, resize)
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
