"""CB-WCE confidence weights estimated from the observed labels alone (docs/methods.md
section 6).

The paper's weight of a zero is the probability that it is a true negative given the row's
positives (eq. 3), counted over the complete labels: an oracle. This module estimates the same
probability from the observed matrix only::

    w_ic = (1 - pi_i(c)) ** t_i

``pi_i`` is a distribution over the row's candidate entries (those that may hide a positive) of
"which class is a lost positive of this row", and ``t_i`` the number of draws of it that hold
``m_i`` distinct classes, ``m_i`` the expected number of positives the row lost
(:mod:`mlml_tf.labels.missing_counts`). ``pi`` comes from a mixture of multinomials over the
observed positive sets (fitted by EM, averaged over seeded restarts), shrunk to the class
frequency where the matrix holds little co-occurrence. The hyper-parameters below were chosen
on NUS-WIDE masks and a demo set that no reported number uses, and applied unchanged to COCO
(docs/methods.md section 6).

numpy only (with threadpoolctl, which scikit-learn brings, to hold BLAS to one thread: its
products are small, and the sums of a float32 product split over threads differ in the last
bits). Chance enters through the restarts of EM alone: the same matrix and seed give
byte-identical weights with the same numpy build, whatever the number of cores.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
from threadpoolctl import threadpool_limits

from mlml_tf.errors import DataError
from mlml_tf.labels.checks import UNKNOWN, check_partial_labels
from mlml_tf.labels.missing_counts import (
    RATIO_GRID,
    draws_for_expected_count,
    lost_with_negatives,
    lost_without_negatives,
)

#: Mixture components at most; fewer, the square root of the number of distinct observed
#: positive sets, on a small matrix.
N_COMPONENTS = 50
#: Seeded EM restarts averaged.
N_RESTARTS = 4
#: EM iterations per restart.
EM_ITERATIONS = 80
#: Additive (Dirichlet) smoothing of the components' label distributions.
PHI_SMOOTHING = 0.1
#: Pseudo-count of rows with two or more positives at which the mixture and the class frequency
#: get equal say.
PRIOR_MULTI_ROWS = 50.0
#: Floor of a row's expected number of lost positives: keeps the order within a row where the
#: fingerprint says it lost nothing.
MIN_MISSING = 1e-3
#: The estimator's version, recorded with the weights a run trains on.
VERSION = 2
#: A ratio interval wider than this: the matrix does not tell the ratio, and the weights'
#: level is a guess.
WIDE_INTERVAL = 0.3
#: How many positives the weights assume lost when the matrix cannot tell: "least", the
#: smallest count the observed labels are consistent with (no harm where nothing is missing),
#: or "expected", the likelihood-weighted mean over the ratios.
LEVELS = ("least", "expected")

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ConfidenceEstimate:
    """What :func:`estimate_confidence` returns.

    Attributes:
        weights: (n, C) float32 in [0, 1]: 0 on observed positives, 1 on annotated negatives,
            the estimated probability of a true negative on every candidate entry.
        ratio: the estimated missing ratio. Without annotated negatives, the paper's ``r``
            (each row lost round(r n_i) of its n_i positives), NaN when the matrix says nothing
            of it (every row has as many positives, as under single positive); with annotated
            negatives, the estimated fraction of the positives that are unknown (RPS's p).
        ratio_interval: (low, high), the ratios the matrix cannot tell apart; (r, r) with
            annotated negatives.
        missing_fraction: the fraction of all positives the weights assume missing.
        expected_missing: (n,) float64, the number of lost positives the weights assume for
            each row.
        mode: ``"hidden"`` (no annotated negative: every non-positive is a candidate) or
            ``"partial"`` (1/0/-1: only the unknown entries are).
        level: how the number of lost positives was set: ``"least"``, ``"expected"``,
            ``"given"`` (the caller's ratio) or ``"partial"`` (annotated negatives tell it).
    """

    weights: np.ndarray
    ratio: float
    ratio_interval: tuple[float, float]
    missing_fraction: float
    expected_missing: np.ndarray
    mode: str
    level: str = "least"


def _check(observed: np.ndarray, name: str = "observed") -> np.ndarray:
    labels = check_partial_labels(observed, name)
    if labels.shape[0] == 0:
        raise DataError(f"{name} has no row")
    if labels.shape[1] < 2:
        raise DataError(f"{name} has {labels.shape[1]} class(es); confidence weights need at "
                        "least 2")
    if not (labels == 1).any():
        raise DataError(f"{name} has no positive label at all: nothing to learn from")
    return labels


def _unique_rows(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``np.unique(arr, axis=0)`` with inverse and counts for small-integer rows, fast: each
    row's bit planes packed into one byte string."""
    planes = [np.packbits(arr == v, axis=1) for v in np.unique(arr)]
    keys = np.ascontiguousarray(np.concatenate(planes, axis=1))
    keys = keys.view(np.dtype((np.void, keys.shape[1]))).reshape(-1)
    _, first, inverse, counts = np.unique(keys, return_index=True, return_inverse=True,
                                          return_counts=True)
    return arr[first], inverse.reshape(-1), counts


def _normalise(scores: np.ndarray, cand: np.ndarray) -> np.ndarray:
    s = np.where(cand, np.maximum(scores, 1e-12), 0.0)
    total = s.sum(axis=1, keepdims=True)
    return np.divide(s, total, out=np.zeros_like(s), where=total > 0)


def _mixture_predictive(sets: np.ndarray, counts: np.ndarray, query: np.ndarray, seed: int,
                        negatives: np.ndarray | None = None,
                        labels_per_row: float = 1.0) -> np.ndarray:
    """Mean over seeded restarts of ``sum_z P(z | S) phi_zc / (1 - phi_z(S))`` for each query
    set S: the mixture's chance that one more label of the row is c.

    A mixture of multinomials (Nigam et al. 2000) fitted by EM on the distinct observed positive
    sets with their counts. A uniform subset of a row's labels is again a sample of its
    component's phi, so fitting on thinned rows does not bias phi. With ``negatives``
    (annotated negatives), P(z | S) also has the factor ``prod_c (1 - q_zc)`` over them, q_zc
    the chance that a row of z holds c. EM runs in float32.
    """
    # More components than the square root of the distinct sets overfit a small matrix.
    k = min(N_COMPONENTS, max(1, int(round(np.sqrt(len(sets))))))
    x = sets.astype(np.float32)
    w = counts.astype(np.float32)[:, None]
    q = query.astype(np.float32)
    out = np.zeros(query.shape, dtype=np.float64)
    for child in np.random.SeedSequence(seed).spawn(N_RESTARTS):
        resp = np.random.default_rng(child).dirichlet(np.ones(k), size=len(x)).astype(np.float32)
        for _ in range(EM_ITERATIONS):
            weighted = resp * w
            phi = weighted.T @ x + np.float32(PHI_SMOOTHING)
            phi /= phi.sum(axis=1, keepdims=True)
            theta = weighted.sum(axis=0) + np.float32(1.0)
            theta /= theta.sum()
            log_lik = x @ np.log(phi).T
            log_lik += np.log(theta)
            log_lik -= log_lik.max(axis=1, keepdims=True)
            resp = np.exp(log_lik, out=log_lik)
            resp /= resp.sum(axis=1, keepdims=True)
        log_post = q @ np.log(phi).T + np.log(theta)
        if negatives is not None:
            absent = np.maximum((1.0 - phi) ** np.float32(labels_per_row), 1e-6)
            log_post += negatives.astype(np.float32) @ np.log(absent).T
        log_post -= log_post.max(axis=1, keepdims=True)
        post = np.exp(log_post)
        post /= post.sum(axis=1, keepdims=True)
        seen = q @ phi.T  # each component's mass on the set's own labels
        out += (post / np.maximum(1.0 - seen, 1e-3)) @ phi
    return out / N_RESTARTS


def estimate_confidence(observed: np.ndarray, *, seed: int = 0, level: str = "least",
                        ratio: float | None = None) -> ConfidenceEstimate:
    """CB-WCE negative weights and the missing ratio, estimated from an observed label matrix.

    Args:
        observed: (n, C) array. 1/0: 1 an observed positive, 0 "negative or missing" (the
            paper's setting). 1/0/-1: 1 positive, 0 annotated negative (keeps weight 1), -1
            unknown (estimated). A 1/-1 matrix is read as a 1/0 one.
        seed: seed of the EM restarts; the same matrix and seed give byte-identical weights.
        level: without annotated negatives, how many positives each row is assumed to have
            lost: ``"least"`` (default), the fewest the histogram of positives per row cannot
            rule out, so that complete labels train as with cross-entropy; ``"expected"``, the
            mean over the ratios weighted by how well each explains the histogram (more
            where the histogram cannot tell, as under single positive). Where the histogram
            tells the ratio (the paper's r = 0.25 and 0.5 on COCO and NUS-WIDE) the two agree.
        ratio: the paper's ratio when it is known (a 1/0 matrix only); by default estimated.

    Returns:
        A :class:`ConfidenceEstimate`: the weights, the ratio estimate and its interval, the
        expected number of lost positives per row and the mode.

    Raises:
        DataError: naming ``observed``: not 2-D, no row, fewer than 2 classes, a value other
            than 1, 0 or -1 (NaN included), or no positive at all; naming ``level`` or
            ``ratio``: not one of :data:`LEVELS`, not in [0, 0.9], or a ratio given with
            annotated negatives.

    Example:
        >>> y = np.array([[1, 1, 0, 0]] * 30 + [[1, -1, 0, -1]] * 10 + [[0, 0, 1, 1]] * 30)
        >>> est = estimate_confidence(y, seed=0)
        >>> est.mode, [round(float(v), 2) for v in est.weights[30]]  # the annotated 0 keeps 1
        ('partial', [0.0, 0.23, 1.0, 0.77])
    """
    labels = _check(observed)
    if level not in LEVELS:
        raise DataError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
    partial = bool((labels == UNKNOWN).any() and (labels == 0).any())
    if ratio is not None:
        if partial:
            raise DataError("ratio is the paper's protocol's, for a 1/0 matrix; with annotated "
                            "negatives (1/0/-1) the unknown entries tell how many are missing")
        if not 0.0 <= float(ratio) <= float(RATIO_GRID[-1]):
            raise DataError(f"ratio must be in [0, {RATIO_GRID[-1]}], got {ratio}")
    with threadpool_limits(limits=1, user_api="blas"):
        return _estimate(labels, seed, partial, level, ratio)


def _estimate(labels: np.ndarray, seed: int, partial: bool, level: str,
              given: float | None) -> ConfidenceEstimate:
    # A row's weights depend on nothing but the row: work on the distinct rows.
    rows, inverse, counts = _unique_rows(labels)
    counts = counts.astype(np.float64)
    pos = (rows == 1).astype(np.float64)
    cand = (rows == UNKNOWN) if partial else (rows != 1)
    k = pos.sum(axis=1).astype(np.int64)

    # How many positives each row lost.
    if partial:
        known = (rows != UNKNOWN).sum(axis=1).astype(np.int64)
        missing, ratio, interval = lost_with_negatives(k, known, labels.shape[1])
        level = "partial"
    else:
        profile = lost_without_negatives((labels == 1).sum(axis=1), given)
        ratio, interval = profile.ratio, profile.interval
        level = "given" if given is not None else level
        table = profile.lost if level == "expected" else profile.least
        # Where the level is (near) nothing, rows still compare as the weighted mean says.
        shape = profile.lost / max(float(profile.lost.max()), 1e-12)
        missing = np.maximum(table[k], MIN_MISSING * shape[k])
    missing = np.maximum(missing, MIN_MISSING * MIN_MISSING)
    missing_fraction = float(counts @ missing / (counts @ missing + counts @ k))
    if interval[1] - interval[0] > WIDE_INTERVAL:
        log.warning("the observed labels do not tell how many positives are missing (ratios "
                    "%.2f to %.2f fit alike): the confidence weights assume %.0f %% of the "
                    "positives missing (level %r; pass the ratio if you know it; "
                    "docs/methods.md section 6)", *interval, 100 * missing_fraction, level)

    # Which classes they were.
    sets, set_inverse, _ = _unique_rows(pos.astype(np.int8))
    set_counts = np.bincount(set_inverse, weights=counts)
    fit = sets.sum(axis=1) > 0
    freq = counts @ pos + 1.0
    freq /= freq.sum()
    if partial:
        per_row = float(counts @ (k + missing) / counts.sum())
        scores = _mixture_predictive(sets[fit], set_counts[fit], pos, seed, rows == 0, per_row)
    else:
        scores = _mixture_predictive(sets[fit], set_counts[fit], sets, seed)[set_inverse]
    # Little co-occurrence to learn from (none under single positive): lean on the frequency.
    multi = float(counts[k >= 2].sum())
    trust = multi / (multi + PRIOR_MULTI_ROWS)
    scores = (trust * _normalise(scores, cand)
              + (1.0 - trust) * _normalise(np.broadcast_to(freq, cand.shape), cand))
    pi = _normalise(scores, cand)

    weights = np.ones(rows.shape, dtype=np.float64)
    draws = draws_for_expected_count(pi, missing)
    weights[cand] = ((1.0 - np.clip(pi, 0.0, 1.0)) ** draws[:, None])[cand]
    weights[pos > 0] = 0.0
    return ConfidenceEstimate(
        weights=weights[inverse].astype(np.float32),
        ratio=ratio,
        ratio_interval=interval,
        missing_fraction=missing_fraction,
        expected_missing=missing[inverse],
        mode="partial" if partial else "hidden",
        level=level,
    )


def estimated_confidence_weights(observed: np.ndarray, *, seed: int = 0, level: str = "least",
                                 ratio: float | None = None) -> np.ndarray:
    """CB-WCE negative weights estimated from the observed labels alone (docs/methods.md
    section 6).

    Args:
        observed: (n, C) 1/0 or 1/0/-1 label matrix (see :func:`estimate_confidence`).
        seed: seed of the EM restarts.
        level, ratio: how many positives the rows are assumed to have lost (see
            :func:`estimate_confidence`).

    Returns:
        (n, C) float32 in [0, 1]: 0 on observed positives, 1 on annotated negatives, the
        estimated probability of a true negative elsewhere.

    Example:
        >>> y = np.array([[1, 1, 0, 0]] * 30 + [[1, 0, 0, 0]] * 10 + [[0, 0, 1, 1]] * 30
        ...              + [[0, 0, 1, 0]] * 10)
        >>> w = estimated_confidence_weights(y, seed=0)
        >>> w.shape, w.dtype.name, float(w[30, 0])
        ((80, 4), 'float32', 0.0)
        >>> bool(w[30, 1] < w[30, 2])   # class 1 goes with class 0: more likely a lost positive
        True
    """
    return estimate_confidence(observed, seed=seed, level=level, ratio=ratio).weights
