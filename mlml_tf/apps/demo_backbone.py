"""The demo's backbone.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import keras

from mlml_tf.datasets.digits import CANVAS, CLASS_NAMES, digit_split, single_digit_images
from mlml_tf.errors import DataError
from mlml_tf.features.backbones import weights_digest
from mlml_tf.features.images import scale_images
from mlml_tf.files.atomic import atomic_path, write_bytes_atomic

#: The backbone's architecture, named in the feature cache's settings.
BACKBONE_NAME = "digits-cnn-3x(conv3x3+maxpool)-conv1x1-bn-relu"

log = logging.getLogger(__name__)


BACKBONE_FILE = "backbone.keras"


BACKBONE_INFO = "backbone.json"


SCALING = "imagenet"


def build_backbone(seed: int = 0):
    """The demo's backbone, untrained: 48 x 48 x 3 images -> 6 x 6 x 32 features."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((CANVAS, CANVAS, 3), name="image")
    x = inputs
    for i, filters in enumerate((16, 32, 32), start=1):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu",
                                name=f"conv{i}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{i}")(x)
    # A 1 x 1 conv with batch norm and ReLU, as Inception-ResNet-v2's feature layer conv_7b_ac:
    # features of a known scale, whatever the scale of the conv blocks before it.
    x = keras.layers.Conv2D(32, 1, use_bias=False, name="features_conv")(x)
    x = keras.layers.BatchNormalization(momentum=0.9, name="features_bn")(x)
    x = keras.layers.ReLU(name="features")(x)
    return keras.Model(inputs, x, name="digits_backbone")


def pretrain_backbone(seed: int = 0, epochs: int = 8, copies: int = 3, batch_size: int = 32,
                      verbose: int = 0):
    """Pretrain the backbone on single digits of the pretraining half of ``load_digits``.

    A classifier (backbone -> global max pooling -> Dense 10 softmax) learns to name the one
    digit of a canvas; max pooling makes each position of the feature map a detector, which is
    what a multi-label head needs. Images are scaled as the feature pipeline scales them.

    Returns:
        ``(backbone, info)``: the backbone, frozen, and a dict with the held-out accuracy on
        single digits of the mosaic half (glyphs never seen in pretraining).
    """
    pretraining, mosaic = digit_split(seed)
    images, digits = single_digit_images(pretraining, seed=seed, copies=copies)
    held_images, held_digits = single_digit_images(mosaic, seed=seed + 1)
    backbone = build_backbone(seed)
    classifier = keras.Sequential([
        backbone,
        keras.layers.GlobalMaxPooling2D(name="max_over_positions"),
        keras.layers.Dense(len(CLASS_NAMES), activation="softmax", name="digit"),
    ], name="pretraining_classifier")
    # 32 steps a call of the compiled loop: the same weights bit for bit, in a third less time.
    classifier.compile(optimizer=keras.optimizers.Adam(1e-3),
                       loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                       steps_per_execution=32)
    classifier.fit(scale_images(images, SCALING), digits, epochs=epochs, batch_size=batch_size,
                   shuffle=True, verbose=verbose)
    _, accuracy = classifier.evaluate(scale_images(held_images, SCALING), held_digits,
                                      batch_size=256, verbose=0)
    backbone.trainable = False
    info = {"pretraining_digits": int(len(pretraining)), "copies": int(copies),
            "epochs": int(epochs), "held_out_digits": int(len(mosaic)),
            "held_out_accuracy": round(float(accuracy), 4)}
    return backbone, info


def pretrained_backbone(out: Path, copies: int, epochs: int, seed: int,
                        source: str | os.PathLike | None = None):
    """Load the pretrained backbone of an earlier call with the same settings, or pretrain one.

    ``source``: a folder holding the ``backbone.keras`` and ``backbone.json`` of another demo
    with the same settings (another machine's, say), taken instead of pretraining here. The
    pretraining is where two machines part: their kernels round otherwise, and a few hundred
    steps of Adam make of that another backbone (``benchmarks/bench_spread.py``).
    """

    wanted = backbone_settings(copies, epochs, seed)
    info_path, model_path = out / BACKBONE_INFO, out / BACKBONE_FILE
    if source is not None:
        _take_backbone(Path(source), out, wanted)
    if info_path.exists() and model_path.exists():
        info = json.loads(info_path.read_text())
        if info.get("settings") == wanted:
            backbone = keras.models.load_model(model_path)
            if weights_digest(backbone) == info.get("weights_sha256"):
                backbone.trainable = False
                log.info("backbone: reused %s", model_path)
                return backbone, info
    backbone, result = pretrain_backbone(seed, epochs, copies)
    with atomic_path(model_path) as tmp:
        backbone.save(tmp)
    info = {"settings": wanted, "weights_sha256": weights_digest(backbone), **result}
    write_bytes_atomic(info_path, json.dumps(info, indent=1, sort_keys=True).encode() + b"\n")
    log.info("backbone: pretrained on single digits, held-out accuracy %.3f -> %s",
             result["held_out_accuracy"], model_path)
    return backbone, info


def backbone_settings(copies: int, epochs: int, seed: int) -> dict:
    """The settings a pretrained backbone is known by in ``backbone.json``."""
    return {"name": BACKBONE_NAME, "seed": seed, "copies": copies, "epochs": epochs}


def check_backbone_source(source: str | os.PathLike, copies: int, epochs: int,
                          seed: int) -> dict:
    """The ``backbone.json`` of the demo folder ``source``, once its settings are the ones
    asked for and ``backbone.keras`` holds the weights it names; a DataError naming the file
    otherwise."""
    source = Path(source)
    wanted = backbone_settings(copies, epochs, seed)
    info_path, model_path = source / BACKBONE_INFO, source / BACKBONE_FILE
    for path in (info_path, model_path):
        if not path.is_file():
            raise DataError("file not found (a pretrained backbone is a demo folder's "
                            f"{BACKBONE_FILE} and {BACKBONE_INFO})", file=path)
    try:
        info = json.loads(info_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"not valid JSON ({exc})", file=info_path) from None
    if not isinstance(info, dict) or info.get("settings") != wanted:
        found = info.get("settings") if isinstance(info, dict) else None
        raise DataError(f"a backbone pretrained with {found}, where this demo pretrains with "
                        f"{wanted}", file=info_path)
    try:
        backbone = keras.models.load_model(model_path)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot be read as a Keras model ({exc})", file=model_path) from None
    if weights_digest(backbone) != info.get("weights_sha256"):
        raise DataError(f"its weights are not those {BACKBONE_INFO} names", file=model_path)
    return info


def _take_backbone(source: Path, out: Path, wanted: dict) -> None:
    """Copy the backbone of ``source`` into ``out``, once it is checked."""
    check_backbone_source(source, wanted["copies"], wanted["epochs"], wanted["seed"])
    if source.resolve() != out.resolve():
        out.mkdir(parents=True, exist_ok=True)
        for name in (BACKBONE_FILE, BACKBONE_INFO):
            write_bytes_atomic(out / name, (source / name).read_bytes())
