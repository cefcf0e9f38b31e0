"""Fine-tuning the backbone's top layers with the head, on augmented images.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from mlml_tf.apps.own.folder import TRAINING_LOG
from mlml_tf.apps.own.network import _backbone, assemble, preprocessing_layers
from mlml_tf.errors import DataError
from mlml_tf.features.backbones import _sublayers
from mlml_tf.features.images import decode_image, resize_image
from mlml_tf.files.own_table import LabelTable
from mlml_tf.settings import FitSettings
from mlml_tf.training.callbacks import AtomicBackupAndRestore, StartStep
from mlml_tf.training.heads import build_head
from mlml_tf.training.runs import run_objective
from mlml_tf.training.schedule import batch_rows, step_count


def fine_tune(backbone, head, settings: FitSettings, table: LabelTable, rows: np.ndarray,
               run_data, work: Path, verbose, backbone_given=None, callbacks=()):
    """Train the backbone's top ``settings.fine_tune`` layers with weights and the head on the
    images of ``rows``, lightly augmented (a random crop of 80-100 % of each side, a random
    horizontal flip, both seeded), batch norm frozen in inference mode; returns the model."""

    gpu = bool(tf.config.list_physical_devices("GPU"))
    mixed = settings.mixed_precision is True or (settings.mixed_precision == "auto" and gpu)
    # A backbone given as a model cannot be made again under another policy.
    mixed = mixed and backbone_given is None
    loss = run_objective(settings.run_config(), run_data).keras_loss()
    policy = keras.config.dtype_policy()
    if mixed:
        keras.config.set_dtype_policy("mixed_float16")
    try:
        # Layers take their policy when they are made: float16 arithmetic needs copies made
        # under it (their variables stay float32, so the weights go back and forth exactly).
        tuned_backbone, tuned_head = backbone, head
        if mixed:
            tuned_backbone, tuned_head = _backbone(settings), _head_like(head, run_data)
            tuned_backbone.set_weights(backbone.get_weights())
            tuned_head.set_weights(head.get_weights())
        _unfreeze_top(tuned_backbone, settings.fine_tune)
        inputs = keras.Input((settings.image_size, settings.image_size, 3), name="image")
        scale = preprocessing_layers(settings.image_size, settings.scaling, settings.resize)[1]
        logits = keras.layers.Activation("linear", dtype="float32", name="logits")(
            tuned_head(tuned_backbone(scale(inputs), training=False)))
        trainer = keras.Model(inputs, logits, name="fine_tune")
        trainer.compile(optimizer=keras.optimizers.Adam(settings.fine_tune_learning_rate),
                        loss=loss)
    finally:
        keras.config.set_dtype_policy(policy)
    paths = [str(table.paths[i]) for i in rows]
    start = StartStep()
    stream, steps = _augmented(paths, run_data.train_labels, run_data.weights, settings,
                               lambda: start.step)
    work.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(settings.seed)
    # A killed fine-tuning resumes from its last epoch (the work folder is kept until the
    # model folder is in place).
    trainer.fit(stream, epochs=settings.fine_tune_epochs, steps_per_epoch=steps,
                verbose=verbose, shuffle=False,
                callbacks=[AtomicBackupAndRestore(str(work / "backup")), start,
                           keras.callbacks.CSVLogger(str(work / TRAINING_LOG), append=True),
                           *callbacks])
    if mixed:
        backbone.set_weights(tuned_backbone.get_weights())
        head.set_weights(tuned_head.get_weights())
    backbone.trainable = False
    return assemble(backbone, head, settings)


def _head_like(head, run_data):
    layout = "original" if any(layer.name == "flatten" for layer in head.layers) else "gap"
    return build_head(head.input_shape[1:], len(run_data.classes), head=layout)


def _unfreeze_top(backbone, n: int) -> None:
    """Make the top ``n`` layers with weights of ``backbone`` trainable, every other layer
    (batch normalisation included) frozen."""

    weighted = [layer for layer in _layers(backbone) if layer.weights
                and not isinstance(layer, keras.layers.BatchNormalization)]
    if n > len(weighted):
        raise DataError(f"--fine-tune {n}: the backbone has {len(weighted)} layers with "
                        "weights (batch normalisation aside)")
    backbone.trainable = True
    for layer in _layers(backbone):
        layer.trainable = False
    for layer in weighted[len(weighted) - n:]:
        layer.trainable = True


def _layers(model):
    """The layers of ``model`` that hold no layers themselves, nested models opened."""
    return [layer for layer in _sublayers(model) if not getattr(layer, "layers", None)]


def _augmented(paths: list[str], labels: np.ndarray, weights: np.ndarray,
               settings: FitSettings, start_step):
    """``(stream, steps per epoch)`` of augmented (images, y, W) batches from step
    ``start_step()`` on: batch k holds the rows :func:`mlml_tf.train.batch_rows` gives for
    (seed, k), and the crop and flip of its j-th image are drawn from (seed, k B + j), so that
    a resumed fine-tuning sees exactly the batches of an uninterrupted one."""
    n, b, size = len(paths), settings.batch_size, settings.image_size
    steps = step_count(n, b)
    files, y, w = tf.constant(paths), tf.constant(labels), tf.constant(weights)

    def batches():
        for step in range(int(start_step()), settings.fine_tune_epochs * steps):
            rows = batch_rows(n, b, settings.seed, step)
            yield rows, np.arange(step * b, (step + 1) * b, dtype=np.int64)

    def load(i, position):
        seed = tf.stack([tf.constant(settings.seed, tf.int64), position])
        image = decode_image(tf.io.read_file(files[i]))
        shape = tf.shape(image)
        fraction = tf.random.stateless_uniform([2], seed, 0.8, 1.0)
        crop = tf.maximum(tf.cast(fraction * tf.cast(shape[:2], tf.float32), tf.int32), 1)
        start = tf.cast(tf.random.stateless_uniform([2], seed + 1, 0.0, 1.0)
                        * tf.cast(shape[:2] - crop, tf.float32), tf.int32)
        image = tf.image.crop_to_bounding_box(image, start[0], start[1], crop[0], crop[1])
        image = tf.image.stateless_random_flip_left_right(image, seed + 2)
        return resize_image(image, (size, size), settings.resize), y[i], w[i]

    spec = tf.TensorSpec((b,), tf.int64)
    stream = tf.data.Dataset.from_generator(batches, output_signature=(spec, spec)).unbatch()
    # Deterministic parallel map: the images of a batch come back in the order of its rows.
    stream = stream.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return stream.batch(b, drop_remainder=True).prefetch(2), steps
