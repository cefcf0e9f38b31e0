"""How many positives each row of an observed label matrix lost, read from the matrix alone
(docs/methods.md section 6).

Two cases, by whether the matrix annotates negatives:

- none annotated (1/0, or 1/-1): the paper's protocol keeps ``k = n - round(r n)`` of a row's
  ``n`` positives, which leaves a fingerprint in the histogram of ``k`` (numpy's half-to-even
  rounding merges some values of ``n`` into one ``k``, never others). A smooth prior on ``n`` is
  fitted to the histogram for every ratio of a grid; the likelihoods, tempered by how badly the
  best of them fits, weigh the ratios (:func:`lost_without_negatives`);
- annotated negatives (1/0/-1): when the unknown entries are a random subset of the row (RPS),
  the positives among a row's ``K`` known entries are hypergeometric; an empirical-Bayes prior
  over the number of positives is fitted by EM (:func:`lost_with_negatives`).

Then :func:`draws_for_expected_count` turns each row's expected number of lost positives into
the number of draws of its "which class is missing" distribution that hold that many distinct
classes.
"""

from __future__ import annotations

import dataclasses

import numpy as np

#: Ratio grid of the fingerprint.
RATIO_GRID = np.round(np.arange(0.0, 0.91, 0.01), 2)
#: Log-likelihood drop that bounds the reported ratio interval (about a 95% profile interval).
RATIO_INTERVAL_DROP = 2.0
#: The drop within which "nothing is missing" (ratio 0) stays in the interval: a likelihood-ratio
#: test at about p = 6e-5 (chi-square 16 on one degree of freedom). Wrongly ruling out complete
#: labels is the costly error, and a two-parameter prior misfits narrow histograms (the demo's 3
#: to 6 labels per row) by up to 6.3 at ratio 0, where hidden positives that the histogram does
#: show cost 18 and more (docs/methods.md section 6).
NOTHING_MISSING_DROP = 8.0
#: Newton steps of the prior fit, EM steps of the empirical-Bayes prior.
PRIOR_STEPS, EMPIRICAL_BAYES_STEPS = 25, 300


def kept_positives(n: np.ndarray, ratio: float) -> np.ndarray:
    """Positives the paper's protocol keeps of ``n``: ``n - round(ratio n)``, half to even
    (docs/original.md section 3)."""
    return n - np.round(ratio * n).astype(np.int64)


def _fit_size_prior(hist: np.ndarray, ratio: float) -> tuple[float, np.ndarray]:
    """Best prior P(n) ~ exp(a n + b log n) on n >= n0 explaining the histogram of k under
    ``ratio``, by Newton's method for every cut-off n0 at once: (log-likelihood, P(n) over
    0..n_max)."""
    k_max = len(hist) - 1
    n_max = int(np.ceil((k_max + 2) / (1.0 - ratio))) + 5
    n = np.arange(n_max + 1)
    seen = np.flatnonzero(hist)
    match = (kept_positives(n, ratio)[:, None] == seen[None, :]).astype(np.float64)
    if not match.any(axis=0).all():
        return -np.inf, np.zeros(n_max + 1)
    counts = hist[seen].astype(np.float64)
    total = counts.sum()
    raw = np.stack([n, np.log(np.maximum(n, 1))], axis=1).astype(np.float64)
    # Cut-offs up to the largest n that still reaches the smallest observed k.
    cuts = np.arange(int(np.flatnonzero(match[:, 0]).max()) + 1)
    support = n[None, :] >= cuts[:, None]
    # Features standardised over each cut-off's support keep Newton's steps well scaled.
    size = support.sum(axis=1)[:, None]
    mu = (support.astype(np.float64) @ raw) / size
    sd = np.sqrt(np.maximum((support.astype(np.float64) @ raw**2) / size - mu**2, 0.0)) + 1e-9
    feats = (raw[None, :, :] - mu[:, None, :]) / sd[:, None, :]
    theta = np.zeros((len(cuts), 2))

    def prior() -> np.ndarray:
        lp = np.where(support, np.einsum("bnj,bj->bn", feats, theta), -np.inf)
        p = np.exp(lp - lp.max(axis=1, keepdims=True))
        return p / p.sum(axis=1, keepdims=True)

    for _ in range(PRIOR_STEPS):
        p = prior()
        pk = np.maximum(p @ match, 1e-300)
        expected = p * ((counts / pk) @ match.T)
        grad = np.einsum("bn,bnj->bj", expected - total * p, feats)
        mean = np.einsum("bn,bnj->bj", p, feats)
        cov = np.einsum("bn,bni,bnj->bij", p, feats, feats) - mean[:, :, None] * mean[:, None, :]
        hess = -total * cov - 1e-6 * np.eye(2)
        theta -= np.clip(np.linalg.solve(hess, grad[:, :, None])[:, :, 0], -5.0, 5.0)
    p = prior()
    ll = np.log(np.maximum(p @ match, 1e-300)) @ counts
    best = int(np.argmax(ll))
    return float(ll[best]), p[best]


