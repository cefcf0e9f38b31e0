"""CB-WCE confidence weights from the observed labels: the estimator against counting and oracles.

A confidence weight should be high on a true negative and low on a hidden positive. Among the
candidate entries of the training rows (the observed zeros under the paper's protocol, the -1
entries under random per-sample unknowns (RPS) and single positive) the measure is the AUC with
which the weight ranks true negatives above hidden positives, ties counted one half, with the
mean weight on hidden positives and on true negatives (the scale a weighted BCE sees) and the
CPU seconds it takes (the process's time, so that other work on a shared machine does not
count; with one BLAS thread, the time on one core) (docs/methods.md section 6).

Rows of the table, for each protocol:

- ``observed``: paper eq. 3 counted over the observed labels (what a user can run);
- ``oracle-file``: eq. 3 for the row's complete positives over the complete labels of the whole
  set, as the original's weight file (``--cb-source oracle``): every hidden positive gets 0;
- ``oracle``: eq. 3 for the row's observed positives over the complete labels of the whole set;
- ``oracle-loo``: the same with the row's own complete row left out (``--cb-source
  oracle-loo``): the yardstick;
- ``class-freq``: 1 - the class's frequency among the observed positives;
- ``model-complete``: the estimator's model of which class is missing (its mixture, with the
  seed of the estimator) fitted on the *complete* training rows instead of the observed ones,
  asked about the observed rows, as ``1 - pi``: what the model could tell if the observed
  matrix held every co-occurrence; the distance from it to ``estimator`` is what the observed
  matrix does not hold (an oracle, for reading the table only);
- ``estimator``: :func:`mlml_tf.labels.estimate_confidence` on the observed matrix alone, with
  its estimate of the ratio (the protocol's r or p; NaN where the matrix cannot tell, as under
  single positive) and of the share of all positives that are missing, each beside the truth.

Protocols: the authors' published masks (ratio 0.5, fold 1, read from ``--reference``); masks
drawn with ``hide_positives`` (ratios 0 / 0.25 / 0.5 / 0.75; at 0 nothing is hidden, there is
no AUC, and what counts is the estimated missing share and the mean weight on the negatives),
``random_per_sample`` (p 0.25 / 0.5 / 0.75) and ``single_positive``, each on the training rows
of all four folds (fold k trains on the rows of the other folds; the mean over folds is shown;
``--quick``: fold 1 only). A last table says how much of the oracle's gain over observed
counting comes from each row counting its own complete row: (oracle - oracle-loo) / (oracle -
observed).

``--whole`` only times the estimator on every row of each data set (COCO's 33,052) with each
ratio of positives hidden.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/bench_confidence_estimators.py \
        [--quick | --whole] [--reference DIR] [--level least|expected]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from mlml_tf.labels import (
    confidence_weights,
    estimate_confidence,
    estimated,
    hide_positives,
    random_per_sample,
    single_positive,
)

ROOT = Path(__file__).resolve().parents[1]
DATASETS = {
    "coco": ("coco_groundtruth.csv.gz", "labels_balanced_4labels"),
    "nuswide": ("nuswide_groundtruth.csv.gz", "labels_balanced_nus"),
}
RATIOS = (0.25, 0.5, 0.75)
METHODS = ("observed", "oracle-file", "oracle", "oracle-loo", "class-freq", "model-complete",
           "estimator")


def auc(weights: np.ndarray, positive: np.ndarray) -> float:
    """P(w on a negative > w on a positive) + 0.5 P(tie), by mid-ranks."""
    _, inverse, counts = np.unique(weights, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2.0)[inverse.reshape(-1)]
    n_neg, n_pos = int((~positive).sum()), int(positive.sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    return float((ranks[~positive].sum() - n_neg * (n_neg + 1) / 2.0) / (n_neg * n_pos))


def load_reference(reference: Path, name: str) -> tuple[pd.Index, np.ndarray, np.ndarray]:
    frame = pd.read_csv(reference / DATASETS[name][0], dtype={"id": str})
    labels = frame.drop(columns=["id", "fold"]).to_numpy().astype(bool)
    return pd.Index(frame["id"]), frame["fold"].to_numpy(), labels


def authors_mask(reference: Path, name: str, ids: pd.Index,
                 labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training rows, observed labels and hidden mask of the published ratio-0.5 fold-1 files."""
    folder = reference / DATASETS[name][1] / "missing_labels0.5"
    train = pd.read_csv(folder / "train1_0.5.csv", index_col=0, dtype={0: str})
    negw = pd.read_csv(folder / "negative_weights1_0.5.csv", index_col=0, dtype={0: str})
    train.index, negw.index = train.index.astype(str), negw.index.astype(str)
    rows = np.sort(ids.get_indexer(train.index))
    if (rows < 0).any():
        raise SystemExit(f"{folder}: ids not in the ground truth")
    order = ids[rows]
    observed = train.loc[order].to_numpy().astype(bool)
    hidden = negw.loc[order].to_numpy() == 0
    if not (observed <= labels[rows]).all() or not (hidden == (labels[rows] & ~observed)).all():
        raise SystemExit(f"{folder}: the published files do not match the ground truth")
    return rows, observed, hidden


