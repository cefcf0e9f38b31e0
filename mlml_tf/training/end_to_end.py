"""End to end on images.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from mlml_tf.errors import DataError
from mlml_tf.features.backbones import backbone_settings, backbone_weights, weights_digest
from mlml_tf.features.checks import check_images, non_rgb_images
from mlml_tf.features.dataset import image_dataset
from mlml_tf.features.images import jpeg_settings, load_image
from mlml_tf.files.atomic import atomic_path
from mlml_tf.methods.registry import method
from mlml_tf.metrics.report import tune_thresholds
from mlml_tf.runs.outputs import HEAD_WEIGHTS, write_run_outputs
from mlml_tf.settings import RunConfig
from mlml_tf.training.callbacks import StartStep, run_callbacks
from mlml_tf.training.data import RunData, drop_skipped_images, load_run_data
from mlml_tf.training.heads import build_model
from mlml_tf.training.optimizer import adadelta, get_strategy
from mlml_tf.training.record import config_settings, mark_complete
from mlml_tf.training.runs import run_info, run_objective, scored_test_rows
from mlml_tf.training.schedule import epoch_steps, validation_split
from mlml_tf.training.stream import batch_index_stream


def image_run_digest(config: RunConfig, run_data: RunData, image_paths: Sequence[str],
                     ids: Sequence[str], backbone="InceptionResNetV2",
                     weights: str | os.PathLike | None = "imagenet", hub: str | None = None,
                     image_size: int = 224, scaling: str = "imagenet",
                     resize: str = "skimage", rgb_only: bool = False,
                     jpeg_idct: str = "fast") -> str:
    """Hash of everything that determines a run trained on images (there is no feature cache).

    It covers the run's settings, its label files, the backbone (name and weights, see
    :func:`mlml_tf.features.backbone_settings`; a backbone given as a model by its weights),
    the image size and scaling, the JPEG decoding where it is not TensorFlow's default
    (:func:`mlml_tf.features.images.jpeg_settings`), and the image file of each training and
    test row.
    """

    content = {
        "config": config_settings(config),
        "labels": run_data.label_digest,
        "backbone": _backbone_identity(backbone, weights, hub),
        "batch_norm": "batch statistics",
        "image_size": int(image_size),
        "scaling": scaling,
        "resize": resize,
        "rgb_only": bool(rgb_only),
        "images": _images_digest(_run_paths(run_data, image_paths, ids)),
        **jpeg_settings(jpeg_idct),
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def faithful_image_model(num_classes: int, config: RunConfig, backbone="InceptionResNetV2",
                         weights: str | os.PathLike | None = "imagenet", image_size: int = 224):
    """Images -> frozen backbone -> head, batch norm on batch statistics while training.

    A backbone given as a model is frozen in place. Only the head's weights are trainable.
    """
    if isinstance(backbone, keras.Layer):
        backbone.trainable = False
    return build_model(num_classes, backbone, backbone_weights(weights), head=config.head,
                       input_shape=(image_size, image_size, 3),
                       output="logits" if config.from_logits else "probabilities",
                       seed=config.seed, faithful_batch_norm=True)


def training_images(paths: Sequence[str], labels: np.ndarray, weights: np.ndarray,
                    batch_size: int, seed: int, start_step: Callable[[], int],
                    image_size: int = 224, scaling: str = "imagenet", epochs: int = 1,
                    steps_per_epoch: int | None = None, shuffle_buffer: int = 0,
                    resize: str = "skimage", jpeg_idct: str = "fast"):
    """The stream of (images, y, W) batches of ``epochs`` epochs; batch k holds the rows
    :func:`mlml_tf.train.batch_rows` gives for (seed, k), images decoded, resized and scaled as
    :func:`mlml_tf.inputs.image_dataset` does. ``start_step`` as in
    :func:`mlml_tf.train.training_dataset`.

    Returns:
        ``(dataset, steps per epoch)``.
    """
    ds, steps = batch_index_stream(len(paths), batch_size, seed, start_step, epochs,
                                   steps_per_epoch, shuffle_buffer)
    files, y, w = tf.constant(list(paths)), tf.constant(labels), tf.constant(weights)

    def load(i):
        return (load_image(files[i], (image_size, image_size), scaling, resize, jpeg_idct),
                y[i], w[i])

    # Deterministic parallel map: the images of a batch come back in the order of its rows.
    ds = ds.unbatch().map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size, drop_remainder=True).prefetch(2), steps


def predict_images(model, paths: Sequence[str], image_size: int = 224,
                   scaling: str = "imagenet", from_logits: bool = True,
                   batch_size: int = 32, resize: str = "skimage",
                   jpeg_idct: str = "fast") -> np.ndarray:
    """Probabilities for every image, the model in inference mode (the original's test mode)."""
    if not len(paths):
        return np.zeros((0, model.output_shape[-1]), np.float32)
    images = image_dataset(list(paths), image_size=(image_size, image_size), scaling=scaling,
                           batch_size=batch_size, check="none", resize=resize,
                           jpeg_idct=jpeg_idct)
    outputs = model.predict(images.dataset, verbose=0)
    return tf.sigmoid(outputs).numpy() if from_logits else outputs


def train_run_on_images(data: str | os.PathLike, image_paths: Sequence[str], ids: Sequence[str],
                        run_dir: str | os.PathLike, config: RunConfig,
                        backbone="InceptionResNetV2",
                        weights: str | os.PathLike | None = "imagenet", hub: str | None = None,
                        image_size: int = 224, scaling: str = "imagenet",
                        run_data: RunData | None = None, verbose: int | str = "auto",
                        extra: dict | None = None, skip_bad: bool = False,
                        resize: str = "skimage", rgb_only: bool = False,
                        jpeg_idct: str = "fast", faithful: bool = False) -> dict:
    """Train one run on images, the backbone run at every step with batch statistics, and write
    its results to ``run_dir`` as :func:`mlml_tf.train.train_run` does.

    Args:
        data: the data folder.
        image_paths: the image file of each id, aligned with ``ids``.
        ids: sample ids; they must cover the run's training and test rows.
        run_dir: the run folder; resumed from ``run_dir/backup`` if an attempt was killed.
        config: the run's settings.
        backbone: a ``keras.applications`` name, or a backbone model (frozen in place).
        weights: backbone weights, as in :func:`mlml_tf.model.build_backbone`.
        hub: a TF Hub handle or SavedModel: refused, since batch norm inside a SavedModel cannot
            be switched to batch statistics.
        image_size: images are resized to ``image_size`` x ``image_size``.
        scaling: ``"imagenet"`` (the original's) or ``"inception"``.
        run_data: the run's arrays, if already loaded.
        verbose: passed to ``fit``.
        extra: more details stored in ``metrics.json``.
        skip_bad: leave out rows whose image is missing or unreadable, as the original did,
            instead of stopping.
        resize: as in :func:`mlml_tf.inputs.resize_image`; default skimage's anti-aliased
            resize, as the original.
        rgb_only: leave out rows whose image is not stored as RGB, as the original's NUS-WIDE
            preprocessing did (:func:`mlml_tf.inputs.non_rgb_images`).
        jpeg_idct: "fast" (TensorFlow's default) or "accurate" (the pixels of Pillow and
            OpenCV, the original's decoders), see :func:`mlml_tf.features.images.decode_image`.
        faithful: every setting is the original's (``mlml-tf run --faithful``), recorded in
            ``metrics.json``.

    Returns:
        The metrics dictionary. ``head.weights.h5`` holds the weights of the head (the model's
        only trainable part), loadable into :func:`mlml_tf.model.build_head`.
    """
    if config.mixed_precision:
        raise DataError("mixed precision is for heads on cached features: training on images "
                        "with batch statistics runs in float32, as the original")
    if hub or (isinstance(backbone, str) and ("://" in backbone or os.path.isdir(backbone))):
        raise DataError("batch statistics need a keras.applications backbone or a Keras model: "
                        "the batch norm layers of a SavedModel cannot be switched to them")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    run_data = run_data or load_run_data(data, config)
    digest = image_run_digest(config, run_data, image_paths, ids, backbone, weights, hub,
                              image_size, scaling, resize, rgb_only, jpeg_idct)
    paths = dict(zip(_run_ids(run_data), _run_paths(run_data, image_paths, ids), strict=True))
    bad = {b.path: b.reason for b in check_images(sorted(set(paths.values())))}
    if bad and not skip_bad:
        first = next(i for i in paths if paths[i] in bad)
        raise DataError(f"image of id {first!r}: {bad[paths[first]]}", file=paths[first])
    if rgb_only:
        readable = sorted(set(paths.values()) - set(bad))
        bad.update({b.path: b.reason for b in non_rgb_images(readable)})
    run_data, dropped = drop_skipped_images(run_data, [i for i in paths if paths[i] in bad])
    train_paths = np.array([paths[str(i)] for i in run_data.train_ids], dtype=object)
    test_paths = np.array([paths[str(i)] for i in run_data.test_ids], dtype=object)
    labels, train_w = run_data.train_labels, run_data.weights
    fit_idx, val_idx = validation_split(len(train_paths), config)

    keras.utils.set_random_seed(config.seed)
    strategy = get_strategy(config.strategy)
    with strategy.scope():
        model = faithful_image_model(len(run_data.classes), config, backbone, weights,
                                     image_size)
        model.compile(optimizer=adadelta(config), loss=_image_loss(config, run_data),
                      jit_compile=config.jit_compile)
    head = model.get_layer("head")
    start = StartStep()
    dataset, steps = training_images(
        train_paths[fit_idx], labels[fit_idx], train_w[fit_idx], config.batch_size,
        config.seed, start_step=lambda: start.step, image_size=image_size, scaling=scaling,
        epochs=config.epochs, steps_per_epoch=epoch_steps(data, config),
        shuffle_buffer=config.shuffle_buffer, resize=resize, jpeg_idct=jpeg_idct,
    )
    trained = run_dir / HEAD_WEIGHTS
    if trained.exists():
        # Killed after training but before the results were written: the head is done.
        head.load_weights(trained)
    else:
        model.fit(dataset, epochs=config.epochs, steps_per_epoch=steps, verbose=verbose,
                  shuffle=False, callbacks=run_callbacks(run_dir, start))
        with atomic_path(trained) as tmp:
            head.save_weights(tmp)

    def predict(rows_paths):
        return predict_images(model, rows_paths, image_size, scaling, config.from_logits,
                              config.batch_size, resize, jpeg_idct)

    thresholds = None
    if len(val_idx):

        thresholds = tune_thresholds(labels[val_idx], predict(train_paths[val_idx]))
    probabilities, test_labels = scored_test_rows(
        lambda idx: predict(test_paths[idx]), run_data.test_labels, config, dropped["test"])
    info = {
        **run_info(config, run_data, fit_idx, val_idx, steps, strategy, digest, dropped),
        "backbone": _backbone_identity(backbone, weights, hub),
        "batch_norm": "batch statistics in training, moving statistics at test",
        "image_size": int(image_size),
        "scaling": scaling,
        "resize": resize,
        "rgb_only": bool(rgb_only),
        "jpeg_idct": jpeg_idct,
        **(extra or {}),
    }
    metrics = write_run_outputs(run_dir, test_labels, probabilities, run_data.classes,
                                thresholds=thresholds, extra=info, faithful=faithful)
    mark_complete(run_dir, digest, metrics)
    return metrics


def _image_loss(config: RunConfig, run_data: RunData):
    """The run's loss on a model of images to logits (or the original's probabilities). A
    method that keeps state per training row needs each row's index in the training stream,
    which this stream of images does not carry."""
    if method(config.method).needs_rows:
        raise DataError(f"method {config.method!r} keeps state per training row and needs each "
                        "row's index in the training stream; training end to end on the images "
                        "(--faithful-batch-norm) streams no row index: train it on cached "
                        "features")
    return run_objective(config, run_data).keras_loss()


def _backbone_identity(backbone, weights, hub) -> dict:
    if isinstance(backbone, str) or hub:
        return backbone_settings(backbone, backbone_weights(weights), hub)
    # A model given as the backbone: known by its name and the digest of its weights.
    return {"backbone": "model", "name": backbone.name, "weights_sha256": weights_digest(backbone)}


def _run_ids(run_data: RunData) -> list[str]:
    return [str(i) for i in (*run_data.train_ids, *run_data.test_ids)]


def _run_paths(run_data: RunData, image_paths: Sequence[str], ids: Sequence[str]) -> list[str]:
    """The image of each training then test row of the run."""
    if len(image_paths) != len(ids):
        raise DataError(f"{len(image_paths)} image paths for {len(ids)} ids")
    by_id = dict(zip((str(i) for i in ids), (os.fspath(p) for p in image_paths), strict=True))
    missing = [i for i in _run_ids(run_data) if i not in by_id]
    if missing:
        raise DataError(f"id {missing[0]!r} of the run has no image path "
                        f"({len(missing)} ids missing)")
    return [by_id[i] for i in _run_ids(run_data)]


def _images_digest(paths: Sequence[str]) -> str:
    # The rows' files by absolute path: the same relative path from another folder is another
    # image.
    local = [p if "://" in p else os.path.abspath(p) for p in paths]
    return hashlib.sha256(json.dumps(local).encode()).hexdigest()
