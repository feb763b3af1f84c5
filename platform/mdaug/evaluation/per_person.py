"""Per-person gains with intervals, shrunk toward the mean gain. With a handful of test images per person a raw
per-person gain is mostly noise: a normal–normal empirical-Bayes model (method-of-moments between-person
variance τ², Morris's interval) says how much of the spread between persons is real. The persons are fixed; the
uncertainty is the test images' (pooled within persons) plus the generator replicates', which every person
shares."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from mdaug.evaluation.arms import REAL
from mdaug.evaluation.stats import paired_difference
from mdaug.evaluation.variance import crossed_estimate, unit_means


@dataclass(frozen=True)
class PersonGain:
    """One person's gain in points: raw (their test images' mean), shrunk, and the shrunk one's 95 % interval."""

    label: int
    images: int
    raw: float
    gain: float
    lo: float
    hi: float


@dataclass(frozen=True)
class PersonGains:
    persons: list[PersonGain]
    tau: float  # between-person standard deviation of the true gains (points); 0: no evidence persons differ
    mean: float  # the precision-weighted mean gain the persons are shrunk toward (points)

    def summary(self) -> str:
        if self.tau == 0:
            return (f"per person: indistinguishable (between-person sd τ estimated 0): each person's gain is the "
                    f"mean's, {self.mean:+.1f} points")
        up = sum(p.lo > 0 for p in self.persons)
        down = sum(p.hi < 0 for p in self.persons)
        return (f"per person (shrunk toward {self.mean:+.1f}): between-person sd τ = {self.tau:.1f} points; 95 % "
                f"interval above 0 for {up}, below 0 for {down} of {len(self.persons)} persons (intervals that "
                "cover 95 % on average over persons, not one test per person)")


def person_gains(diff: np.ndarray, units: list[int] | np.ndarray, labels: np.ndarray | list[int],
                 scale: float = 100.0) -> PersonGains:
    """diff: (runs, test images) paired differences (arm − comparator, 1/0 outcomes); units: each run's generator
    replicate; labels: each test image's person.

    A person's raw gain varies by their test images (pooled within persons), by the replicate × person
    interaction (each replicate draws its own k-subset per person) and by the replicates' common luck (shared
    with every person, from the crossed model); τ² is what the raw gains spread beyond the first two. The
    interval adds Morris's term for the uncertainty in the shrinkage and takes t with Satterthwaite's df."""
    d = np.asarray(diff, dtype=float)
    labels = np.asarray(labels)
    m = unit_means(d, units)[0]  # (replicates, images)
    persons, where = np.unique(labels, return_inverse=True)
    n = np.bincount(where)
    n_units, n_persons, n_images = m.shape[0], len(persons), m.shape[1]
    cell = np.stack([np.bincount(where, row) / n for row in m])  # (replicates, persons)
    raw = cell.mean(0)
    col = m.mean(0)
    dof_img = n_images - n_persons
    s2_img = float(((col - raw[where]) ** 2).sum()) / dof_img if dof_img > 0 else 0.0
    v = s2_img / n  # image noise of each person's mean (replicate × image noise included, / replicates)
    if n_units > 1 and n_persons > 1:  # replicate × person: the cells' interaction less its image noise
        inter = cell - cell.mean(1, keepdims=True) - raw[None, :] + raw.mean()
        ms = float((inter**2).sum()) / ((n_units - 1) * (n_persons - 1))
        s2_within = float(((m - cell[:, where]) ** 2).sum()) / (n_units * dof_img) if dof_img > 0 else 0.0
        v = v + max(0.0, ms - s2_within * float(np.mean(1 / n))) / n_units
    est = crossed_estimate(d, units, labels, scale=1.0)
    shared, df_shared = est.components.get("units", 0.0), max(1.0, est.units - 1.0)
    tau2 = max(0.0, float(raw.var(ddof=1)) - float(v.mean())) if n_persons > 1 else 0.0
    w = 1.0 / np.maximum(v + tau2, 1e-12)
    mu = float(np.sum(w * raw) / np.sum(w))
    b = np.where(v + tau2 > 0, v / np.maximum(v + tau2, 1e-12), 1.0)  # shrinkage toward mu
    shrunk = mu + (1 - b) * (raw - mu)
    morris = 2 / (n_persons - 3) * b**2 * (raw - mu) ** 2 if n_persons > 3 else 0.0
    own = (1 - b) * v + b**2 / np.sum(w) + morris
    total = own + shared
    df = total**2 / np.maximum(own**2 / max(dof_img, 1) + shared**2 / df_shared, 1e-300)
    half = special.stdtrit(df, 0.975) * np.sqrt(total)
    out = [PersonGain(int(p), int(k), float(r * scale), float(g * scale), float((g - h) * scale),
                      float((g + h) * scale)) for p, k, r, g, h in zip(persons, n, raw, shrunk, half, strict=True)]
    return PersonGains(out, math.sqrt(tau2) * scale, mu * scale)


def primary_person_gains(results: list, primary: str, labels: np.ndarray | list[int]
                         ) -> dict[tuple[str, int], PersonGains]:
    """(classifier, k) → the primary's per-person gains over `real`, from the runs' per-image outcomes
    (RunResult.correct), paired by (replicate, seed) as in stats.summarize."""
    by: dict[tuple[str, int, str], dict] = {}
    for r in results:
        by.setdefault((r.spec.arch, r.spec.k, r.spec.name), {})[r.spec.row] = r
    out = {}
    for (arch, k, name), runs in by.items():
        diff, units = paired_difference(runs, by.get((arch, k, REAL), {}))
        if name == primary and units:
            out[(arch, k)] = person_gains(diff, units, labels)
    return out
