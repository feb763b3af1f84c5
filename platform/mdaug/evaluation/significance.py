"""Tests and intervals that hold at small n: the exact paired sign-flip permutation test (all 2ⁿ sign
patterns; never p = 0, floor 2/2ⁿ two-sided), the paired t-test beside it, Holm's step-down adjustment, and a
hierarchical bootstrap over seeds × test images, so an interval covers both training randomness and which
test images happened to be drawn."""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy import stats

EXACT_UP_TO = 16  # seeds; beyond, 2¹⁶ random sign patterns (the observed one included)


def sign_flip_p(diff: np.ndarray, seed: int = 0) -> float:
    """Two-sided p of H0 'the paired differences are symmetric about 0': the share of sign patterns whose
    |mean| reaches the observed |mean| (the observed pattern counts, so p ≥ 2/2ⁿ > 0; all-zero → 1)."""
    d = np.asarray(diff, dtype=float)
    if len(d) == 0:
        return math.nan
    observed = abs(d.mean())
    if len(d) <= EXACT_UP_TO:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(d))))
    else:
        rng = np.random.default_rng(seed)
        signs = np.vstack([np.ones(len(d)), rng.choice((1.0, -1.0), size=(2**16 - 1, len(d)))])
    means = np.abs(signs @ d) / len(d)
    return float(np.mean(means >= observed - 1e-12 * max(1.0, observed)))


def t_test_p(diff: np.ndarray) -> float:
    """Two-sided paired t-test p; NaN where it is undefined (fewer than 2 values, or no variation and a
    nonzero mean) rather than a false 0; 1 when every difference is 0."""
    d = np.asarray(diff, dtype=float)
    if len(d) < 2:
        return math.nan
    if d.std(ddof=1) == 0:
        return 1.0 if np.all(d == 0) else math.nan
    return float(stats.ttest_1samp(d, 0.0).pvalue)


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error), in the input order; NaN stays NaN."""
    p = np.asarray(pvalues, dtype=float)
    valid = np.flatnonzero(~np.isnan(p))
    out = np.full(len(p), math.nan)
    m = len(valid)
    running = 0.0
    for rank, i in enumerate(valid[np.argsort(p[valid], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()


def bootstrap_means(correct: np.ndarray, draws: int = 2000, seed: int = 0) -> np.ndarray:
    """Hierarchical bootstrap of the mean of a (seeds, test images) matrix: each draw resamples seeds, then
    test images, with replacement (the same image draw for every seed, as the test set is shared). The draws'
    spread is widened by √(s / (s − 1)): resampling s seeds under-states their variance by that factor, which
    at 7–8 seeds would leave a nominal 95 % interval covering ~89 %."""
    c = np.asarray(correct, dtype=float)
    s, n = c.shape
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, s, size=(draws, s))
    images = rng.integers(0, n, size=(draws, n))
    # mean over resampled seeds and images = (seed counts) · C · (image counts) / (s · n)
    seed_w = np.stack([np.bincount(r, minlength=s) for r in seeds])
    image_w = np.stack([np.bincount(r, minlength=n) for r in images])
    means = np.einsum("bs,sn,bn->b", seed_w, c, image_w) / (s * n)
    return c.mean() + (means - c.mean()) * math.sqrt(s / (s - 1)) if s > 1 else means


def interval(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap samples."""
    lo, hi = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)
