"""Where the time of a fold's runs goes, trained side by side and one by one, in one process.

The runs of one fold of a synthetic data folder (3 methods x the ratios given, on random
features of the head's shape in a feature cache) are trained twice: side by side in one model
(``train.train_runs``, what the grid does) and one by one (``train.train_run`` each, the grid's
``--one-by-one``). Each time the seconds of every phase are measured by ``train_runs`` itself:

* ``prepare``: labels, entry weights and digests of the runs;
* ``build``: the model, its optimizer, the input stream and the features held in memory;
* ``first epoch``: the first call of the compiled step loop, tracing included;
* ``steps``: the other epochs' step loops;
* ``callbacks``: training logs, TensorBoard, checkpoints (at most every 10 minutes) and, when
  training ends, each run's head file;
* ``fit, other``: what Keras' ``fit`` spends outside the step loops and the callbacks;
* ``predict``: the test rows through each trained head;
* ``results``: the result files of each run.

Also timed: the input stream alone (its batches drawn as fast as it gives them, no training;
it runs beside the steps in a thread), and the arithmetic alone as ``bench_steps.py`` times it.
The per-run fixed cost is a run's share of everything but its steps.

    python benchmarks/bench_run_phases.py [--head demo|paper] [--rows N] [--epochs E]
        [--ratios 0 0.25 0.5 0.75]

``demo``: the demo's head on 6 x 6 x 32 features, 10 classes, 2,000 rows (1,500 to train, 46
steps an epoch, as the demo); ``paper``: the paper's head on COCO's 5 x 5 x 1536 features, 80
classes (81 M parameters a head; few rows and one ratio by default, a CPU takes about a second
a step).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

SHAPES = {"demo": ((6, 6, 32), 10, 2000), "paper": ((5, 5, 1536), 80, 320)}
METHODS = ("ce", "im-wce", "cb-wce")


def data_folder(root: Path, n_rows: int, n_classes: int, ratios, seed: int = 0):
    from mlml_tf.files.layout import write_groundtruth
    from mlml_tf.files.split import split

    rng = np.random.default_rng(seed)
    labels = (rng.random((n_rows, n_classes)) < 0.3).astype(np.uint8)
    labels[np.arange(n_rows), rng.integers(0, n_classes, n_rows)] = 1
    frame = pd.DataFrame(labels, index=[f"i{k}" for k in range(n_rows)],
                         columns=[f"c{c}" for c in range(n_classes)])
    write_groundtruth(root / "data", frame)
    split(root / "data", ratios=list(ratios), seed=seed)
    return frame


def feature_cache(root: Path, frame, shape):
    from mlml_tf.features.cache import build_feature_cache

    x = np.random.default_rng(1).normal(size=(len(frame), *shape)).astype(np.float32)
    return build_feature_cache(root / "cache", frame.index, lambda: iter([x]), lambda b: b,
                               settings={"bench": 1}, progress=False)


def summarize(phases: dict, wall: float, steps: int, n_runs: int) -> dict:
    """The phases of runs trained side by side; ``step`` is one run's share of a step."""
    epochs = phases["epochs"]
    later = sum(epochs[1:])
    return {
        "prepare": phases.get("prepare", 0.0),
        "build": phases.get("build", 0.0),
        "first epoch": epochs[0],
        "steps": later,
        "callbacks": phases.get("callbacks", 0.0),
        "predict": phases.get("predict", 0.0),
        "results": phases.get("results", 0.0),
        "fit, other": phases["fit"] - sum(epochs) - phases.get("callbacks", 0.0),
        "whole": wall,
        "step": later / (steps * (len(epochs) - 1)) / n_runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--head", choices=sorted(SHAPES), default="demo")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--ratios", type=float, nargs="+", default=None)
    args = parser.parse_args()
    shape, n_classes, default_rows = SHAPES[args.head]
    n_rows = args.rows or default_rows
    ratios = args.ratios or ([0.0, 0.25, 0.5, 0.75] if args.head == "demo" else [0.5])

    import keras

    from mlml_tf.settings import RunConfig
    from mlml_tf.training.runs import train_runs

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        frame = data_folder(root, n_rows, n_classes, ratios)
        cache = feature_cache(root, frame, shape)
        configs = [RunConfig(method=m, ratio=r, fold=1, epochs=args.epochs)
                   for r in ratios for m in METHODS]
        n = len(configs)

        together: dict = {}
        start = time.perf_counter()
        train_runs(root / "data", cache,
                   [(root / "together" / str(i), c, None) for i, c in enumerate(configs)],
                   verbose=0, phases=together)
        wall_together = time.perf_counter() - start
        keras.backend.clear_session()

        # One by one: every phase summed over the runs; "epochs" lists every run's epochs.
        alone: dict = {}
        start = time.perf_counter()
        for i, config in enumerate(configs):
            train_runs(root / "data", cache, [(root / "alone" / str(i), config, None)],
                       verbose=0, phases=alone)
            keras.backend.clear_session()
        wall_alone = time.perf_counter() - start

        extra = json.loads((root / "together" / "0" / "metrics.json").read_text())["extra"]
        steps = extra["steps_per_epoch"]
        stream = stream_seconds(cache, root, configs[0], steps)
        arithmetic = arithmetic_step(shape, n_classes, n)

    a = summarize(together, wall_together, steps, n)
    # The first epoch of each run holds its tracing.
    epochs = alone["epochs"]
    per_run = args.epochs
    firsts = sum(epochs[k * per_run] for k in range(n))
    later = sum(epochs) - firsts
    b = {
        "prepare": alone["prepare"], "build": alone["build"], "first epoch": firsts,
        "steps": later, "callbacks": alone.get("callbacks", 0.0), "predict": alone["predict"],
        "results": alone["results"],
        "fit, other": alone["fit"] - sum(epochs) - alone.get("callbacks", 0.0),
        "whole": wall_alone,
        "step": later / (steps * (per_run - 1) * n),
    }
    print(f"head {args.head}: features {shape}, {n_classes} classes, {n_rows} rows, "
          f"{n} runs (3 methods x ratios {ratios}) of fold 1, {steps} steps x {args.epochs} "
          "epochs each")
    print(f"{'phase':<14}{'side by side':>14}{'one by one':>14}   seconds, all runs")
    for key in ("prepare", "build", "first epoch", "steps", "callbacks", "fit, other", "predict",
                "results", "whole"):
        print(f"{key:<14}{a[key]:>14.2f}{b[key]:>14.2f}")
    for name, r in (("side by side", a), ("one by one", b)):
        fixed = r["whole"] - r["step"] * n * steps * args.epochs
        print(f"{name}: a run's step {1000 * r['step']:.2f} ms (the arithmetic alone "
              f"{1000 * arithmetic:.2f} ms: x{r['step'] / arithmetic:.2f}), "
              f"per-run fixed cost {fixed / n:.2f} s")
    print(f"input stream alone: {1000 * stream / steps:.3f} ms a batch "
          f"({100 * stream / steps / a['step'] / n:.2f} % of a step of the {n} runs side by side)")
    print(f"side by side / one by one, whole: x{a['whole'] / b['whole']:.2f}")


