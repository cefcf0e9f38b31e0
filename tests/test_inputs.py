"""The image pipeline: the original's scaling, shapes, and bad files named before training."""

import logging

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
skdata = pytest.importorskip("skimage.data")
Image = pytest.importorskip("PIL.Image")

from mlml_tf.errors import DataError  # noqa: E402
from mlml_tf.features.checks import check_images  # noqa: E402
from mlml_tf.features.dataset import image_dataset  # noqa: E402
from mlml_tf.features.images import IMAGENET_MEAN, IMAGENET_STD, scale_images  # noqa: E402


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Real photographs as JPEG and PNG, plus a truncated JPEG and PNG and a non-image."""
    root = tmp_path_factory.mktemp("images")
    for name in ("astronaut", "coffee", "chelsea"):
        image = Image.fromarray(getattr(skdata, name)())
        image.save(root / f"{name}.jpg", quality=90)
        image.save(root / f"{name}.png")
    Image.fromarray(skdata.camera()).save(root / "camera.png")  # grayscale
    jpeg = (root / "coffee.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    png = (root / "chelsea.png").read_bytes()
    (root / "truncated.png").write_bytes(png[: len(png) // 2])
    (root / "trailing.jpg").write_bytes(jpeg + b"\x00" * 3000)  # valid: data after the end
    (root / "notes.jpg").write_text("not an image")
    return root


def test_imagenet_scaling_is_the_originals():
    pixels = np.array([[[0, 128, 255], [255, 0, 64]]], np.uint8)
    expected = (pixels / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(scale_images(pixels).numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(
        scale_images(np.full((1, 1, 3), 255, np.uint8)).numpy(),
        [[[2.248908, 2.428571, 2.64]]],
        rtol=1e-6,
    )


def test_inception_scaling_maps_to_minus_one_one():
    pixels = np.array([0, 127.5, 255] * 2, np.float32).reshape(1, 2, 3)
    np.testing.assert_allclose(
        scale_images(pixels, "inception").numpy(), [[[-1, 0, 1], [-1, 0, 1]]], atol=1e-7
    )
    with pytest.raises(DataError, match="scaling"):
        scale_images(pixels, "caffe")


def test_png_at_native_size_is_exact(folder):
    astronaut = skdata.astronaut()
    images = image_dataset([folder / "astronaut.png"], image_size=(512, 512), batch_size=1)
    (batch,) = list(images.dataset)
    assert batch.shape == (1, 512, 512, 3) and batch.dtype == tf.float32
    np.testing.assert_allclose(batch[0].numpy(), scale_images(astronaut).numpy(), atol=1e-5)


def test_jpeg_close_to_the_photograph(folder):
    images = image_dataset([folder / "chelsea.jpg"], image_size=(300, 451), scaling="inception")
    (batch,) = list(images.dataset)
    original = skdata.chelsea() / 127.5 - 1
    assert np.abs(batch[0].numpy() - original).mean() < 0.05  # JPEG quality 90


def test_images_labels_weights_batches(folder):
    paths = [
        folder / f"{n}.{e}" for n in ("astronaut", "coffee", "chelsea") for e in ("jpg", "png")
    ]
    paths.append(folder / "camera.png")
    labels = np.eye(7, 4, dtype=np.float32)
    weights = np.arange(28, dtype=np.float32).reshape(7, 4)
    result = image_dataset(paths, labels, weights, image_size=(64, 48), batch_size=3)
    batches = list(result.dataset)
    assert [tuple(x.shape) for x, _, _ in batches] == [(3, 64, 48, 3)] * 2 + [(1, 64, 48, 3)]
    np.testing.assert_array_equal(np.concatenate([y for _, y, _ in batches]), labels)
    np.testing.assert_array_equal(np.concatenate([w for _, _, w in batches]), weights)
    assert len(result) == 7 and result.skipped == ()
    np.testing.assert_array_equal(result.indices, np.arange(7))

    with_labels = list(image_dataset(paths, labels, image_size=(8, 8), batch_size=7).dataset)
    assert len(with_labels) == 1 and len(with_labels[0]) == 2
    only_images = next(iter(image_dataset(paths, image_size=(8, 8)).dataset))
    assert tf.is_tensor(only_images) and only_images.shape == (7, 8, 8, 3)


def test_shuffling_is_seeded(folder):
    paths = [folder / f"{n}.png" for n in ("astronaut", "coffee", "chelsea", "camera")] * 3
    labels = np.arange(12, dtype=np.float32)[:, None]

    def order(seed):
        data = image_dataset(
            paths, labels, image_size=(4, 4), batch_size=12, shuffle_buffer=12, seed=seed
        )
        return next(iter(data.dataset))[1].numpy().ravel().tolist()

    first = order(3)
    assert first == order(3)
    assert sorted(first) == list(range(12))
    assert first != list(range(12))


def test_bad_image_stops_with_its_name(folder):
    paths = [folder / "astronaut.jpg", folder / "truncated.jpg", folder / "coffee.png"]
    with pytest.raises(DataError, match="truncated.jpg") as error:
        image_dataset(paths, image_size=(8, 8))
    assert error.value.file == str(folder / "truncated.jpg")
    assert "image 2 of 3" in str(error.value)

    gone = folder / "gone.jpg"
    with pytest.raises(DataError, match="file not found") as error:
        image_dataset([folder / "coffee.jpg", gone], image_size=(8, 8))
    assert error.value.file == str(gone)


def test_every_kind_of_bad_file_is_found(folder):
    paths = [
        folder / "truncated.jpg",
        folder / "astronaut.png",
        folder / "truncated.png",
        folder / "missing.png",
        folder / "notes.jpg",
        folder / "trailing.jpg",
        folder / "camera.png",
    ]
    for check in ("quick", "full"):
        bad = check_images(paths, check)
        assert [b.index for b in bad] == [0, 2, 3, 4]
        assert bad[1].path == str(folder / "truncated.png")
        assert bad[2].reason == "file not found"
        assert "decode" in bad[3].reason


def test_skip_bad_drops_counts_and_reports(folder, caplog):
    paths = [
        folder / "astronaut.jpg",
        folder / "truncated.jpg",
        folder / "coffee.jpg",
        folder / "missing.jpg",
        folder / "chelsea.png",
    ]
    labels = np.arange(10, dtype=np.float32).reshape(5, 2)
    with caplog.at_level(logging.WARNING, logger="mlml_tf.inputs"):
        result = image_dataset(paths, labels, image_size=(16, 16), batch_size=8, skip_bad=True)
    assert result.skipped_paths == [str(folder / "truncated.jpg"), str(folder / "missing.jpg")]
    assert [bad.index for bad in result.skipped] == [1, 3]
    np.testing.assert_array_equal(result.indices, [0, 2, 4])
    assert len(result) == 3
    (x, y) = next(iter(result.dataset))
    assert x.shape == (3, 16, 16, 3)
    np.testing.assert_array_equal(y.numpy(), labels[[0, 2, 4]])
    assert "skipped 2 of 5 images" in caplog.text

    with pytest.raises(DataError, match="none of the 2 images"):
        image_dataset(paths[1:4:2], skip_bad=True)


def test_rows_must_match_the_images(folder):
    paths = [folder / "astronaut.jpg", folder / "coffee.jpg"]
    with pytest.raises(DataError, match=r"labels must have shape \(2, classes\)"):
        image_dataset(paths, np.zeros((3, 4)))
    with pytest.raises(DataError, match="do not match labels"):
        image_dataset(paths, np.zeros((2, 4)), np.ones((2, 5)))
    with pytest.raises(DataError, match="without labels"):
        image_dataset(paths, weights=np.ones((2, 4)))


