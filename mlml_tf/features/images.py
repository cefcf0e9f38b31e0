"""Images decoded, resized and scaled.
"""

from __future__ import annotations

import tensorflow as tf

from mlml_tf.errors import DataError
from mlml_tf.settings import JPEG_IDCTS, RESIZES, SCALINGS

#: The original's scaling, (x / 255 - mean) / std with ImageNet statistics (docs/original.md section
#: 5).
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)


IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

#: TensorFlow's names of the inverse DCTs of :data:`mlml_tf.settings.JPEG_IDCTS`.
_DCT_METHODS = {"fast": "", "accurate": "INTEGER_ACCURATE"}


def scale_images(x, mode: str = "imagenet") -> tf.Tensor:
    """Scale pixel values in [0, 255] the way the backbone expects.

    Args:
        x: images (any shape ending in 3 channels), integer or float, values in [0, 255].
        mode: ``"imagenet"``, the original's ``(x / 255 - mean) / std`` with ImageNet mean and
            std per channel (docs/original.md section 5), or ``"inception"``, ``x / 127.5 - 1``
            (range [-1, 1]), which is what Keras' Inception-ResNet-v2 ImageNet weights were trained
            with.

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


def decode_image(data, jpeg_idct: str = "fast") -> tf.Tensor:
    """The (height, width, 3) uint8 pixels of an encoded image file's bytes (JPEG, PNG, GIF,
    BMP; always 3 channels, the first frame of an animation), tf.data-ready.

    ``jpeg_idct``: "fast", TensorFlow's default JPEG decoding (libjpeg's fast integer inverse
    DCT), or "accurate", libjpeg's accurate one, whose pixels are bit for bit those of Pillow
    and OpenCV (``benchmarks/bench_jpeg.py``), the decoders of the original's NUS-WIDE and COCO
    images. Other formats decode the same either way.
    """

    if jpeg_idct not in JPEG_IDCTS:
        raise DataError(f"unknown JPEG IDCT {jpeg_idct!r}: choose one of {list(JPEG_IDCTS)}")
    if jpeg_idct == "fast":
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
    else:
        image = tf.cond(
            tf.io.is_jpeg(data),
            lambda: tf.io.decode_jpeg(data, channels=3, dct_method=_DCT_METHODS[jpeg_idct]),
            lambda: tf.io.decode_image(data, channels=3, expand_animations=False))
    image.set_shape([None, None, 3])
    return image


def jpeg_settings(jpeg_idct: str) -> dict:
    """What the JPEG decoding adds to the settings of a feature cache or of a run on images:
    nothing for TensorFlow's default, so that those made before the choice existed keep their
    names and digests."""
    return {} if jpeg_idct == "fast" else {"jpeg_idct": jpeg_idct}


def load_image(path, image_size: tuple[int, int] = (224, 224), scaling: str = "imagenet",
               resize: str = "skimage", jpeg_idct: str = "fast") -> tf.Tensor:
    """Read, decode (3 channels, first frame; ``jpeg_idct`` as in :func:`decode_image`), resize
    and scale one image file (tf.data-ready).

    Example:
        >>> dataset = tf.data.Dataset.from_tensor_slices(paths).map(load_image)
    """

    image = decode_image(tf.io.read_file(path), jpeg_idct)
    return scale_images(resize_image(image, image_size, resize), scaling)