def stream_seconds(cache, root, config, steps) -> float:
    """Seconds to draw one epoch of batches from the training stream, no training."""
    from mlml_tf.files.layout import read_run_labels
    from mlml_tf.training.stream import training_stream

    train = read_run_labels(root / "data", config.ratio, config.fold)["train"]
    rows = cache.rows_of(train.index)
    stream, _, _ = training_stream(cache, rows, config.batch_size, config.seed, lambda: 0)
    start = time.perf_counter()
    for _ in stream:
        pass
    return time.perf_counter() - start


def arithmetic_step(shape, n_classes, n_heads) -> float:
    """Seconds of one run's share of a step of ``n_heads`` heads side by side, in one compiled
    ``tf.function`` on a batch in memory: forward, loss, backward, Adadelta (fused)."""
    import tensorflow as tf

    from mlml_tf.losses.weighted import WeightedBinaryCrossentropy
    from mlml_tf.training.heads import build_heads
    from mlml_tf.training.optimizer import FusedAdadelta

    heads = build_heads(shape, n_classes, n_heads)
    optimizer = FusedAdadelta(0.1, rho=0.95, epsilon=1e-8)
    loss_fn = WeightedBinaryCrossentropy(from_logits=True)
    rng = np.random.default_rng(2)
    x = tf.constant(rng.normal(size=(32, *shape)).astype(np.float32))
    y = tf.constant((rng.random((32, n_heads, n_classes)) < 0.3).astype(np.float32))

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            z = heads(x, training=True)
            loss = tf.add_n([loss_fn(y[:, h], z[:, h], sample_weight=y[:, h] + 1.0)
                             for h in range(n_heads)])
        grads = tape.gradient(loss, heads.trainable_variables)
        optimizer.apply_gradients(zip(grads, heads.trainable_variables, strict=True))
        return loss

    step().numpy()
    repeats = max(10, 400 // n_heads)
    start = time.perf_counter()
    for _ in range(repeats):
        loss = step()
    loss.numpy()
    return (time.perf_counter() - start) / repeats / n_heads


if __name__ == "__main__":
    main()