def evaluate(weights: np.ndarray, candidates: np.ndarray, truth: np.ndarray) -> tuple:
    w, y = weights[candidates], truth[candidates]
    return auc(w, y), float(w[y].mean()) if y.any() else float("nan"), float(w[~y].mean())


def run_case(observed: np.ndarray, rows: np.ndarray, whole: np.ndarray,
             estimator_seed: int, level: str = "least") -> dict[str, tuple]:
    """Every method on one observed matrix (1/0, or 1/0/-1) of the rows ``rows`` of ``whole``."""
    complete = whole[rows]
    partial = (observed == -1).any() and (observed == 0).any()
    positives = observed == 1
    candidates = (observed == -1) if partial else ~positives
    results: dict[str, tuple] = {}

    def timed(name: str, fn: Callable[[], np.ndarray]) -> np.ndarray:
        start = time.process_time()
        out = fn()
        seconds = time.process_time() - start
        weights = out.weights if hasattr(out, "weights") else out
        results[name] = (*evaluate(weights, candidates, complete), seconds)
        return out

    timed("observed", lambda: confidence_weights(positives))
    timed("oracle-file", lambda: confidence_weights(whole)[rows])
    timed("oracle", lambda: confidence_weights(positives, whole))
    timed("oracle-loo", lambda: confidence_weights(positives, whole, own=complete))
    freq = positives.mean(axis=0)
    timed("class-freq", lambda: np.broadcast_to(1.0 - freq, positives.shape))
    timed("model-complete", lambda: model_on_complete(complete, positives, candidates,
                                                      estimator_seed))
    est = timed("estimator", lambda: estimate_confidence(observed, seed=estimator_seed,
                                                         level=level))
    results["estimator"] += (est.ratio, est.missing_fraction)
    return results


def model_on_complete(complete: np.ndarray, positives: np.ndarray, candidates: np.ndarray,
                      seed: int) -> np.ndarray:
    """``1 - pi``, the estimator's mixture fitted on the complete rows, for the observed sets."""
    sets, _, counts = estimated._unique_rows(complete.astype(np.int8))
    fit = sets.sum(axis=1) > 0
    with threadpool_limits(limits=1, user_api="blas"):
        scores = estimated._mixture_predictive(sets[fit], counts[fit].astype(np.float64),
                                               positives.astype(np.int8), seed)
    return 1.0 - estimated._normalise(scores, candidates)


