"""The saved model's network.
"""

from __future__ import annotations

import keras

from mlml_tf.features.backbones import backbone_weights, build_backbone
from mlml_tf.features.images import IMAGENET_MEAN, IMAGENET_STD
from mlml_tf.settings import FitSettings


def preprocessing_layers(image_size: int, scaling: str, resize: str) -> list:
    """Keras' own layers that bring images in [0, 255] of any size to the backbone's input:
    ``Resizing`` (bilinear, anti-aliased or not) and the scaling of
    :func:`mlml_tf.inputs.scale_images` as ``Normalization`` or ``Rescaling``."""

    resizing = keras.layers.Resizing(image_size, image_size, interpolation="bilinear",
                                     antialias=resize == "antialias", name="resize")
    if scaling == "imagenet":
        scale = keras.layers.Normalization(mean=[255.0 * m for m in IMAGENET_MEAN],
                                           variance=[(255.0 * s) ** 2 for s in IMAGENET_STD],
                                           name="scale")
    else:
        scale = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="scale")
    return [resizing, scale]


def _extractor(backbone, settings: FitSettings):
    """Resized images (float, [0, 255]) -> features: the scaling and the backbone in inference
    mode, exactly as the saved model computes them."""

    size = settings.image_size
    inputs = keras.Input((size, size, 3), name="image")
    scale = preprocessing_layers(size, settings.scaling, settings.resize)[1]
    return keras.Model(inputs, backbone(scale(inputs), training=False), name="extractor")


def assemble(backbone, head, settings: FitSettings):
    """The saved model: images of any size -> resize -> scale -> backbone -> head -> sigmoid."""

    inputs = keras.Input((None, None, 3), name="image", dtype="float32")
    resizing, scale = preprocessing_layers(settings.image_size, settings.scaling,
                                           settings.resize)
    features = backbone(scale(resizing(inputs)), training=False)
    probabilities = keras.layers.Activation("sigmoid", name="probabilities",
                                            dtype="float32")(head(features))
    return keras.Model(inputs, probabilities, name="mlml_tf_model")


def _backbone(settings: FitSettings, backbone=None):
    if backbone is not None:
        return backbone
    # Random weights are drawn from the seed: the same seed, the same backbone, the same cache.
    keras.utils.set_random_seed(settings.seed)
    return build_backbone(settings.backbone, weights=backbone_weights(settings.weights),
                          input_shape=(settings.image_size, settings.image_size, 3))