def _lost_table(prior: np.ndarray, ratio: float, k_max: int) -> np.ndarray:
    """``lost[k] = E[n - k | k]`` under ``ratio`` and the prior P(n) over 0..len(prior)-1."""
    n = np.arange(len(prior))
    kept = kept_positives(n, ratio)
    lost = np.zeros(k_max + 1)
    for kk in range(k_max + 1):
        p = prior * (kept == kk)
        if p.sum() > 0:
            lost[kk] = float(p @ (n - kk)) / p.sum()
    return lost


def _dispersion(hist: np.ndarray, prior: np.ndarray, ratio: float) -> float:
    """How much worse than sampling noise the best fit explains the histogram: the deviance
    over its degrees of freedom (cells seen, less one, less the prior's three parameters), at
    least 1. Real label counts are not drawn from a two-parameter family; dividing the
    log-likelihoods by this (quasi-likelihood, McCullagh & Nelder 1989) keeps that misfit from
    passing for evidence about the ratio."""
    n = np.arange(len(prior))
    kept = kept_positives(n, ratio)
    expected = np.bincount(kept[kept >= 0], weights=prior[kept >= 0], minlength=len(hist))
    expected = expected[: len(hist)] * hist.sum()
    seen = hist > 0
    observed = hist[seen].astype(np.float64)
    deviance = 2.0 * float(observed @ np.log(observed / np.maximum(expected[seen], 1e-300)))
    deviance -= 2.0 * float(observed.sum() - expected.sum())
    return max(1.0, deviance / max(int(seen.sum()) - 4, 1))


@dataclasses.dataclass(frozen=True)
class RatioProfile:
    """What the histogram of observed positives per row says of the paper's ratio.

    Attributes:
        lost: ``lost[k]``, the expected number of positives lost by a row with ``k`` observed
            ones, averaged over the ratio grid weighted by the (tempered) likelihood.
        least: the same at the smallest ratio the histogram cannot rule out (``interval[0]``):
            the least that is missing, given the labels.
        ratio: the weighted mean ratio; NaN when every row has the same ``k`` (every ratio
            explains that alike).
        interval: the ratios within a tempered log-likelihood drop of
            :data:`RATIO_INTERVAL_DROP` of the best, and 0 where it is within
            :data:`NOTHING_MISSING_DROP`.
        dispersion: the factor the log-likelihoods were divided by (:func:`_dispersion`).
    """

    lost: np.ndarray
    least: np.ndarray
    ratio: float
    interval: tuple[float, float]
    dispersion: float