def whole_timing(args: argparse.Namespace) -> None:
    """CPU seconds of the estimator on every row of each data set, at each ratio."""
    for name in args.datasets:
        _, _, labels = load_reference(args.reference, name)
        for r in RATIOS:
            observed = hide_positives(labels, r, args.seed)[0].astype(np.int8)
            start = time.process_time()
            estimate_confidence(observed, seed=args.estimator_seed)
            print(f"{name:8} {labels.shape[0]:6d} x {labels.shape[1]} rows, r={r}: "
                  f"{time.process_time() - start:5.2f} CPU s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, default=ROOT.parent / "shared" / "reference",
                        help="folder of the published label tables (default: beside the "
                        "repository)")
    parser.add_argument("--quick", action="store_true", help="fold 1 only")
    parser.add_argument("--seed", type=int, default=0, help="seed of the drawn masks")
    parser.add_argument("--estimator-seed", type=int, default=0)
    parser.add_argument("--level", default="least", choices=estimated.LEVELS,
                        help="the estimator's level (docs/methods.md section 6)")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--whole", action="store_true",
                        help="only time the estimator on every row of each data set")
    args = parser.parse_args()
    if args.whole:
        whole_timing(args)
        return
    folds = (1,) if args.quick else (1, 2, 3, 4)
    header = (f"{'data':8} {'protocol':26} {'method':14} {'AUC':>6} {'w_hidden':>9} "
              f"{'w_neg':>6} {'ratio est':>9} {'true':>5} {'missing est':>11} {'true':>5} "
              f"{'cpu s':>8}")
    print(header)
    print("-" * len(header))
    leaks = []
    for name in args.datasets:
        ids, fold_of, labels = load_reference(args.reference, name)

        def report(protocol: str, runs: list[tuple[dict, float, float]], name: str = name):
            means = {}
            for method in METHODS:
                vals = np.array([r[method][:4] for r, _, _ in runs], dtype=float)
                a, wh, wn, s = means[method] = vals.mean(axis=0)
                ratio = f"{'':9} {'':5} {'':11} {'':5}"
                if method == "estimator":
                    est_r = np.mean([r[method][4] for r, _, _ in runs])
                    est_f = np.mean([r[method][5] for r, _, _ in runs])
                    true_r = np.mean([t for _, t, _ in runs])
                    true_f = np.mean([f for _, _, f in runs])
                    ratio = f"{est_r:9.3f} {true_r:5.2f} {est_f:11.3f} {true_f:5.3f}"
                print(f"{name:8} {protocol:26} {method:14} {a:6.3f} {wh:9.3f} {wn:6.3f} "
                      f"{ratio} {s:8.2f}", flush=True)
            leaks.append((name, protocol, *(means[m][0] for m in
                                            ("observed", "oracle", "oracle-loo", "estimator"))))

        rows, observed, hidden = authors_mask(args.reference, name, ids, labels)
        res = run_case(observed.astype(np.int8), rows, labels, args.estimator_seed, args.level)
        report("authors r=0.5 fold1", [(res, 0.5, hidden.sum() / labels[rows].sum())])

        # protocol -> (the observed matrix made of the complete rows, the true ratio)
        drawn: dict[str, tuple[Callable[[np.ndarray], np.ndarray], float]] = {}
        for r in (0.0, *RATIOS):
            drawn[f"paper r={r}"] = (lambda y, r=r: hide_positives(y, r, args.seed)[0], r)
        for p in RATIOS:
            drawn[f"rps p={p}"] = (lambda y, p=p: random_per_sample(y, p, args.seed), p)
        drawn["single positive"] = (lambda y: single_positive(y, args.seed), np.nan)
        for protocol, (make, true_ratio) in drawn.items():
            runs = []
            for k in folds:
                rows = np.flatnonzero(fold_of != k)
                complete = labels[rows]
                observed = np.asarray(make(complete)).astype(np.int8)
                missing = ((observed != 1) & complete).sum() / complete.sum()
                runs.append((run_case(observed, rows, labels, args.estimator_seed, args.level),
                             true_ratio,
                             missing))
            report(protocol + ("" if args.quick else f" ({len(folds)} folds)"), runs)

    print()
    print("How much of the oracle's gain over observed counting (AUC) comes from each row "
          "counting its own complete row")
    line = (f"{'data':8} {'protocol':26} {'observed':>8} {'oracle':>7} {'loo':>6} "
            f"{'own row':>8} {'estimator':>9}")
    print(line)
    print("-" * len(line))
    for name, protocol, observed_auc, oracle_auc, loo_auc, est_auc in leaks:
        if np.isnan(oracle_auc):
            continue  # nothing hidden
        share = (oracle_auc - loo_auc) / (oracle_auc - observed_auc)
        print(f"{name:8} {protocol:26} {observed_auc:8.3f} {oracle_auc:7.3f} {loo_auc:6.3f} "
              f"{share:8.0%} {est_auc:9.3f}")


if __name__ == "__main__":
    main()
