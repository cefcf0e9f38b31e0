"""CB-WCE confidence weights: this package against the original's per-(row, class) loop.

The original filtered the whole label table twice for every (row, class) pair. It is timed here on
a sample of rows (the whole table would take about 20 minutes) and its per-row cost compared with
the per-row cost of ``confidence_weights`` on the full table, in the same run.

    python benchmarks/bench_confidence_weights.py [--sample 60] [--reference ../shared/reference]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

from mlml_tf import confidence_weights

ROOT = Path(__file__).resolve().parents[1]


def original_loop(frame: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    """The original's algorithm, written plainly with pandas as its notebook did."""
    out = np.zeros((len(rows), frame.shape[1]))
    for n, i in enumerate(rows):
        row = frame.iloc[i]
        positives = row.index[row == 1]
        for c, name in enumerate(frame.columns):
            if row[name] == 1:
                continue
            holders = frame[(frame[positives] == 1).all(axis=1)]
            with_c = holders[holders[name] == 1]
            out[n, c] = 1 - len(with_c) / len(holders)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=60, help="rows timed for the original loop")
    parser.add_argument("--reference", type=Path, default=ROOT.parent / "shared" / "reference")
    args = parser.parse_args()
    for name in ("coco", "nuswide"):
        frame = pd.read_csv(args.reference / f"{name}_groundtruth.csv.gz", dtype={"id": str})
        frame = frame.set_index("id").drop(columns="fold").astype(np.uint8)
        labels = frame.to_numpy()
        confidence_weights(labels[:500])  # warm-up
        start = time.perf_counter()
        fast = confidence_weights(labels)
        fast_s = time.perf_counter() - start
        tracemalloc.start()
        confidence_weights(labels)
        peak_mib = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        rows = np.random.default_rng(0).choice(len(labels), args.sample, replace=False)
        start = time.perf_counter()
        slow = original_loop(frame, rows)
        slow_s = time.perf_counter() - start
        assert np.allclose(fast[rows], slow, atol=1e-6), "results differ"
        per_fast = fast_s / len(labels)
        per_slow = slow_s / len(rows)
        print(
            f"{name}: {labels.shape[0]} x {labels.shape[1]}: ours {fast_s:.2f} s for all rows "
            f"({per_fast * 1e6:.1f} us/row); original loop {per_slow * 1e3:.1f} ms/row on "
            f"{len(rows)} rows (full table ~{per_slow * len(labels) / 60:.1f} min); "
            f"speed-up x{per_slow / per_fast:,.0f}; peak memory {peak_mib:.0f} MiB against "
            f"{labels.shape[0] ** 2 / 2**30:.2f} GiB for one n x n boolean matrix"
        )


if __name__ == "__main__":
    main()
