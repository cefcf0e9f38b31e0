"""Training steps as mlml-tf runs them against the same arithmetic alone.

For one head and feature shape, in one process:

* ``alone`` (timed first): the step's arithmetic only: forward, loss, backward and the
  Adadelta update (TensorFlow's fused kernel, as in training) of the head, the steps in one
  compiled ``tf.function`` loop on a batch already in memory, timed over the same number of
  steps, for the head as Keras Dense layers and as mlml-tf trains it (one head of
  ``build_heads``); the faster of the two counts;
* ``mlml-tf``: ``train.train_run`` on a feature cache of the same shape (its input stream,
  Keras' fit loop, callbacks and checkpoints included), its ``fit`` timed by a callback from
  the first to the last epoch end, so that model building, tracing of the first epoch,
  prediction and result files are left out; they are reported apart as the run's fixed cost.

The ratio of the two step times is the overhead mlml-tf adds to a step.

    python benchmarks/bench_steps.py [--head demo|paper] [--rows 1500] [--epochs 4]

``demo``: the demo's original head on 6 x 6 x 32 features, 10 classes; ``paper``: the paper's
head on COCO's 5 x 5 x 1536 features, 80 classes (about a second a step on a 2-core CPU: few
rows).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from bench_run_phases import data_folder, feature_cache

SHAPES = {"demo": ((6, 6, 32), 10), "paper": ((5, 5, 1536), 80)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--head", choices=sorted(SHAPES), default="demo")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    shape, n_classes = SHAPES[args.head]
    n_rows = args.rows or (2000 if args.head == "demo" else 224)

    import keras
    import tensorflow as tf

    from mlml_tf.files.layout import read_run_labels
    from mlml_tf.losses.weighted import WeightedBinaryCrossentropy
    from mlml_tf.settings import RunConfig
    from mlml_tf.training.heads import build_head, build_heads
    from mlml_tf.training.optimizer import adadelta
    from mlml_tf.training.runs import train_run

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        frame = data_folder(root, n_rows, n_classes, [0.5])
        cache = feature_cache(root, frame, shape)
        config = RunConfig(method="cb-wce", ratio=0.5, fold=1, epochs=args.epochs)

        steps = len(read_run_labels(root / "data", 0.5, 1)["train"]) // 32
        # The arithmetic alone, on the same shapes, for the paper's head layout (Keras Dense
        # layers) and for the one mlml-tf trains (one head of build_heads): the faster counts.
        keras.utils.set_random_seed(0)
        rng = np.random.default_rng(2)
        xb = tf.constant(cache.read(np.arange(32)))
        yb = tf.constant((rng.random((32, n_classes)) < 0.3).astype(np.float32))
        wb = tf.ones_like(yb)
        loss_fn = WeightedBinaryCrossentropy(from_logits=True)
        variants = {"Dense head": (build_head(shape, n_classes, seed=0), lambda z: z),
                    "build_heads(1)": (build_heads(shape, n_classes, 1, seed=0),
                                       lambda z: z[:, 0])}
        n = steps * (args.epochs - 1)
        alone = {}
        for name, (model, first_head) in variants.items():
            optimizer = adadelta(config)

            @tf.function
            def run(count, model=model, first_head=first_head, optimizer=optimizer):
                # Every step in one graph: no Python between steps, as fit's compiled loop.
                loss = tf.constant(0.0)
                for _ in tf.range(count):
                    with tf.GradientTape() as tape:
                        loss = loss_fn(yb, first_head(model(xb, training=True)),
                                       sample_weight=wb)
                    grads = tape.gradient(loss, model.trainable_variables)
                    optimizer.apply_gradients(zip(grads, model.trainable_variables,
                                                  strict=True))
                return loss

            run(tf.constant(1)).numpy()
            best = float("inf")
            for _ in range(2):
                t0 = time.perf_counter()
                run(tf.constant(n)).numpy()
                best = min(best, (time.perf_counter() - t0) / n)
            alone[name] = best
        fastest = min(alone, key=alone.get)

        ends: list[float] = []

        class EpochEnds(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                ends.append(time.perf_counter())

        start = time.perf_counter()
        train_run(root / "data", cache, root / "run", config, verbose=0,
                  callbacks=[EpochEnds()])
        total = time.perf_counter() - start
        metrics = pd.read_csv(root / "run" / "training_log.csv")
        ours = (ends[-1] - ends[0]) / (steps * (len(ends) - 1))

    print(f"head {args.head}: features {shape}, {n_classes} classes, {n_rows} rows, "
          f"{steps} steps x {args.epochs} epochs ({len(metrics)} logged)")
    print(f"  mlml-tf step  {1000 * ours:8.2f} ms   (epochs 2..{len(ends)} of train_run's fit)")
    for name, seconds in alone.items():
        print(f"  alone step    {1000 * seconds:8.2f} ms   ({name}: the steps in one compiled "
              "loop, one batch in memory)")
    print(f"  ratio         {ours / alone[fastest]:8.2f} x   (against {fastest})")
    fixed = total - ours * steps * args.epochs
    print(f"  whole run {total:.2f} s, of which outside the steps {fixed:.2f} s "
          "(build, first-epoch tracing, prediction, result files)")


if __name__ == "__main__":
    main()
