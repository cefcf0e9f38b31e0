"""Training steps of the paper's head against the memory-bound floor of the device they run on.

A step of the paper's head at batch 32 is bound by memory traffic, not arithmetic: it reads
the 81 M weights for the forward pass, writes their gradients, and Adadelta's fused update
reads each weight, its gradient and the two accumulators and writes back three of them. So a
step moves at least ``36 x parameters`` bytes (9 passes of 4 bytes), and its floor is that
over the device's memory bandwidth. In one process this benchmark measures

* the device's bandwidth: a large float32 tensor read and written by one element-wise op;
* the step of ``--heads`` paper heads side by side, as ``mlml-tf run`` trains a fold's runs
  (``HeadTrainer`` on batches of row indices, features held on the device), from ``fit``'s
  epoch ends, tracing left out;

and prints steps per second, each head's step against its floor, and from the measured
fraction of the floor what the paper's grid costs on this device (96 runs: 3 methods x 4
ratios x 4 folds x 2 data sets, 20 epochs of floor(N / 32) steps, N the training rows of a
fold: 24,789 for COCO, 18,468 for NUS-WIDE).

    python benchmarks/bench_device.py [--heads 1] [--steps 20] [--mixed-precision]

On a GPU (Colab) it runs there; here it runs on the CPU, whose step is bound by arithmetic as
much as by memory.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

FEATURES, CLASSES = (5, 5, 1536), 80
#: Training rows of a fold (three quarters of the filtered set) and runs of the paper's grid.
GRID = {"COCO": (24_789, 48), "NUS-WIDE": (18_468, 48)}
EPOCHS, BATCH = 20, 32
#: Bytes per parameter a step moves at least: forward read, gradient write, and Adadelta's
#: fused update (reads weight, gradient and two accumulators, writes three).
BYTES_PER_PARAMETER = 4 * (1 + 1 + 4 + 3)


def bandwidth(device: str, megabytes: int = 512) -> float:
    """Bytes per second that one element-wise op reads and writes on ``device``."""
    import tensorflow as tf

    with tf.device(device):
        x = tf.random.uniform((megabytes * (1 << 20) // 4,))

        @tf.function
        def touch(v):
            return v * 1.0001

        touch(x).numpy()
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            y = touch(x)
            y[:1].numpy()
            best = min(best, time.perf_counter() - start)
    return 2 * x.shape[0] * 4 / best


def step_seconds(heads: int, steps: int, mixed_precision: bool, rows: int = 256) -> float:
    """Seconds of one step of ``heads`` paper heads side by side, from fit's epoch ends."""
    import keras
    import tensorflow as tf

    from mlml_tf.losses.weighted import WeightedBinaryCrossentropy
    from mlml_tf.training.heads import build_heads
    from mlml_tf.training.optimizer import FusedAdadelta
    from mlml_tf.training.trainer import HeadTrainer, TrainingRows

    rng = np.random.default_rng(0)
    features = rng.normal(size=(rows, *FEATURES)).astype(np.float16)
    labels = (rng.random((rows, heads, CLASSES)) < 0.05).astype(np.float32)
    dtype = "mixed_float16" if mixed_precision else None
    trainer = HeadTrainer(build_heads(FEATURES, CLASSES, heads, dtype=dtype),
                          TrainingRows(labels, labels + 1.0, features),
                          [(WeightedBinaryCrossentropy(from_logits=True), False)], dtype=dtype)
    trainer.compile(optimizer=FusedAdadelta(0.1, rho=0.95, epsilon=1e-8),
                    steps_per_execution=steps)
    index = rng.integers(0, rows, size=(3 * steps, BATCH))
    ends: list[float] = []

    class EpochEnds(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            ends.append(time.perf_counter())

    trainer.fit(tf.data.Dataset.from_tensor_slices(index), epochs=3, steps_per_epoch=steps,
                verbose=0, shuffle=False, callbacks=[EpochEnds()])
    return (ends[-1] - ends[0]) / (2 * steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--heads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--mixed-precision", action="store_true")
    args = parser.parse_args()

    import tensorflow as tf

    from mlml_tf.training.heads import build_head

    gpus = tf.config.list_logical_devices("GPU")
    device = gpus[0].name if gpus else "/CPU:0"
    name = (tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
            .get("device_name", "GPU") if gpus else "CPU")
    parameters = build_head(FEATURES, CLASSES).count_params()
    rate = bandwidth(device)
    step = step_seconds(args.heads, args.steps, args.mixed_precision)
    floor = BYTES_PER_PARAMETER * parameters / rate
    per_head = step / args.heads
    print(f"device {name}: memory bandwidth {rate / 1e9:.1f} GB/s (one element-wise op)")
    print(f"paper head: {parameters / 1e6:.1f} M parameters, at least "
          f"{BYTES_PER_PARAMETER * parameters / 1e9:.2f} GB moved a step, floor "
          f"{1000 * floor:.1f} ms at this bandwidth")
    print(f"{args.heads} head(s) side by side{' (mixed precision)' if args.mixed_precision else ''}"
          f": {1 / step:.2f} steps/s, {1000 * per_head:.1f} ms a head's step = "
          f"x{per_head / floor:.2f} its floor")
    total = 0.0
    for data, (n_train, runs) in GRID.items():
        head_steps = runs * EPOCHS * (n_train // BATCH)
        seconds = head_steps * per_head
        total += seconds
        print(f"  {data}: {runs} runs x {EPOCHS} epochs x {n_train // BATCH} steps = "
              f"{head_steps:,} head steps: {seconds / 3600:.2f} h of steps here")
    print(f"the paper's grid: {total / 3600:.2f} h of steps on this device "
          "(features, prediction and result files apart)")


if __name__ == "__main__":
    main()
