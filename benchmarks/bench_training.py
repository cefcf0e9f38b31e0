"""Training on the feature cache against the original's way, and where the time and memory go.

(a) ``cache``: 20 epochs of the original head on cached features (the backbone runs once per
    image) against the original's loop, which ran the frozen InceptionResNetV2 on every batch of
    every step. Same images, same head, same batches. The recomputing loop is timed over
    ``--recompute-steps`` steps and its per-step cost multiplied by the number of steps of 20
    epochs (``--full`` runs it all).
(b) ``pipeline``: images per second of the tf.data input pipeline alone (decode, resize, scale)
    against the backbone alone.
(c) ``memory``: peak resident memory of cached training, each size in a fresh process, for
    feature files of growing size: streaming keeps it flat.

    python benchmarks/bench_training.py [cache] [pipeline] [memory] [--images 64]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]


def real_images(folder: Path, n: int, seed: int = 0) -> list[str]:
    """``n`` JPEG files cut from scikit-image's photographs."""
    from PIL import Image
    from skimage import data

    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(),
              np.stack([data.camera()] * 3, -1)]
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        src = photos[i % len(photos)]
        h, w = src.shape[:2]
        y, x = rng.integers(0, h // 3), rng.integers(0, w // 3)
        crop = src[y : y + 2 * h // 3, x : x + 2 * w // 3]
        path = folder / f"{i:05d}.jpg"
        Image.fromarray(crop).resize((320, 320)).save(path, quality=90)
        paths.append(str(path))
    return paths


def bench_cache(args) -> None:
    import keras
    import tensorflow as tf

    from mlml_tf.features.backbones import feature_extractor, inference_function
    from mlml_tf.features.dataset import image_dataset
    from mlml_tf.losses.weighted import WeightedBinaryCrossentropy
    from mlml_tf.training.heads import build_head

    work = Path(tempfile.mkdtemp())
    paths = real_images(work / "images", args.images)
    n_classes, batch = 80, 32
    rng = np.random.default_rng(0)
    y = (rng.random((len(paths), n_classes)) < 0.07).astype(np.float32)
    w = np.ones_like(y)
    steps_per_epoch = len(paths) // batch
    total_steps = steps_per_epoch * args.epochs
    extractor = feature_extractor("InceptionResNetV2", weights=None)
    images = image_dataset(paths, y, w, batch_size=batch).dataset

    def compiled(shape):
        head = build_head(shape, n_classes)
        head.compile(optimizer=keras.optimizers.Adadelta(0.1),
                     loss=WeightedBinaryCrossentropy(from_logits=True))
        return head

    # Ours: features once (float16 on disk in the package; in memory here), then the head;
    # the backbone compiled as the feature cache runs it.
    start = time.perf_counter()
    infer = inference_function(extractor)
    feats = np.concatenate([infer(x).numpy() for x, _, _ in images])
    extract_s = time.perf_counter() - start
    head = compiled(feats.shape[1:])
    data = tf.data.Dataset.from_tensor_slices((feats.astype(np.float16).astype(np.float32), y, w))
    data = data.batch(batch, drop_remainder=True).repeat()
    start = time.perf_counter()
    head.fit(data, epochs=args.epochs, steps_per_epoch=steps_per_epoch, verbose=0)
    head_s = time.perf_counter() - start
    cached_s = extract_s + head_s

    # The original: the frozen backbone inside the model, run on every batch of every step.
    model = keras.Sequential([keras.Input((224, 224, 3)), extractor,
                              compiled(extractor.output.shape[1:])])
    model.compile(optimizer=keras.optimizers.Adadelta(0.1),
                  loss=WeightedBinaryCrossentropy(from_logits=True))
    stream = images.unbatch().batch(batch, drop_remainder=True).repeat()
    measured = total_steps if args.full else min(args.recompute_steps, total_steps)
    model.fit(stream, epochs=1, steps_per_epoch=1, verbose=0)  # build and trace
    start = time.perf_counter()
    model.fit(stream, epochs=1, steps_per_epoch=measured, verbose=0)
    step_s = (time.perf_counter() - start) / measured
    recompute_s = step_s * total_steps
    how = "measured" if measured == total_steps else f"{measured} steps measured, extrapolated"
    print(f"(a) {len(paths)} images, batch {batch}, {args.epochs} epochs = {total_steps} steps:")
    print(f"    cached: features once {extract_s:.1f} s + head {head_s:.1f} s = {cached_s:.1f} s")
    print(f"    recomputing the backbone every step: {step_s:.2f} s/step -> {recompute_s:.0f} s "
          f"({how})")
    print(f"    ratio: cached training is x{recompute_s / cached_s:.1f} faster; the backbone "
          f"runs {total_steps * batch / len(paths):.0f} times less per image")


def bench_pipeline(args) -> None:
    from mlml_tf.features.backbones import feature_extractor, inference_function
    from mlml_tf.features.dataset import image_dataset

    work = Path(tempfile.mkdtemp())
    paths = real_images(work / "images", args.images)
    dataset = image_dataset(paths, batch_size=32).dataset
    for _ in dataset:
        pass
    start = time.perf_counter()
    n = sum(int(x.shape[0]) for x in dataset)
    pipe = n / (time.perf_counter() - start)
    extractor = feature_extractor("InceptionResNetV2", weights=None)
    x = next(iter(dataset))
    rates = {}
    # Compiled, as the feature cache runs it, and called eagerly, layer by layer.
    for name, run in (("compiled", inference_function(extractor)),
                      ("eager", lambda images: extractor(images, training=False))):
        run(x)
        start = time.perf_counter()
        for _ in range(2):
            run(x)
        rates[name] = 2 * int(x.shape[0]) / (time.perf_counter() - start)
    backbone = rates["compiled"]
    print(f"(b) input pipeline {pipe:.0f} images/s; InceptionResNetV2 at 224 {backbone:.1f} "
          f"images/s compiled ({rates['eager']:.1f} eager: x{backbone / rates['eager']:.1f}); "
          f"the pipeline is x{pipe / backbone:.0f} faster than the backbone it feeds")


MEMORY_CHILD = """
import json, sys, time
import numpy as np
from mlml_tf.features.cache import FeatureCache
from mlml_tf.losses.weighted import WeightedBinaryCrossentropy
from mlml_tf.training.heads import build_heads
from mlml_tf.training.stream import training_stream
from mlml_tf.training.optimizer import FusedAdadelta
from mlml_tf.training.trainer import HeadTrainer, TrainingRows
cache = FeatureCache(sys.argv[1])
n = len(cache)
y = (np.random.default_rng(0).random((n, 1, 80)) < 0.07).astype(np.float32)
stream, steps, held = training_stream(cache, np.arange(n), 32, 0, lambda: 0, in_memory=False)
trainer = HeadTrainer(build_heads(cache.shape, 80, 1, head="gap"),
                      TrainingRows(y, np.ones_like(y), held),
                      [(WeightedBinaryCrossentropy(from_logits=True), False)])
trainer.compile(optimizer=FusedAdadelta(0.1), steps_per_execution=steps)
start = time.perf_counter()
trainer.fit(stream, epochs=1, steps_per_epoch=steps, verbose=0)
# VmHWM: the peak of this process image only (ru_maxrss would include the parent's memory
# inherited before exec).
hwm = int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
print(json.dumps({"peak_mib": hwm / 1024,
                  "seconds": time.perf_counter() - start}))
"""


def bench_memory(args) -> None:
    from mlml_tf.features.cache import build_feature_cache

    shape = (5, 5, 1536)
    print(f"(c) cached training, one epoch over every row, features {shape} float16:")
    for n in args.memory_rows:
        folder = Path(tempfile.mkdtemp()) / "cache"
        def batches(n=n, chunk=512):
            rng = np.random.default_rng(0)
            for start in range(0, n, chunk):
                size = min(chunk, n - start)
                yield rng.standard_normal((size, *shape), dtype=np.float32)

        build_feature_cache(folder, [str(i) for i in range(n)], batches, lambda b: b,
                            {"bench": n}, progress=False)
        size_mib = (folder / "features.npy").stat().st_size / 2**20
        out = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(folder)], check=True,
                             capture_output=True, text=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"    {n:6d} images: feature file {size_mib:7.0f} MiB, peak resident memory "
              f"{result['peak_mib']:5.0f} MiB ({result['peak_mib'] / size_mib:.2f} of the file), "
              f"{result['seconds']:.0f} s")
        for f in folder.iterdir():
            f.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="*", default=["cache", "pipeline", "memory"],
                        choices=["cache", "pipeline", "memory"])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--recompute-steps", type=int, default=4)
    parser.add_argument("--full", action="store_true", help="run every recomputing step")
    parser.add_argument("--memory-rows", type=int, nargs="+", default=[4000, 16000])
    args = parser.parse_args()
    for part in args.parts:
        {"cache": bench_cache, "pipeline": bench_pipeline, "memory": bench_memory}[part](args)


if __name__ == "__main__":
    main()
