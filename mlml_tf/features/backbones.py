"""Backbones.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
import tensorflow_hub as hub
from tensorflow.core.protobuf import saved_model_pb2

from mlml_tf.errors import DataError
from mlml_tf.files.atomic import file_digest

#: The feature layer named in docs/original.md section 5; with ``include_top=False`` it is the
#: application's output.
FEATURE_LAYERS = {"InceptionResNetV2": "conv_7b_ac"}


#: SavedModel endpoints tried in turn when none is named: Keras ``model.export`` writes "serve",
#: TF Hub models have "__call__", other SavedModels at least "serving_default".
SAVED_MODEL_ENDPOINTS: tuple[str, ...] = ("serve", "__call__", "serving_default")


def application_names() -> list[str]:
    """Names of the backbones ``keras.applications`` offers (InceptionResNetV2, ResNet50, ...)."""
    return sorted(
        name
        for name in dir(keras.applications)
        if name[:1].isupper() and callable(getattr(keras.applications, name))
    )


def build_backbone(
    name: str = "InceptionResNetV2",
    weights: str | os.PathLike | None = "imagenet",
    input_shape: Sequence[int] = (224, 224, 3),
    trainable: bool = False,
    **kwargs,
) -> keras.Model:
    """A ``keras.applications`` model without its classifier, mapping images to a feature map.

    Args:
        name: a ``keras.applications`` name (see :func:`application_names`), or a TF Hub handle /
            SavedModel directory, which goes to :func:`saved_model_backbone`.
        weights: ``"imagenet"`` (downloaded once by Keras into ``~/.keras``), the path of a
            ``.h5`` / ``.weights.h5`` file of this architecture, or ``None`` for random weights.
        input_shape: (height, width, channels) of the images.
        trainable: leave ``False`` for the paper's frozen backbone.
        **kwargs: passed to the application (e.g. ``alpha`` of MobileNetV2).

    Returns:
        A ``keras.Model`` from images to the last conv feature map (for InceptionResNetV2 the
        output of ``conv_7b_ac``). Call it with ``training=False``, as :func:`build_model` does.

    Example:
        >>> backbone = build_backbone("InceptionResNetV2", weights=None)
        >>> backbone.output.shape
        (None, 5, 5, 1536)
    """
    if name not in application_names():
        if _is_saved_model_handle(name):
            return saved_model_backbone(name, input_shape=input_shape)
        raise DataError(
            f"unknown backbone {name!r}: give a keras.applications name "
            f"({', '.join(application_names())}), a TF Hub handle or a SavedModel directory"
        )
    if weights is not None and weights != "imagenet":
        weights = os.fspath(weights)
        if not os.path.exists(weights):
            raise DataError("weights file not found", file=weights)
    application = getattr(keras.applications, name)
    model = application(
        include_top=False, weights=weights, input_shape=tuple(input_shape), **kwargs
    )
    model.trainable = trainable
    return model


def saved_model_backbone(
    handle: str | os.PathLike,
    input_shape: Sequence[int] = (224, 224, 3),
    call_endpoint: str | None = None,
    output_key: str | None = None,
) -> keras.Model:
    """A frozen backbone from a TF Hub handle or a local TensorFlow SavedModel.

    The SavedModel is wrapped in ``keras.layers.TFSMLayer`` (``hub.KerasLayer`` belongs to
    Keras 2 and cannot sit in a Keras 3 model). A URL handle is downloaded and cached by
    ``tensorflow_hub``; a directory is used as it is.

    Args:
        handle: TF Hub URL or path of a SavedModel directory.
        input_shape: (height, width, channels) of the images the SavedModel expects.
        call_endpoint: endpoint to call; by default the first present of
            ``SAVED_MODEL_ENDPOINTS``.
        output_key: which output to keep when the endpoint returns a dict with several entries.

    Returns:
        A ``keras.Model`` from images to the SavedModel's output, with no trainable weights.

    Example:
        >>> backbone = saved_model_backbone("exported/backbone", input_shape=(96, 96, 3))
        >>> model = build_model(10, backbone=backbone, head="gap", input_shape=(96, 96, 3))
    """

    path = os.fspath(handle)
    if "://" in path:

        path = hub.resolve(path)
    if not tf.saved_model.contains_saved_model(path):
        raise DataError("no TensorFlow SavedModel found here", file=path)
    endpoint = call_endpoint or _default_endpoint(path)
    layer = keras.layers.TFSMLayer(path, call_endpoint=endpoint, trainable=False)
    inputs = keras.Input(tuple(input_shape), name="image")
    outputs = layer(inputs)
    if isinstance(outputs, dict):
        if output_key is None and len(outputs) == 1:
            output_key = next(iter(outputs))
        if output_key not in outputs:
            raise DataError(
                f"endpoint {endpoint!r} returns {sorted(outputs)}: choose one with output_key",
                file=path,
            )
        outputs = outputs[output_key]
    return keras.Model(inputs, outputs, name="saved_model_backbone")


def _is_saved_model_handle(name) -> bool:
    name = os.fspath(name)
    return "://" in name or os.path.isdir(name)


def _default_endpoint(path: str) -> str:
    proto = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(os.path.join(path, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    graph = proto.meta_graphs[0]
    present = {child.local_name for child in graph.object_graph_def.nodes[0].children}
    present |= set(graph.signature_def)
    for endpoint in SAVED_MODEL_ENDPOINTS:
        if endpoint in present:
            return endpoint
    raise DataError(
        f"none of the endpoints {list(SAVED_MODEL_ENDPOINTS)} is present: pass call_endpoint",
        file=path,
    )


def feature_extractor(
    backbone: str | keras.Model = "InceptionResNetV2",
    weights: str | os.PathLike | None = "imagenet",
    input_shape: Sequence[int] = (224, 224, 3),
) -> keras.Model:
    """A model from scaled images to backbone features, in inference mode, for caching.

    Args:
        backbone: a name for :func:`build_backbone` or a backbone model.
        weights: as in :func:`build_backbone` (ignored for a model).
        input_shape: (height, width, channels) of the images.

    Returns:
        A ``keras.Model`` named "feature_extractor"; for InceptionResNetV2 at 224 its output has
        shape (None, 5, 5, 1536).

    Example:
        >>> extractor = feature_extractor("InceptionResNetV2", weights="imagenet")
        >>> features = extractor.predict(images)          # (N, 5, 5, 1536)
    """
    if not isinstance(backbone, keras.Layer):
        backbone = build_backbone(backbone, weights=weights, input_shape=input_shape)
    inputs = keras.Input(tuple(input_shape), name="image")
    # Inference mode: batch norm uses its moving statistics, so a feature depends on its image
    # only and can be cached. The original ran batch norm on batch statistics (docs/original.md
    # section 5).
    features = backbone(inputs, training=False)
    return keras.Model(inputs, features, name="feature_extractor")


def inference_function(model: keras.Layer):
    """``f(images) -> model(images, training=False)`` as one compiled TensorFlow graph.

    Called eagerly, a Keras model runs its layers one by one from Python: Inception-ResNet-v2
    (about 800 layers) took 3.1 s a batch of 16 at 224 on this project's CPU, against 0.77 s
    compiled. Shapes that differ only in the batch size share one trace.
    """

    def infer(images):
        return model(images, training=False)

    return tf.function(infer, reduce_retracing=True, autograph=False)


def _sublayers(model: keras.Layer):
    for layer in getattr(model, "layers", []):
        yield layer
        yield from _sublayers(layer)


def backbone_weights(weights: str | os.PathLike | None) -> str | os.PathLike | None:
    """Backbone weights as given on the command line: "none" (any case of it) means None."""
    return None if weights in (None, "none", "None") else weights


def backbone_settings(backbone: str, weights: str | None, hub: str | None) -> dict:
    """What identifies a backbone's features: its name and its weights (a file by digest)."""
    if hub:
        digest = None
        if os.path.isdir(hub):
            pb = Path(hub) / "saved_model.pb"
            digest = file_digest(pb) if pb.exists() else None
        return {"backbone": "saved_model", "handle": str(hub), "saved_model_sha256": digest}
    if backbone_weights(weights) is None:
        return {"backbone": backbone, "weights": None}
    if weights == "imagenet":
        return {"backbone": backbone, "weights": "imagenet"}
    if not os.path.exists(weights):
        raise DataError("weights file not found", file=weights)
    return {"backbone": backbone, "weights": os.path.basename(weights),
            "weights_sha256": file_digest(weights)}


def weights_digest(model) -> str:
    """SHA-256 of a model's weight values: equal weights, equal digest, however they were saved;
    what names a backbone given as a model in a cache's or a run's settings."""
    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()
