"""Memory and time of ``mlml-tf predict`` as the number of images grows.

A tiny model (a random MobileNetV2 on 32 x 32 images) is trained on the example of
:func:`mlml_tf.datasets.photos.own_data_example`; then ``mlml-tf predict`` tags folders of N and 8 N
copies of its images, each in a fresh process, and the peak resident memory of each process is
printed with their ratio: streamed prediction keeps it flat in the number of images.

    python benchmarks/bench_predict.py [--images 200]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import resource, sys
from mlml_tf.cli.main import main
code = main(sys.argv[1:])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
sys.exit(code)
"""


def _predict(model: Path, images: Path, out: Path) -> tuple[float, float]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, "predict", "--model", str(model),
                           "--images", str(images), "--out", str(out), "--quiet"],
                          check=True, capture_output=True, text=True)
    return time.perf_counter() - start, int(done.stdout.split()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    args = parser.parse_args()
    from mlml_tf.apps.own.fit import fit_model
    from mlml_tf.datasets.photos import own_data_example
    from mlml_tf.settings import FitSettings

    root = Path(tempfile.mkdtemp(prefix="bench_predict_"))
    try:
        example = own_data_example(root, n_images=48)
        settings = FitSettings(backbone="MobileNetV2", weights="none", image_size=32,
                               head="gap", epochs=1, batch_size=8)
        fit_model(example["labels"], example["images"], root / "model", settings,
                  cache=root / "cache", verbose=0, progress=False)
        files = sorted(p for p in example["images"].rglob("*") if p.is_file())
        results = {}
        for n in (args.images, 8 * args.images):
            folder = root / f"images{n}"
            folder.mkdir()
            for i in range(n):
                source = files[i % len(files)]
                shutil.copyfile(source, folder / f"{i:06d}{source.suffix}")
            results[n] = _predict(root / "model", folder, root / f"tags{n}.csv")
            print(f"{n:6d} images: {results[n][0]:6.1f} s, peak memory {results[n][1]:7.1f} MB")
        small, large = results[args.images], results[8 * args.images]
        print(f"8x the images: x{large[1] / small[1]:.2f} peak memory, "
              f"x{large[0] / small[0]:.2f} time")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
