"""The network of docs/original.md section 5: frozen backbone in inference mode, the original head.
"""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from mlml_tf.errors import DataError  # noqa: E402
from mlml_tf.features.backbones import build_backbone, feature_extractor, saved_model_backbone  # noqa: E402
from mlml_tf.training.heads import build_head, build_heads, build_model, head_weights  # noqa: E402

SMALL = {"name": "MobileNetV2", "input_shape": (32, 32, 3), "alpha": 0.35}


def images(n, size=224, seed=0):
    return np.random.default_rng(seed).normal(size=(n, size, size, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def inception():
    """Inception-ResNet-v2 at 224 with random weights (ImageNet weights need a download)."""
    backbone = build_backbone("InceptionResNetV2", weights=None)
    return backbone, build_model(80, backbone=backbone)


def test_inception_features_are_conv_7b(inception):
    backbone, _ = inception
    assert tuple(backbone.output.shape) == (None, 5, 5, 1536)
    assert backbone.layers[-1].name == "conv_7b_ac"
    assert feature_extractor(backbone).output.shape == (None, 5, 5, 1536)


def test_original_head_layers_and_initialisation(inception):
    _, model = inception
    head = model.get_layer("head")
    dense = [layer for layer in head.layers if isinstance(layer, keras.layers.Dense)]
    assert head.get_layer("flatten").output.shape == (None, 38400)
    assert [layer.units for layer in dense] == [2048, 1024, 256, 80]
    assert [layer.activation.__name__ for layer in dense] == ["sigmoid"] * 3 + ["linear"]
    kernel = dense[0].kernel.numpy()
    assert kernel.shape == (38400, 2048)
    # A normal of stddev 0.1 truncated at 2 standard deviations has std 0.1 * 0.8796.
    assert kernel.std() == pytest.approx(0.08796, abs=5e-4)
    assert abs(kernel.mean()) < 1e-3
    assert np.abs(kernel).max() <= 0.2 + 1e-6
    for layer in dense:
        np.testing.assert_array_equal(layer.bias.numpy(), np.float32(0.1))


def test_only_the_head_is_trainable(inception):
    backbone, model = inception
    assert not backbone.trainable and backbone.trainable_weights == []
    head_weights = {id(w) for w in model.get_layer("head").trainable_weights}
    assert {id(w) for w in model.trainable_weights} == head_weights
    assert len(head_weights) == 8


def test_backbone_runs_in_inference_mode(inception):
    backbone, model = inception
    x = images(3)
    extractor = feature_extractor(backbone)
    together = extractor(x, training=True).numpy()
    alone = extractor(x[:1], training=True).numpy()
    # Moving statistics, not batch statistics: a feature depends on its own image only.
    np.testing.assert_allclose(together[:1], alone, atol=1e-4)
    np.testing.assert_allclose(
        model(x, training=True).numpy()[:1], model(x[:1], training=True).numpy(), atol=1e-4
    )


def test_faithful_batch_norm_uses_batch_statistics_while_training():
    keras.utils.set_random_seed(0)
    backbone = build_backbone(weights=None, **SMALL)
    model = build_model(4, backbone=backbone, input_shape=(32, 32, 3), faithful_batch_norm=True)
    x = images(4, size=32)
    x[1:] *= 5.0  # a different batch gives different batch statistics
    in_four = model(x, training=True).numpy()[:1]
    in_two = model(x[:2], training=True).numpy()[:1]
    assert np.abs(in_four - in_two).max() > 1e-3
    # Gamma, beta and moving statistics stay frozen; only the head trains.
    assert len(model.trainable_weights) == 8
    moving = [w.numpy().copy() for w in backbone.non_trainable_weights]
    model(x * 3.0, training=True)
    for before, after in zip(moving, backbone.non_trainable_weights, strict=True):
        np.testing.assert_array_equal(before, after.numpy())
    np.testing.assert_allclose(
        model.predict(x, verbose=0)[:1], model.predict(x[:1], verbose=0), atol=1e-5
    )


def test_same_seed_same_head():
    first = build_head((2, 2, 8), num_classes=3, seed=7)
    again = build_head((2, 2, 8), num_classes=3, seed=7)
    other = build_head((2, 2, 8), num_classes=3, seed=8)
    for a, b in zip(first.get_weights(), again.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first.get_weights()[0], other.get_weights()[0])
    kernels = [layer.kernel.numpy() for layer in first.layers if hasattr(layer, "kernel")]
    assert not np.array_equal(kernels[1][:256, :256], kernels[2][:256, :256])


def test_gap_head_and_probability_output():
    head = build_head((5, 5, 1536), num_classes=10, head="gap", output="probabilities")
    assert head.get_layer("dense_2048").kernel.shape == (1536, 2048)
    out = head(np.random.default_rng(0).normal(size=(2, 5, 5, 1536)).astype(np.float32))
    assert out.shape == (2, 10) and np.all((out > 0) & (out < 1))
    with pytest.raises(DataError, match="head"):
        build_head((5, 5, 1536), 10, head="linear")
    with pytest.raises(DataError, match="gap"):
        build_head((1536,), 10, head="gap")


def test_head_trained_on_features_plugs_into_the_model():
    keras.utils.set_random_seed(0)
    backbone = build_backbone(weights=None, **SMALL)
    extractor = feature_extractor(backbone, input_shape=(32, 32, 3))
    x = images(6, size=32)
    features = extractor.predict(x, verbose=0)
    head = build_head(features.shape[1:], num_classes=3, head="gap", seed=1)
    head.compile(optimizer="adadelta", loss="mse")
    head.fit(features, np.ones((6, 3)), epochs=1, verbose=0)
    model = build_model(3, backbone=backbone, head=head, input_shape=(32, 32, 3))
    np.testing.assert_allclose(
        model.predict(x, verbose=0), head.predict(features, verbose=0), atol=1e-5
    )


def test_weights_files_reload_identically(tmp_path):
    keras.utils.set_random_seed(1)
    backbone = build_backbone(weights=None, **SMALL)
    model = build_model(3, backbone=backbone, input_shape=(32, 32, 3), head="gap", seed=1)
    backbone_file = tmp_path / "backbone.weights.h5"
    model_file = tmp_path / "model.weights.h5"
    backbone.save_weights(backbone_file)
    model.save_weights(model_file)
    x = images(2, size=32)

    keras.utils.set_random_seed(2)
    reloaded_backbone = build_backbone(weights=backbone_file, **SMALL)
    np.testing.assert_array_equal(reloaded_backbone.predict(x, verbose=0), backbone.predict(x))
    assert not reloaded_backbone.trainable

    other = build_model(
        3,
        backbone=build_backbone(weights=None, **SMALL),
        input_shape=(32, 32, 3),
        head="gap",
        seed=2,
    )
    assert not np.allclose(other.predict(x, verbose=0), model.predict(x, verbose=0))
    other.load_weights(model_file)
    np.testing.assert_array_equal(other.predict(x, verbose=0), model.predict(x, verbose=0))


def test_bad_backbone_arguments(tmp_path):
    missing = tmp_path / "nowhere.weights.h5"
    with pytest.raises(DataError, match="nowhere.weights.h5"):
        build_backbone("MobileNetV2", weights=missing)
    with pytest.raises(DataError, match="unknown backbone 'InceptionV9'"):
        build_backbone("InceptionV9")
    with pytest.raises(DataError, match="no TensorFlow SavedModel"):
        saved_model_backbone(tmp_path)


class HubStyleModule(tf.Module):
    """What a TF Hub image model looks like: variables and a ``__call__`` tf.function."""

    def __init__(self):
        super().__init__()
        self.kernel = tf.Variable(np.random.default_rng(0).normal(size=(3, 4)), dtype=tf.float32)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def __call__(self, images):
        return tf.nn.relu(tf.einsum("bhwc,cd->bhwd", images, self.kernel))


def test_saved_model_backbone_from_keras_export(tmp_path):
    keras.utils.set_random_seed(0)
    source = keras.Sequential(
        [keras.Input((16, 16, 3)), keras.layers.Conv2D(6, 3), keras.layers.BatchNormalization()]
    )
    source.export(tmp_path / "exported", verbose=False)
    model = build_model(
        2, backbone=str(tmp_path / "exported"), head="gap", input_shape=(16, 16, 3), seed=0
    )
    assert {id(w) for w in model.trainable_weights} == {
        id(w) for w in model.get_layer("head").trainable_weights
    }
    x = images(3, size=16)
    head = model.get_layer("head")
    np.testing.assert_allclose(
        model.predict(x, verbose=0), head.predict(source.predict(x, verbose=0)), atol=1e-5
    )
    before = [w.numpy().copy() for w in model.get_layer("saved_model_backbone").weights]
    model.compile(optimizer="adadelta", loss="mse")
    model.fit(x, np.zeros((3, 2)), epochs=1, verbose=0)
    for old, new in zip(before, model.get_layer("saved_model_backbone").weights, strict=True):
        np.testing.assert_array_equal(old, new.numpy())


def test_saved_model_backbone_from_hub_style_module(tmp_path):
    module = HubStyleModule()
    tf.saved_model.save(module, str(tmp_path / "hub"))
    backbone = saved_model_backbone(tmp_path / "hub", input_shape=(8, 8, 3))
    x = images(2, size=8)
    np.testing.assert_allclose(backbone.predict(x, verbose=0), module(x).numpy(), atol=1e-5)
    model = build_model(5, backbone=backbone, input_shape=(8, 8, 3))
    assert model.output.shape == (None, 5)
    assert model.get_layer("head").get_layer("flatten").output.shape == (None, 8 * 8 * 4)


@pytest.mark.parametrize("head, output", [("original", "logits"), ("gap", "probabilities")])
def test_heads_side_by_side_are_the_head_of_each_run(head, output):
    x = np.random.default_rng(0).normal(size=(32, 3, 3, 8)).astype(np.float32)
    heads = build_heads((3, 3, 8), num_classes=5, n_heads=4, head=head, output=output, seed=3)
    single = build_head((3, 3, 8), num_classes=5, head=head, output=output, seed=3)
    assert heads.output.shape == (None, 4, 5)
    inputs = x[0].size if head == "original" else 8
    assert heads.get_layer("side_by_side").kernels[0].shape == (inputs, 4 * 2048)
    for h in range(4):
        for a, b in zip(head_weights(heads, h), single.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)  # every head starts as build_head(seed)
    # Heads that have moved apart: each slice of the output is its own head's.
    stack = heads.get_layer("side_by_side")
    rng = np.random.default_rng(1)
    for variable in stack.weights:
        variable.assign(variable.numpy() + rng.normal(0, 0.05, variable.shape).astype("float32"))
    out = heads(x).numpy()
    for h in range(4):
        single.set_weights(head_weights(heads, h))
        np.testing.assert_allclose(out[:, h], single(x).numpy(), rtol=1e-5, atol=1e-6)
        # The same head alone, as a run trained one by one has it: the very same numbers.
        alone = build_heads((3, 3, 8), num_classes=5, n_heads=1, head=head, output=output)
        alone.get_layer("side_by_side").set_weights(
            [w if i < 2 else w[None] if i % 2 == 0 else w[None, None]
             for i, w in enumerate(head_weights(heads, h))])
        np.testing.assert_array_equal(alone(x).numpy()[:, 0], out[:, h])


def test_heads_in_mixed_precision_compute_in_float16_on_float32_variables():
    heads = build_heads((3, 3, 8), num_classes=5, n_heads=2, dtype="mixed_float16")
    stack = heads.get_layer("side_by_side")
    assert stack.compute_dtype == "float16"
    assert {v.dtype for v in stack.weights} == {"float32"}
    out = heads(np.ones((2, 3, 3, 8), np.float32))
    assert out.dtype == "float32"