def lost_without_negatives(k: np.ndarray, ratio: float | None = None) -> RatioProfile:
    """Expected positives lost by a row given its ``k`` observed ones, under the paper's
    protocol at an unknown ratio (or at ``ratio`` when it is known).

    Args:
        k: (rows,) observed positives per row.
        ratio: the protocol's ratio when the caller knows it; by default estimated.
    """
    hist = np.bincount(k)
    k_max = len(hist) - 1
    if ratio is not None:
        _, prior = _fit_size_prior(hist, float(ratio))
        if not prior.any():
            raise ValueError(f"no row count of positives fits a ratio of {ratio}")
        lost = _lost_table(prior, float(ratio), k_max)
        return RatioProfile(lost, lost, float(ratio), (float(ratio), float(ratio)), 1.0)
    fits = [_fit_size_prior(hist, float(r)) for r in RATIO_GRID]
    ll = np.array([f[0] for f in fits])
    best = int(np.argmax(ll))
    dispersion = _dispersion(hist, fits[best][1], float(RATIO_GRID[best]))
    ll = (ll - ll[best]) / dispersion
    post = np.exp(ll)
    post /= post.sum()
    inside = np.flatnonzero(ll >= -RATIO_INTERVAL_DROP)
    if ll[0] >= -NOTHING_MISSING_DROP:
        inside = np.union1d(inside, [0])
    lost = np.zeros(k_max + 1)
    for weight, (_, prior), r in zip(post, fits, RATIO_GRID, strict=True):
        if weight >= 1e-12:
            lost += weight * _lost_table(prior, float(r), k_max)
    low = int(inside.min())
    least = _lost_table(fits[low][1], float(RATIO_GRID[low]), k_max)
    estimate = float(post @ RATIO_GRID) if len(np.flatnonzero(hist)) >= 2 else float("nan")
    interval = (float(RATIO_GRID[low]), float(RATIO_GRID[inside.max()]))
    return RatioProfile(lost, least, estimate, interval, dispersion)


def _log_choose(n: np.ndarray, k: np.ndarray, log_fact: np.ndarray) -> np.ndarray:
    ok = (k >= 0) & (k <= n)
    nn, kk = np.where(ok, n, 0), np.where(ok, k, 0)
    return np.where(ok, log_fact[nn] - log_fact[kk] - log_fact[nn - kk], -np.inf)


def lost_with_negatives(
    k: np.ndarray, known: np.ndarray, n_classes: int
) -> tuple[np.ndarray, float, tuple[float, float]]:
    """Expected positives lost by each row given ``k`` positives among its ``known`` annotated
    entries, the unknown entries a random subset of the row.

    Returns:
        ``(lost, ratio, (ratio, ratio))``: per row the expected number of positives among its
        unknown entries, and the estimated fraction of all positives that are unknown.
    """
    log_fact = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n_classes + 1)))])
    pairs, inverse, mult = np.unique(
        np.stack([k, known], axis=1), axis=0, return_inverse=True, return_counts=True
    )
    n = np.arange(n_classes + 1)[None, :]
    kk, kn = pairs[:, :1], pairs[:, 1:]
    log_lik = (
        _log_choose(n, kk, log_fact)
        + _log_choose(n_classes - n, kn - kk, log_fact)
        - _log_choose(np.full_like(kn, n_classes), kn, log_fact)
    )
    lik = np.exp(log_lik - log_lik.max(axis=1, keepdims=True))
    prior = np.full(n_classes + 1, 1.0 / (n_classes + 1))
    for _ in range(EMPIRICAL_BAYES_STEPS):
        post = lik * prior
        post /= post.sum(axis=1, keepdims=True)
        prior = mult @ post + 1e-3
        prior /= prior.sum()
    post = lik * prior
    post /= post.sum(axis=1, keepdims=True)
    lost = ((post @ n[0]) - pairs[:, 0])[inverse.reshape(-1)]
    ratio = float(lost.sum() / (lost.sum() + k.sum()))
    return lost, ratio, (ratio, ratio)


def draws_for_expected_count(pi: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """Per row the ``t`` with ``sum_c 1 - (1 - pi_c) ** t = m``: the lost positives are
    distinct classes, so ``t >= m`` draws of ``pi`` hold ``m`` classes on average.

    Args:
        pi: (rows, C) per row a distribution over the classes that may be missing.
        missing: (rows,) the expected number of lost positives.
    """
    q = np.clip(pi, 0.0, 1.0 - 1e-12)
    log_keep = np.log1p(-q)
    support = (q > 0).sum(axis=1)
    target = np.maximum(np.minimum(missing, support - 1e-6), 0.0)
    low, high = target.copy(), target + 1.0

    def held(t: np.ndarray) -> np.ndarray:
        return (1.0 - np.exp(log_keep * t[:, None])).sum(axis=1)

    # Grow the upper end until it holds enough classes, then bisect (held grows with t).
    for _ in range(60):
        short = held(high) < target
        if not short.any():
            break
        high = np.where(short, high * 2.0, high)
    for _ in range(40):
        mid = 0.5 * (low + high)
        below = held(mid) < target
        low, high = np.where(below, mid, low), np.where(below, high, mid)
    return 0.5 * (low + high)
