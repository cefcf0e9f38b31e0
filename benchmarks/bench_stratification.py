"""Fold split: second-order against first-order iterative stratification on the full label tables.

For each data set and order: the time to cut the rows into 4 quarters, and over the 4 test folds
(fold k tests on quarter 5 - k) the worst and the mean absolute deviation of

* each class's positive rate from its rate in the whole set, and
* each label pair's co-occurrence rate from its rate in the whole set, over every pair (a < b)
  that occurs at least once;

and the largest distance of a test fold's size from n / 4. Two rows give a scale: the folds the
authors published (their ``fold`` column, cut by scikit-multilearn's second-order
``iterative_train_test_split`` with no seed) and a random cut into quarters.

    python benchmarks/bench_stratification.py [--seeds 0 1 2] [--reference ../shared/reference]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from mlml_tf.labels.folds import fold_indices, stratified_parts

ROOT = Path(__file__).resolve().parents[1]


def deviations(labels: np.ndarray, tests: list[np.ndarray]) -> dict[str, float]:
    """Worst and mean |rate in a test fold - rate in the whole set|, for classes and pairs."""
    y = labels.astype(np.float64)
    rate = y.mean(axis=0)
    pair_rate = y.T @ y / len(y)
    occurring = np.triu(pair_rate > 0, k=1)
    cls = np.stack([np.abs(y[t].mean(axis=0) - rate) for t in tests])
    pair = np.stack([np.abs(y[t].T @ y[t] / len(t) - pair_rate)[occurring] for t in tests])
    return {
        "class_worst": cls.max(), "class_mean": cls.mean(),
        "pair_worst": pair.max(), "pair_mean": pair.mean(),
        "size": max(abs(len(t) - len(y) / 4) for t in tests),
    }


def test_folds(parts: list[np.ndarray]) -> list[np.ndarray]:
    return [fold_indices(parts, k)[1] for k in range(1, len(parts) + 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--reference", type=Path, default=ROOT.parent / "shared" / "reference")
    args = parser.parse_args()
    head = (f"{'data':8} {'cut':23} {'seed':>4} {'seconds':>7} {'class worst':>11} "
            f"{'class mean':>10} {'pair worst':>10} {'pair mean':>9} {'size':>5}  pairs")
    print(head)
    print("-" * len(head))
    for name in ("coco", "nuswide"):
        frame = pd.read_csv(args.reference / f"{name}_groundtruth.csv.gz", dtype={"id": str})
        labels = frame.drop(columns=["id", "fold"]).to_numpy(np.uint8)
        n_pairs = int(np.triu(labels.T.astype(np.int64) @ labels > 0, k=1).sum())
        rows = []
        published = [np.flatnonzero(frame["fold"].to_numpy() == k) for k in range(1, 5)]
        rows.append(("published folds", "-", None, published))
        for seed in args.seeds:
            for order, label in ((2, "second-order (ours)"), (1, "first-order (iterstrat)")):
                start = time.perf_counter()
                parts = stratified_parts(labels, 4, seed=seed, order=order)
                rows.append((label, seed, time.perf_counter() - start, test_folds(parts)))
            perm = np.random.default_rng(seed).permutation(len(labels))
            rows.append(("random quarters", seed, None, [np.sort(perm[i::4]) for i in range(4)]))
        for label, seed, seconds, tests in rows:
            d = deviations(labels, tests)
            took = "-" if seconds is None else f"{seconds:.2f}"
            print(f"{name:8} {label:23} {seed:>4} {took:>7} {d['class_worst']:11.4f} "
                  f"{d['class_mean']:10.5f} {d['pair_worst']:10.4f} {d['pair_mean']:9.5f} "
                  f"{d['size']:5.0f}  {n_pairs}")


if __name__ == "__main__":
    main()
