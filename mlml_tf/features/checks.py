"""Image files checked before use.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import tensorflow as tf
from PIL import Image

from mlml_tf.errors import DataError

log = logging.getLogger(__name__)


#: How image_dataset checks files before use: "quick" reads each file's first and last bytes and
#: decodes only files whose end marker is missing; "full" decodes every file; "none" trusts them.
CHECKS: tuple[str, ...] = ("quick", "full", "none")


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


_PNG_END = b"IEND\xaeB`\x82"


_TAIL_BYTES = 1024


class BadImage(NamedTuple):
    """An image that cannot be used: its position in the input, its path, and why."""
    index: int
    path: str
    reason: str


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
    array, or 4 channels) raised and was left out with no file (docs/original.md section 5). Only
    each file's header is read, by Pillow as the original did, in parallel threads.

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
