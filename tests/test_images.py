"""Images as the original saw them (docs/original.md section 5): resized as
``skimage.transform.resize`` did, and the
NUS-WIDE images its preprocessing could not read (grayscale among them) left out and listed."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

tf = pytest.importorskip("tensorflow")
skdata = pytest.importorskip("skimage.data")
sktransform = pytest.importorskip("skimage.transform")
Image = pytest.importorskip("PIL.Image")

from mlml_tf.errors import DataError  # noqa: E402
from mlml_tf.features.checks import non_rgb_images  # noqa: E402
from mlml_tf.features.dataset import image_dataset  # noqa: E402
from mlml_tf.features.extract import build_image_cache, cache_for_data_folder  # noqa: E402
from mlml_tf.features.images import (  # noqa: E402
    IMAGENET_MEAN,
    IMAGENET_STD,
    decode_image,
    resize_image,
)

PHOTOS = ("astronaut", "coffee", "chelsea", "camera")  # camera is grayscale
# (height, width): the paper's input, small ones (strong shrinking), and one enlargement.
SIZES = ((224, 224), (64, 48), (17, 23), (480, 640))


def photo(name: str) -> np.ndarray:
    """A skimage photograph as (height, width, channels) uint8."""
    image = getattr(skdata, name)()
    return image[..., None] if image.ndim == 2 else image


def skimage_resize(image: np.ndarray, size) -> np.ndarray:
    """The original's call, ``resize(image, shape)`` with skimage's defaults, in [0, 1]."""
    return sktransform.resize(image, (*size, image.shape[-1]))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", PHOTOS)
def test_resize_is_skimages_on_real_photographs(name, size):
    # Measured: mean |difference| <= 5e-7, max <= 3e-5 (float32 against skimage's float64).
    image = photo(name)
    expected = skimage_resize(image, size)
    ours = resize_image(image, size).numpy() / 255
    assert ours.shape == expected.shape and ours.dtype == np.float32
    difference = np.abs(ours - expected)
    assert difference.mean() < 1e-6 and difference.max() < 5e-5
    if size != (480, 640):
        # Bilinear without anti-aliasing, the port's old resize: mean 2e-3 to 1e-1 here.
        bilinear = np.abs(resize_image(image, size, "bilinear").numpy() / 255 - expected)
        assert bilinear.mean() > 1e-3 and bilinear.mean() > 1000 * difference.mean()


def test_pipeline_equals_the_originals_normalize_then_resize(tmp_path):
    # The original: image /= 255; image = (image - MEAN) / STD; image = resize(image, SHAPE).
    # Both steps are linear and the resize's weights are positive, so the order does not matter.
    path = tmp_path / "coffee.png"
    Image.fromarray(skdata.coffee()).save(path)  # lossless: the pixels skimage sees
    normalized = (skdata.coffee() / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    original = sktransform.resize(normalized, (224, 224, 3))
    (ours,) = list(image_dataset([path], image_size=(224, 224), batch_size=1).dataset)
    np.testing.assert_allclose(ours[0].numpy(), original, atol=2e-4)

    (old,) = list(image_dataset([path], image_size=(224, 224), resize="bilinear").dataset)
    bilinear = tf.image.resize(skdata.coffee(), (224, 224))
    np.testing.assert_allclose(old[0].numpy(), (bilinear / 255 - IMAGENET_MEAN) / IMAGENET_STD,
                               atol=1e-5)
    with pytest.raises(DataError, match="resize"):
        image_dataset([path], resize="area")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A colour photograph, a grayscale JPEG, a CMYK JPEG and an unreadable file."""
    root = tmp_path_factory.mktemp("modes")
    tf.io.write_file(str(root / "rgb.jpg"), tf.io.encode_jpeg(skdata.chelsea(), quality=90))
    tf.io.write_file(str(root / "gray.jpg"), tf.io.encode_jpeg(skdata.camera()[..., None]))
    Image.fromarray(skdata.coffee()).convert("CMYK").save(root / "cmyk.jpg")
    jpeg = (root / "rgb.jpg").read_bytes()
    (root / "broken.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    return root


def test_images_not_stored_as_rgb_are_named(folder):
    paths = [folder / f"{name}.jpg" for name in ("rgb", "gray", "cmyk")]
    found = non_rgb_images(paths)
    assert [(bad.index, bad.path) for bad in found] == [(1, str(paths[1])), (2, str(paths[2]))]
    assert found[0].reason.startswith("grayscale (Pillow mode 'L'), not RGB")
    assert found[1].reason.startswith("CMYK (Pillow mode 'CMYK'), not RGB")


def test_rgb_only_leaves_out_and_lists_grayscale_and_keeps_it_without(folder):
    paths = [folder / "rgb.jpg", folder / "gray.jpg", folder / "cmyk.jpg"]
    labels = np.eye(3, dtype=np.float32)
    kept = image_dataset(paths, labels, image_size=(32, 32), rgb_only=True)
    assert kept.paths == (str(paths[0]),) and kept.skipped_paths == [str(p) for p in paths[1:]]
    np.testing.assert_array_equal(next(iter(kept.dataset))[1], labels[:1])

    everything = image_dataset(paths, labels, image_size=(32, 32))
    assert len(everything) == 3 and everything.skipped == ()
    images, _ = next(iter(everything.dataset))
    gray = images[1].numpy() * IMAGENET_STD + IMAGENET_MEAN  # back to [0, 1]
    np.testing.assert_allclose(gray[..., 0], gray[..., 1], atol=1e-5)  # channels replicated

    with pytest.raises(DataError, match="none of the 1 images can be read as RGB"):
        image_dataset(paths[1:2], rgb_only=True)


def extractor(batch, training=False):
    return batch[:, ::4, ::4, :]


def pillow_pixels(path) -> np.ndarray:
    """What the original's NUS-WIDE reader (matplotlib, that is Pillow) decoded, as RGB."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


@pytest.mark.parametrize("quality", [75, 95])
@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea", "camera"])
def test_accurate_jpeg_decoding_gives_pillows_pixels(name, quality, tmp_path):
    # benchmarks/bench_jpeg.py: the fast IDCT moves 85 % of the pixels of skimage's
    # photographs, by up to 18 levels; the accurate one none.
    path = tmp_path / f"{name}.jpg"
    Image.fromarray(getattr(skdata, name)()).save(path, quality=quality)
    data = tf.constant(path.read_bytes())
    accurate = decode_image(data, "accurate").numpy()
    np.testing.assert_array_equal(accurate, pillow_pixels(path))
    fast = decode_image(data).numpy()
    assert fast.shape == accurate.shape and 0 < np.abs(fast.astype(int) - accurate).max() < 32
    png = tmp_path / f"{name}.png"
    Image.fromarray(getattr(skdata, name)()).save(png)
    np.testing.assert_array_equal(decode_image(tf.constant(png.read_bytes()), "accurate"),
                                  decode_image(tf.constant(png.read_bytes())))
    with pytest.raises(DataError, match="JPEG IDCT 'float'"):
        decode_image(data, "float")


def test_shipped_jpegs_decode_as_pillow_decodes_them(folder):
    for name in ("rocket.jpg", "hubble_deep_field.jpg"):  # 4:4:4, as their makers saved them
        path = Path(skdata.__file__).parent / name
        np.testing.assert_array_equal(
            decode_image(tf.constant(path.read_bytes()), "accurate"), pillow_pixels(path))
    # Kept with --keep-grayscale: decoded to RGB either way.
    cmyk = tf.constant((folder / "cmyk.jpg").read_bytes())
    assert decode_image(cmyk, "accurate").shape == decode_image(cmyk).shape == (400, 600, 3)


def test_a_cache_decoded_otherwise_is_rebuilt_and_named_so(folder, tmp_path):
    ids, paths = ["rgb"], [str(folder / "rgb.jpg")]
    fast = build_image_cache(tmp_path / "fast", ids, paths, extractor, {}, (16, 16),
                             progress=False)
    accurate = build_image_cache(tmp_path / "fast", ids, paths, extractor, {}, (16, 16),
                                 jpeg_idct="accurate", progress=False)
    assert "jpeg_idct" not in fast.settings, "the default keeps the settings of older caches"
    assert accurate.settings["jpeg_idct"] == "accurate"
    assert not np.array_equal(fast.read(np.arange(1)), accurate.read(np.arange(1)))


def test_cache_lists_what_it_left_out_and_why(folder, tmp_path):
    ids = ["rgb", "gray", "broken"]
    paths = [str(folder / f"{i}.jpg") for i in ids]
    with pytest.raises(DataError, match="broken.jpg"):
        build_image_cache(tmp_path / "strict", ids, paths, extractor, {}, (16, 16),
                          rgb_only=True, progress=False)
    cache = build_image_cache(tmp_path / "nus", ids, paths, extractor, {}, (16, 16),
                              skip_bad=True, rgb_only=True, progress=False)
    assert cache.ids == ["rgb"] and cache.manifest["skipped"] == ["broken", "gray"]
    reasons = cache.manifest["skip_reasons"]
    assert "not RGB" in reasons["gray"] and "not RGB" not in reasons["broken"]
    assert cache.settings["rgb_only"] is True and cache.settings["resize"] == "skimage"

    kept = build_image_cache(tmp_path / "kept", ids, paths, extractor, {}, (16, 16),
                             skip_bad=True, progress=False)
    assert kept.ids == ["rgb", "gray"] and kept.manifest["skipped"] == ["broken"]


def test_a_cache_resized_otherwise_is_rebuilt_not_reused(folder, tmp_path):
    calls = []

    def counting(batch, training=False):
        calls.append(len(batch))
        return extractor(batch)

    ids, paths = ["rgb"], [str(folder / "rgb.jpg")]
    old = build_image_cache(tmp_path, ids, paths, counting, {}, (16, 16), resize="bilinear",
                            progress=False)
    old_features = old.read(np.arange(1))
    new = build_image_cache(tmp_path, ids, paths, counting, {}, (16, 16), progress=False)
    assert calls == [1, 1] and new.settings["resize"] == "skimage"
    assert not np.allclose(new.read(np.arange(1)), old_features)
    build_image_cache(tmp_path, ids, paths, counting, {}, (16, 16), progress=False)
    assert calls == [1, 1]


def data_folder(root, dataset):
    from mlml_tf.files.layout import write_groundtruth

    ids = ["rgb", "gray", "cmyk", "broken"]
    labels = pd.DataFrame(np.eye(4, 2, dtype=np.uint8) + np.eye(4, 2, -2, dtype=np.uint8),
                          index=ids, columns=["a", "b"])
    write_groundtruth(root, labels, source={"dataset": dataset})
    return root


def test_nuswide_folder_leaves_out_what_the_original_could_not_read(folder, tmp_path):
    from mlml_tf.settings import GridOptions

    options = GridOptions(images=folder, backbone="VGG16", weights="none", image_size=32,
                          batch_size=4)
    nus = data_folder(tmp_path / "nus", "nuswide")
    cache = cache_for_data_folder(nus, tmp_path / "features", options)
    assert cache.ids == ["rgb"] and cache.manifest["skipped"] == ["broken", "cmyk", "gray"]
    manifest = json.loads((cache.folder / "cache.json").read_text())
    assert "grayscale" in manifest["skip_reasons"]["gray"]

    kept = cache_for_data_folder(nus, tmp_path / "features",
                                 dataclasses.replace(options, keep_grayscale=True))
    assert kept.ids == ["rgb", "gray", "cmyk"] and kept.manifest["skipped"] == ["broken"]
    assert kept.folder != cache.folder

    coco = data_folder(tmp_path / "coco", "coco")
    with pytest.raises(DataError, match="broken.jpg"):
        cache_for_data_folder(coco, tmp_path / "features", options)
