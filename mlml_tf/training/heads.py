"""The paper's head and network.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

from mlml_tf.errors import DataError
from mlml_tf.features.backbones import _sublayers, build_backbone
from mlml_tf.settings import HEADS

#: Sizes of the hidden layers of the original head (docs/original.md section 5).
HEAD_UNITS: tuple[int, ...] = (2048, 1024, 256)


#: Head initialisation of the original: truncated normal kernels, constant biases (docs/original.md
#: section 5).
HEAD_KERNEL_STDDEV = 0.1


HEAD_BIAS = 0.1




OUTPUTS: tuple[str, ...] = ("logits", "probabilities")


def build_head(
    features_shape: Sequence[int | None],
    num_classes: int,
    head: str = "original",
    output: str = "logits",
    seed: int | None = 0,
) -> keras.Model:
    """The trained part of the network, on backbone features (docs/original.md section 5).

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
    """The whole network: scaled images -> frozen backbone -> head (docs/original.md section 5).

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
        # Inference mode: batch norm uses moving statistics, as in feature caching (docs/original.md
        # section 5).
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
