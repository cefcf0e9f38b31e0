"""JPEG decoders: TensorFlow's, as the port decodes, against Pillow's and OpenCV's on photographs.

The original decoded COCO with OpenCV (through MXNet) and NUS-WIDE with Pillow (through
matplotlib), docs/original.md section 5. Here each test JPEG is decoded by Pillow, by OpenCV
when ``cv2`` is installed, and by :func:`mlml_tf.features.images.decode_image` with
``jpeg_idct="fast"`` (TensorFlow's default, the port's default) and ``"accurate"``
(``--jpeg-idct accurate``). For each TensorFlow decoding the pixels are compared with Pillow's,
as decoded (uint8 levels) and after the port's pipeline to the backbone's input (skimage's
resize to 224 x 224, the ImageNet scaling): worst and mean absolute difference, and the share of
pixels where any channel differs. Then the time of each decoding alone and of the whole
pipeline (decode, resize, scale) in a ``tf.data`` map.

Test JPEGs: the photographs that scikit-image ships as JPEG, and its PNG photographs encoded by
Pillow at quality 75 and 95 (4:2:0 chroma) and 95 (4:4:4).

    python benchmarks/bench_jpeg.py [--repeat 15]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import skimage
import tensorflow as tf
from PIL import Image

from mlml_tf.features.images import decode_image, load_image, resize_image, scale_images

DATA = Path(skimage.__file__).parent / "data"
SHIPPED = ("rocket.jpg", "retina.jpg", "hubble_deep_field.jpg")
PNGS = ("astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png")
ENCODINGS = ((75, "4:2:0"), (95, "4:2:0"), (95, "4:4:4"))
IDCTS = ("fast", "accurate")


def test_jpegs(folder: Path) -> list[Path]:
    """The shipped JPEGs, and the PNG photographs encoded by Pillow."""
    paths = [DATA / name for name in SHIPPED]
    for name in PNGS:
        image = Image.open(DATA / name).convert("RGB")
        for quality, chroma in ENCODINGS:
            path = folder / f"{Path(name).stem}_q{quality}_{chroma.replace(':', '')}.jpg"
            image.save(path, "JPEG", quality=quality, subsampling=chroma)
            paths.append(path)
    return paths


def pillow(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def opencv(path: Path) -> np.ndarray | None:
    try:
        import cv2
    except ImportError:
        return None
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def pipeline(pixels: np.ndarray) -> np.ndarray:
    """The port's input to the backbone from decoded pixels."""
    return scale_images(resize_image(tf.constant(pixels), (224, 224), "skimage")).numpy()


def compare(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Worst and mean absolute difference, and the share of pixels with a channel differing."""
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return float(d.max()), float(d.mean()), float(np.any(d > 0, axis=-1).mean())


def timed(function, repeat: int) -> float:
    function()
    start = time.perf_counter()
    for _ in range(repeat):
        function()
    return (time.perf_counter() - start) / repeat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15, help="timed passes over the images")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_jpeg_") as tmp:
        paths = test_jpegs(Path(tmp))
        blobs = [path.read_bytes() for path in paths]
        print(f"{'image':34} {'size':>11}  {'IDCT':8} {'decoded: max':>12} {'mean':>6} "
              f"{'share':>6}   {'input: max':>10} {'mean':>7} {'share':>6}   opencv=pillow")
        totals = {idct: [] for idct in IDCTS}
        for path, blob in zip(paths, blobs, strict=True):
            reference = pillow(path)
            cv = opencv(path)
            same_cv = "-" if cv is None else str(np.array_equal(cv, reference))
            scaled = pipeline(reference)
            for idct in IDCTS:
                pixels = decode_image(tf.constant(blob), idct).numpy()
                raw, net = compare(pixels, reference), compare(pipeline(pixels), scaled)
                totals[idct].append((*raw, *net))
                size = f"{reference.shape[1]} x {reference.shape[0]}"
                print(f"{path.name:34} {size:>11}  {idct:8} {raw[0]:12.0f} {raw[1]:6.3f} "
                      f"{raw[2]:6.3f}   {net[0]:10.4f} {net[1]:7.5f} {net[2]:6.3f}   {same_cv}")
        print()
        for idct in IDCTS:
            t = np.array(totals[idct])
            print(f"{idct:8} against Pillow over {len(paths)} images: decoded worst "
                  f"{t[:, 0].max():.0f} levels, mean {t[:, 1].mean():.3f}, share of pixels "
                  f"{t[:, 2].mean():.3f}; backbone input worst {t[:, 3].max():.4f}, mean "
                  f"{t[:, 4].mean():.5f} (one level is 1 / (255 std) = 0.0171-0.0175)")
        print()
        tensors = [tf.constant(blob) for blob in blobs]
        pixels = sum(pillow(path).shape[0] * pillow(path).shape[1] for path in paths)
        decoders, pipelines = {}, {}
        for idct in IDCTS:
            decode = tf.function(lambda data, idct=idct: decode_image(data, idct))
            decoders[idct] = lambda decode=decode: [decode(t) for t in tensors]
            dataset = (tf.data.Dataset.from_tensor_slices([os.fspath(p) for p in paths])
                       .map(lambda p, idct=idct: load_image(p, jpeg_idct=idct),
                            num_parallel_calls=tf.data.AUTOTUNE).batch(len(paths)))
            pipelines[idct] = lambda dataset=dataset: list(dataset)
        # The two in turn, round after round, and the median of each: a machine shared with
        # other work slows both alike.
        seconds = {idct: [] for idct in IDCTS}
        whole = {idct: [] for idct in IDCTS}
        for _ in range(args.repeat):
            for idct in IDCTS:
                seconds[idct].append(timed(decoders[idct], 1))
                whole[idct].append(timed(pipelines[idct], 1))
        for idct in IDCTS:
            decode, through = np.median(seconds[idct]), np.median(whole[idct])
            print(f"{idct:8} decode {1e3 * decode / len(paths):6.2f} ms an image "
                  f"({pixels / decode / 1e6:5.1f} Mpixel/s); decode, resize and scale "
                  f"{1e3 * through / len(paths):6.2f} ms an image (medians of {args.repeat})")
        ratio = np.median(seconds["accurate"]) / np.median(seconds["fast"])
        print(f"accurate / fast, decoding alone: x{ratio:.2f}")


if __name__ == "__main__":
    main()
