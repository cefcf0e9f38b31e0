"""Image files in and out.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from mlml_tf.apps.own.folder import TrainedModel
from mlml_tf.errors import DataError
from mlml_tf.features.checks import check_images
from mlml_tf.features.images import decode_image, resize_image
from mlml_tf.files.own_table import IMAGE_SUFFIXES


def list_images(sources: Sequence[str | os.PathLike]) -> list[Path]:
    """The image files of ``sources``: a folder gives every file with an image suffix under it
    (sorted), a file is taken as it is (and checked when it is read)."""
    paths: list[Path] = []
    for source in sources:
        source = Path(source)
        if source.is_dir():
            found = sorted(p for p in source.rglob("*")
                           if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise DataError(f"the folder holds no image ({', '.join(IMAGE_SUFFIXES)})",
                                file=source)
            paths += found
        elif source.exists():
            paths.append(source)
        else:
            raise DataError("no such image or folder", file=source)
    if not paths:
        raise DataError("no image given")
    return paths


def checked_images(paths: Sequence[str | os.PathLike], skip_bad: bool,
                   lines: Sequence[int] | None = None, table: Path | None = None):
    """``(readable indices, bad images)``; a bad image stops with a DataError naming it (and
    the line of its row in ``table`` when ``lines`` give them) unless ``skip_bad``."""

    bad = check_images([os.fspath(p) for p in paths], "quick")
    if bad and not skip_bad:
        first = bad[0]
        more = f" ({len(bad) - 1} more bad images)" if len(bad) > 1 else ""
        where = (f" (row of line {lines[first.index]} of {table})" if lines is not None
                 else f" (image {first.index + 1} of {len(paths)})")
        raise DataError(f"cannot read this image{where}: {first.reason}{more}; "
                        "--skip-bad-images leaves such images out", file=first.path)
    keep = np.setdiff1d(np.arange(len(paths)), [b.index for b in bad])
    return keep, bad


def resized_image(data, image_size: int, resize: str):
    """An encoded image file's bytes, decoded and resized to the backbone's input (float32 in
    [0, 255]): what :func:`predict_images` and the exported model do before the saved model."""
    return resize_image(decode_image(data), (image_size, image_size), resize)


def image_batches(paths: Sequence[str | os.PathLike], image_size: int, resize: str,
                  batch_size: int = 32):
    """A ``tf.data`` stream of resized image batches (float32 in [0, 255]), in order, decoded
    in parallel: memory does not grow with the number of images."""

    def load(path):
        return resized_image(tf.io.read_file(path), image_size, resize)

    files = tf.data.Dataset.from_tensor_slices([os.fspath(p) for p in paths])
    return (files.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .batch(batch_size).prefetch(2))


def _probability_batches(trained: TrainedModel, paths, batch_size: int) -> Iterator[np.ndarray]:
    for batch in image_batches(paths, trained.image_size, trained.resize, batch_size):
        # Keras' compiled predict step: one graph, not the model's layers one by one.
        yield np.asarray(trained.model.predict_on_batch(batch))


def image_probabilities(trained: TrainedModel, paths: Sequence[str | os.PathLike],
                        batch_size: int = 32) -> np.ndarray:
    """(images, classes) probabilities of image files, read as :func:`predict_images` reads
    them (the files must be readable: see :func:`checked_images`)."""

    out = list(_probability_batches(trained, paths, batch_size))
    return np.concatenate(out) if out else np.zeros((0, len(trained.classes)), np.float32)
