"""From image files to a feature cache.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import keras

from mlml_tf.errors import DataError
from mlml_tf.features.backbones import (
    backbone_settings,
    backbone_weights,
    feature_extractor,
    inference_function,
)
from mlml_tf.features.cache import FeatureCache, build_feature_cache, cache_key, dtype_settings
from mlml_tf.features.dataset import image_dataset
from mlml_tf.features.images import jpeg_settings
from mlml_tf.files.layout import data_set, image_files
from mlml_tf.files.published import read_complete_labels

log = logging.getLogger(__name__)


def build_image_cache(
    cache_dir: str | os.PathLike,
    ids: Sequence[str],
    paths: Sequence[str],
    extractor,
    settings: dict,
    image_size: tuple[int, int],
    scaling: str = "imagenet",
    batch_size: int = 64,
    skip_bad: bool = False,
    progress: bool = True,
    resize: str = "skimage",
    rgb_only: bool = False,
    jpeg_idct: str = "fast",
    dtype: str = "float16",
) -> FeatureCache:
    """Run ``extractor`` (a frozen backbone, inference mode) once over the images of ``ids``.

    A missing or unreadable image stops with a DataError naming it, unless ``skip_bad``: then
    it is left out of the cache and listed under ``skipped`` in its manifest, its reason under
    ``skip_reasons``. With ``rgb_only`` the images not stored as RGB are left out and listed
    the same way (the original's NUS-WIDE preprocessing, docs/original.md section 5). ``resize`` and
    ``rgb_only`` are among the cache's settings: a cache made otherwise is rebuilt, not reused;
    so are ``jpeg_idct`` (:func:`mlml_tf.features.images.decode_image`) and ``dtype``
    (:func:`mlml_tf.features.cache.dtype_settings`) where they are not the default, so that the
    caches made before they could be chosen keep their settings.
    """

    ids = [str(i) for i in ids]
    images = image_dataset(paths, image_size=tuple(image_size), scaling=scaling,
                           batch_size=batch_size, skip_bad=skip_bad, resize=resize,
                           rgb_only=rgb_only, jpeg_idct=jpeg_idct)
    kept = [ids[i] for i in images.indices]
    reasons = {ids[bad.index]: bad.reason for bad in images.skipped}
    skipped = sorted(reasons)
    if skipped:
        log.warning("%d of %d images left out (listed in the cache's manifest): %s%s",
                    len(skipped), len(ids),
                    "; ".join(f"{bad.path}: {bad.reason}" for bad in images.skipped[:3]),
                    " ..." if len(skipped) > 3 else "")


    if isinstance(extractor, keras.Layer):

        extract = inference_function(extractor)
    else:
        def extract(batch):
            return extractor(batch, training=False)

    settings = dict(settings, image_size=list(image_size), scaling=scaling, resize=resize,
                    rgb_only=rgb_only, skipped=len(skipped), **jpeg_settings(jpeg_idct))
    return build_feature_cache(cache_dir, kept, lambda: iter(images.dataset), extract, settings,
                               skipped=skipped, skip_reasons=reasons, progress=progress,
                               dtype=dtype)


def nuswide_folder(data: str | os.PathLike) -> bool:
    """Whether a data folder holds NUS-WIDE (:func:`mlml_tf.layout.data_set`)."""
    return data_set(data) == "nuswide"


def cache_for_data_folder(data: str | os.PathLike, cache_root: str | os.PathLike,
                          options) -> FeatureCache:
    """The feature cache of every image of a data folder, built on first use.

    ``options`` is a :class:`mlml_tf.grid.GridOptions`. The cache sits in
    ``cache_root/<digest of its settings>``: other settings, another cache. ``options.resize``
    as in :func:`mlml_tf.inputs.resize_image`. For a NUS-WIDE folder
    (:func:`nuswide_folder`) the images the original could not read are left out and listed,
    as its preprocessing did: unreadable files and, unless ``options.keep_grayscale``, images
    not stored as RGB (docs/original.md section 5).
    """
    if options.images is None:
        raise DataError("--images is needed to compute features: the folder of the images")
    weights = backbone_weights(options.weights)
    settings = backbone_settings(options.backbone, weights, options.hub)
    if weights is None and not options.hub:
        # Random backbone weights are drawn from the seed: part of what makes the features.
        settings["seed"] = options.seed
    size = (options.image_size, options.image_size)
    ids = list(read_complete_labels(data).index)
    # The images are part of what makes the features: other images, another cache and digest.
    settings["images"] = str(Path(options.images).resolve())
    resize = options.resize
    nuswide = nuswide_folder(data)
    rgb_only = nuswide and not options.keep_grayscale
    full = dict(settings, image_size=list(size), scaling=options.scaling, resize=resize,
                rgb_only=rgb_only, **jpeg_settings(options.jpeg_idct),
                **dtype_settings(options.feature_dtype))
    folder = Path(cache_root) / cache_key(dict(full, ids=len(ids)))
    paths = image_files(data, ids, options.images, options.image_pattern)
    model = []

    def extractor(batch, training=False):
        # Built on first use: a cache that is already complete needs no backbone (nor download).
        if not model:


            keras.utils.set_random_seed(options.seed)
            model.append(inference_function(feature_extractor(
                options.hub or options.backbone, weights=weights, input_shape=(*size, 3))))
        return model[0](batch)

    return build_image_cache(folder, ids, paths, extractor, settings, size, options.scaling,
                             batch_size=max(options.batch_size, 32),
                             skip_bad=options.skip_bad_images or nuswide, resize=resize,
                             rgb_only=rgb_only, jpeg_idct=options.jpeg_idct,
                             dtype=options.feature_dtype)
