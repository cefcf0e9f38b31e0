"""The paper's network: a frozen ImageNet backbone and a small trained head (SPEC section 5).

Images (already scaled, see :mod:`mlml_tf.inputs`) go through a frozen backbone, by default
Inception-ResNet-v2 cut at its last conv block (``conv_7b_ac``, 5 x 5 x 1536 at 224 x 224),
then through the head: Flatten -> Dense 2048 -> Dense 1024 -> Dense 256 (sigmoid) -> Dense C
logits. Only the head is trained, so backbone features can be computed once, cached, and the head
built and trained alone on them (:func:`build_head`); :func:`build_model` puts the two together.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

from mlml_tf.errors import DataError

#: Sizes of the hidden layers of the original head (SPEC 5).
HEAD_UNITS: tuple[int, ...] = (2048, 1024, 256)
#: Head initialisation of the original: truncated normal kernels, constant biases (SPEC 5).
HEAD_KERNEL_STDDEV = 0.1
HEAD_BIAS = 0.1
#: Heads: "original" flattens the feature map (38,400 inputs for Inception-ResNet-v2 at 224);
#: "gap" averages it over space first (1,536 inputs), then the same dense stack.
HEADS: tuple[str, ...] = ("original", "gap")
OUTPUTS: tuple[str, ...] = ("logits", "probabilities")
#: The feature layer named in SPEC 5; with ``include_top=False`` it is the application's output.
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
    import tensorflow as tf

    path = os.fspath(handle)
    if "://" in path:
        import tensorflow_hub as hub

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
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

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


def build_head(
    features_shape: Sequence[int | None],
    num_classes: int,
    head: str = "original",
    output: str = "logits",
    seed: int | None = 0,
) -> keras.Model:
    """The trained part of the network, on backbone features (SPEC 5).

    ``"original"``: Flatten -> Dense 2048 -> Dense 1024 -> Dense 256 (sigmoid) -> Dense C.
    ``"gap"``: GlobalAveragePooling2D instead of Flatten (40 times fewer weights in the first
    layer for Inception-ResNet-v2), then the same dense stack. Kernels are drawn from a normal of
    stddev 0.1 truncated at two standard deviations (empirical std ~0.088), biases are 0.1.

    Args:
        features_shape: shape of one feature map without the batch axis, e.g. (5, 5, 1536).
        num_classes: C, the number of labels.
        head: ``"original"`` or ``"gap"``.
        output: ``"logits"`` (for losses with ``from_logits=True``) or ``"probabilities"``
            (a final sigmoid, as the original's loss saw them).
        seed: seed of the initialisers; the same seed gives identical weights, ``None`` draws
            from Keras' global generator.

    Returns:
        A ``keras.Model`` named "head" from features to C outputs.

    Example:
        >>> head = build_head((5, 5, 1536), num_classes=80)
        >>> [layer.units for layer in head.layers if hasattr(layer, "units")]
        [2048, 1024, 256, 80]
    """
    inputs, x = _head_input(features_shape, num_classes, head, output)
    # One seed per layer: a Keras initialiser with a fixed seed repeats the same values.
    for i, units in enumerate((*HEAD_UNITS, int(num_classes))):
        last = i == len(HEAD_UNITS)
        x = keras.layers.Dense(
            units,
            activation=None if last else "sigmoid",
            kernel_initializer=keras.initializers.TruncatedNormal(
                stddev=HEAD_KERNEL_STDDEV, seed=None if seed is None else seed + i
            ),
            bias_initializer=keras.initializers.Constant(HEAD_BIAS),
            name="logits" if last else f"dense_{units}",
        )(x)
    if output == "probabilities":
        x = keras.layers.Activation("sigmoid", name="probabilities")(x)
    return keras.Model(inputs, x, name="head")


@keras.saving.register_keras_serializable(package="mlml_tf")
class SideBySideHeads(keras.layers.Layer):
    """The dense stack of :func:`build_head`, ``n_heads`` times side by side in one layer.

    On flattened (or pooled) features of shape (B, D) it returns logits of shape (B, H, C). The
    first layer of every head reads the same input, so the H first layers are one wide matrix
    product, (B, D) x (D, H x 2048); each later layer is one batched product of H independent
    matrices. Head h computes exactly what :func:`build_head` computes with
    ``head_weights(h)``: the heads share no weight, and the gradient of a sum of per-head losses
    with respect to head h's weights is that of head h's loss alone.

    Args:
        units: sizes of the layers of one head, the last one the number of classes.
        n_heads: H, the number of heads.
        activation: of every layer but the last.
    """

    def __init__(self, units: Sequence[int], n_heads: int, activation: str = "sigmoid",
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.units = tuple(int(u) for u in units)
        self.n_heads = int(n_heads)
        self.activation = keras.activations.get(activation)

    def build(self, input_shape) -> None:
        first, *rest = self.units
        h = self.n_heads
        # Zeros: build_heads copies each head's start into place.
        self.kernels = [self.add_weight((int(input_shape[-1]), h * first), "zeros",
                                        name="kernel_0")]
        self.biases = [self.add_weight((h * first,), "zeros", name="bias_0")]
        for i, (fan_in, units) in enumerate(zip(self.units, rest, strict=False), start=1):
            self.kernels.append(self.add_weight((h, fan_in, units), "zeros", name=f"kernel_{i}"))
            self.biases.append(self.add_weight((h, 1, units), "zeros", name=f"bias_{i}"))

    def call(self, x):
        x = ops.matmul(x, self.kernels[0]) + self.biases[0]
        x = self.activation(ops.reshape(x, (-1, self.n_heads, self.units[0])))
        x = ops.transpose(x, (1, 0, 2))  # (H, B, units): one batched product per layer
        last = len(self.kernels) - 1
        for i in range(1, last + 1):
            x = ops.matmul(x, self.kernels[i]) + self.biases[i]
            if i < last:
                x = self.activation(x)
        return ops.transpose(x, (1, 0, 2))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n_heads, self.units[-1])

    def get_config(self) -> dict:
        return {**super().get_config(), "units": list(self.units), "n_heads": self.n_heads,
                "activation": keras.activations.serialize(self.activation)}


def _head_input(features_shape, num_classes: int, head: str, output: str):
    """(features input, the flattened or pooled features) of a head, its settings checked."""
    if head not in HEADS:
        raise DataError(f"unknown head {head!r}: choose one of {list(HEADS)}")
    if output not in OUTPUTS:
        raise DataError(f"unknown output {output!r}: choose one of {list(OUTPUTS)}")
    if int(num_classes) < 1:
        raise DataError(f"num_classes must be at least 1, got {num_classes}")
    features_shape = tuple(features_shape)
    if head == "gap" and len(features_shape) != 3:
        raise DataError(f"head 'gap' needs a (height, width, channels) map, got {features_shape}")
    inputs = keras.Input(features_shape, name="features")
    if head == "original":
        return inputs, keras.layers.Flatten(name="flatten")(inputs)
    return inputs, keras.layers.GlobalAveragePooling2D(name="global_average_pooling")(inputs)


def build_heads(
    features_shape: Sequence[int | None],
    num_classes: int,
    n_heads: int,
    head: str | keras.Model = "original",
    output: str = "logits",
    seed: int | None = 0,
    dtype=None,
) -> keras.Model:
    """``n_heads`` heads of :func:`build_head`, side by side in one model: features -> (B, H, C).

    Every head starts from the weights that ``build_head(features_shape, num_classes, head,
    output, seed)`` draws, or from those of ``head`` if it is a :func:`build_head` model (whose
    layout and output it then takes), so head h trained on run h's labels and weights follows
    the run trained alone (see :class:`SideBySideHeads`). :func:`head_weights` takes one head
    out, in :func:`build_head`'s layout. ``dtype``: a Keras dtype policy for the heads' layers,
    e.g. ``"mixed_float16"`` (float16 arithmetic on float32 variables); the output is float32.

    Returns:
        A ``keras.Model`` named "heads" with output shape (None, n_heads, num_classes).

    Example:
        >>> heads = build_heads((5, 5, 1536), num_classes=80, n_heads=12)
        >>> heads.output.shape
        (None, 12, 80)
    """
    if int(n_heads) < 1:
        raise DataError(f"n_heads must be at least 1, got {n_heads}")
    if isinstance(head, keras.Layer):
        single = head
        names = {layer.name for layer in single.layers}
        head = "original" if "flatten" in names else "gap"
        output = "probabilities" if "probabilities" in names else "logits"
    else:
        single = build_head(features_shape, num_classes, head, output, seed)
    inputs, x = _head_input(features_shape, num_classes, head, output)
    stack = SideBySideHeads((*HEAD_UNITS, int(num_classes)), n_heads, name="side_by_side",
                            dtype=dtype)
    x = stack(x)
    # The loss and the output in float32, whatever the heads compute in.
    x = keras.layers.Activation("sigmoid" if output == "probabilities" else "linear",
                                name="probabilities" if output == "probabilities" else "output",
                                dtype="float32")(x)
    model = keras.Model(inputs, x, name="heads")
    dense = [layer for layer in single.layers if isinstance(layer, keras.layers.Dense)]
    stack.kernels[0].assign(ops.tile(dense[0].kernel, (1, n_heads)))
    stack.biases[0].assign(ops.tile(dense[0].bias, (n_heads,)))
    for layer, kernel, bias in zip(dense[1:], stack.kernels[1:], stack.biases[1:], strict=True):
        kernel.assign(ops.repeat(layer.kernel[None], n_heads, axis=0))
        bias.assign(ops.repeat(layer.bias[None, None], n_heads, axis=0))
    return model


def head_parameters(features_shape: Sequence[int], num_classes: int,
                    head: str = "original") -> int:
    """Weights and biases of one head of :func:`build_head`: 81 M for the paper's head on
    Inception-ResNet-v2's 5 x 5 x 1536 features and 80 classes."""
    inputs = int(np.prod(features_shape)) if head == "original" else int(features_shape[-1])
    sizes = (inputs, *HEAD_UNITS, int(num_classes))
    return sum(a * b + b for a, b in zip(sizes, sizes[1:], strict=False))


def head_weights(heads: keras.Model, index: int) -> list[np.ndarray]:
    """The weights of head ``index`` of a :func:`build_heads` model, as :func:`build_head`'s
    ``set_weights`` takes them."""
    stack = heads.get_layer("side_by_side")
    cut = slice(index * stack.units[0], (index + 1) * stack.units[0])
    out = [stack.kernels[0][:, cut], stack.biases[0][cut]]
    for kernel, bias in zip(stack.kernels[1:], stack.biases[1:], strict=True):
        out += [kernel[index], bias[index, 0]]
    return [ops.convert_to_numpy(w) for w in out]


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
    # only and can be cached. The original ran batch norm on batch statistics (SPEC 5).
    features = backbone(inputs, training=False)
    return keras.Model(inputs, features, name="feature_extractor")


def inference_function(model: keras.Layer):
    """``f(images) -> model(images, training=False)`` as one compiled TensorFlow graph.

    Called eagerly, a Keras model runs its layers one by one from Python: Inception-ResNet-v2
    (about 800 layers) took 3.1 s a batch of 16 at 224 on this project's CPU, against 0.77 s
    compiled. Shapes that differ only in the batch size share one trace.
    """
    import tensorflow as tf

    def infer(images):
        return model(images, training=False)

    return tf.function(infer, reduce_retracing=True, autograph=False)


def build_model(
    num_classes: int,
    backbone: str | keras.Model = "InceptionResNetV2",
    weights: str | os.PathLike | None = "imagenet",
    head: str | keras.Model = "original",
    input_shape: Sequence[int] = (224, 224, 3),
    output: str = "logits",
    seed: int | None = 0,
    faithful_batch_norm: bool = False,
) -> keras.Model:
    """The whole network: scaled images -> frozen backbone -> head (SPEC 5).

    Args:
        num_classes: C, the number of labels.
        backbone: a ``keras.applications`` name, a TF Hub handle / SavedModel directory, or a
            backbone model (e.g. from :func:`build_backbone` or :func:`saved_model_backbone`).
        weights: backbone weights, as in :func:`build_backbone`.
        head: ``"original"``, ``"gap"``, or a head model from :func:`build_head` (e.g. one
            trained on cached features), used as it is.
        input_shape: (height, width, channels) of the images.
        output: ``"logits"`` or ``"probabilities"`` (ignored when ``head`` is a model).
        seed: seed of the head's initialisers.
        faithful_batch_norm: ``True`` runs the backbone's batch norm on batch statistics while
            training, as the original did; features then depend on the batch and cannot be
            cached. Gamma, beta and the moving statistics stay frozen either way.

    Returns:
        A ``keras.Model`` whose trainable weights are the head's only.

    Example:
        >>> model = build_model(80, weights="imagenet")
        >>> model.compile(optimizer="adadelta", loss=WeightedBinaryCrossentropy(from_logits=True))
        >>> model.fit(images_labels_weights, epochs=20)
    """
    if not isinstance(backbone, keras.Layer):
        backbone = build_backbone(backbone, weights=weights, input_shape=input_shape)
    inputs = keras.Input(tuple(input_shape), name="image")
    if faithful_batch_norm:
        _use_batch_statistics(backbone)
        features = backbone(inputs)
    else:
        # Inference mode: batch norm uses moving statistics, as in feature caching (SPEC 5).
        features = backbone(inputs, training=False)
    if isinstance(head, keras.Layer):
        head_model = head
    else:
        head_model = build_head(features.shape[1:], num_classes, head, output, seed)
    return keras.Model(inputs, head_model(features), name="mlml_model")


def _use_batch_statistics(backbone: keras.Model) -> None:
    # Keras 3 uses batch statistics only in a trainable BatchNormalization layer; its gamma and
    # beta are then frozen one by one, and momentum 1 keeps the moving statistics unchanged.
    for layer in _sublayers(backbone):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = True
            layer.momentum = 1.0
            for variable in layer.trainable_variables:
                variable.trainable = False


def _sublayers(model: keras.Layer):
    for layer in getattr(model, "layers", []):
        yield layer
        yield from _sublayers(layer)
