"""Tests that hold at small n: the exact paired sign-flip permutation test (all 2ⁿ sign patterns; never p = 0,
floor 2/2ⁿ two-sided) — the evaluation's conditional secondary test — and Holm's step-down adjustment. The
primary test and its interval: variance.py."""

from __future__ import annotations

import itertools
import math

import numpy as np

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
