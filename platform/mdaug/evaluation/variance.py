"""One estimand, one variance: the mean paired gain of an arm over its comparator, with its standard error, CI,
p, probability of improvement and minimum detectable effect all from one model, so the decision and the
interval answer the same question.

The estimand of `crossed_estimate`: the mean gain over generator replicates (each draws its k-subset, DiT seed,
generated images and classifier seeds) and over test images of these persons (the persons are fixed; the
images within a person are the random draw). The data: D[r, i] = correct_arm[r, i] − correct_comparator[r, i],
paired (same replicate = same k-subset, generator and classifier seed for both arms). Replicates that share a
generator are averaged into one unit first; units and images are crossed random factors, so the variance of
the grand mean is (MS_units + MS_images − MS_residual) / (U·N) with Satterthwaite's df, and images vary within
persons only (the mean squares are taken within strata). The sign-flip p over seeds (significance.py) is a
different, conditional estimand: it holds the generator and the test images fixed."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import special

POWER = 0.8  # the minimum detectable effect is at 80 % power


@dataclass(frozen=True)
class Estimate:
    """A mean gain and everything one t(df) says about it; mean, se, lo, hi and mde in D's units × scale."""

    mean: float
    se: float
    df: float
    lo: float  # (1 − alpha) CI
    hi: float
    p: float  # two-sided, H0: gain = 0, from the same t(df) as the CI
    p_improve: float  # share of units whose mean gain is > 0, ties ½ (Bouthillier et al. 2021)
    mde: float  # (t_{1−α/2,df} + t_{0.8,df}) · se: the gain a new run of this size detects 80 % of the time
    units: int
    images: int
    components: dict[str, float] = field(default_factory=dict)  # contributions to se², (D units × scale)²
    method: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def crossed_estimate(diff: np.ndarray, units: np.ndarray | list[int] | None = None,
                     strata: np.ndarray | list[int] | None = None, fresh_test: bool = False,
                     alpha: float = 0.05, scale: float = 100.0) -> Estimate:
    """The mean of a (replicates, test images) gain matrix with a crossed units × images variance.

    units: one generator id per replicate row (rows with one id are averaged first); None = each row its own
    unit. strata: one person id per image column; the image variance is then estimated within persons.
    fresh_test: every unit had its own fresh test set, so images are nested in units and the variance is the
    between-unit variance of unit means (df U − 1).
    Degenerate cases, named in `method`: one unit with several rows → the rows are the units (generator
    variance not estimated); one row → test images only (training variance not estimated); one image → units
    only; a variance component estimated below 0 → truncated at 0 (its terms leave the sum and the df); no
    variation at all → se = 0 and p = 1 if the mean is 0 (else NaN), df and mde NaN."""
    d = _matrix(diff)
    _check_level(alpha, "alpha")
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive number (100 for points); got {scale}")
    unit_ids = _ids(units, d.shape[0], "units", "replicate row", "one generator id per row of diff")
    strata_ids = _ids(strata, d.shape[1], "strata", "test image column", "one person id per column of diff")
    m, notes = _unit_means(d, unit_ids)
    gains = m.mean(1)
    if fresh_test and not notes:
        var = float(gains.var(ddof=1)) / len(gains)
        return _estimate(float(gains.mean()), var, len(gains) - 1.0, gains, d.shape[1], {"units": var},
                         "nested: a fresh test set per unit (between-unit variance, df U−1)", notes, alpha, scale)
    if fresh_test:
        notes.append("fresh_test ignored: one unit, so one test set")
    var, df, components, truncated = _crossed_variance(m, strata_ids, None if notes else _seed_floor(d, unit_ids))
    notes += truncated
    method = "crossed units × images (Satterthwaite df)" + (", person-stratified" if strata is not None else "")
    return _estimate(float(m.mean()), var, df, gains, d.shape[1], components, method, notes, alpha, scale)


def nadeau_bengio(gains: np.ndarray | list[float], n_train: int, n_test: int, alpha: float = 0.05,
                  scale: float = 1.0) -> Estimate:
    """Corrected resampled t (Nadeau & Bengio 2003) for J gains from repeated random train/test splits of one
    data set: the splits overlap, so the variance of the mean is (1/J + n_test/n_train) · s², df J − 1."""
    g = np.asarray(gains, dtype=float)
    if g.ndim != 1 or len(g) < 2:
        raise ValueError(f"gains must be one value per split, at least 2 splits; got shape {g.shape}")
    if not np.all(np.isfinite(g)):
        raise ValueError(f"gains has non-finite values at splits {np.flatnonzero(~np.isfinite(g)).tolist()}")
    if n_train < 1 or n_test < 1:
        raise ValueError(f"n_train and n_test must be the split sizes (≥ 1); got {n_train}, {n_test}")
    s2 = float(g.var(ddof=1))
    components = {"splits": s2 / len(g), "overlap": s2 * n_test / n_train}
    return _estimate(float(g.mean()), sum(components.values()), len(g) - 1.0, g, n_test, components,
                     f"Nadeau–Bengio corrected resampled t ({len(g)} splits, n_test/n_train={n_test / n_train:.3g})",
                     [], alpha, scale)


def tost_p(est: Estimate, margin: float) -> float:
    """The two one-sided tests' p for |gain| < margin (margin in the estimate's units): the larger of the two
    one-sided p's, on the estimate's t(df)."""
    if not (math.isfinite(margin) and margin > 0):
        raise ValueError(f"margin must be a positive number in the estimate's units (points); got {margin}")
    if est.se == 0:
        return 0.0 if abs(est.mean) < margin else 1.0
    above_lower = special.stdtr(est.df, -(est.mean + margin) / est.se)  # H0: gain ≤ −margin
    below_upper = special.stdtr(est.df, (est.mean - margin) / est.se)  # H0: gain ≥ +margin
    return float(max(above_lower, below_upper))


def equivalence(est: Estimate, margin: float, alpha: float = 0.05) -> str:
    """'equivalent' when TOST rejects at alpha (the 1 − 2α CI lies inside ±margin), else 'not equivalent'."""
    _check_level(alpha, "alpha")
    return "equivalent" if tost_p(est, margin) < alpha else "not equivalent"


def status(est: Estimate, p_adj: float, margin: float, alpha: float = 0.05) -> str:
    """Exactly one of 'gain', 'loss' (p_adj < alpha, by the sign of the mean), 'equivalent' (TOST at alpha
    within ±margin), 'inconclusive'. p_adj is the estimate's p after the family's adjustment (e.g. Holm)."""
    _check_level(alpha, "alpha")
    if p_adj < alpha and est.mean != 0:
        return "gain" if est.mean > 0 else "loss"
    return "equivalent" if equivalence(est, margin, alpha) == "equivalent" else "inconclusive"


def _seed_floor(d: np.ndarray, unit_ids: np.ndarray | None) -> tuple[float, float, float, float] | None:
    """The classifier seeds' share of Var(grand mean), from the rows within each unit: (MS_rows term, its df,
    MS_row×image term, its df), each already divided as the grand mean divides them; None without two units of
    which one has several rows. It floors the unit term: a unit mean varies at least as its seeds do."""
    if unit_ids is None:
        return None
    cell, codes, rows = unit_means(d, unit_ids)  # (units, images)
    if len(rows) < 2 or rows.max() < 2:
        return None
    n_images = d.shape[1]
    row_mean, unit_mean = d.mean(1), cell.mean(1)
    df_r = float(np.sum(rows - 1))
    ms_r = n_images * float(np.sum((row_mean - unit_mean[codes]) ** 2)) / df_r
    resid = d - cell[codes] - row_mean[:, None] + unit_mean[codes][:, None]
    df_e = df_r * (n_images - 1)
    ms_e = float(np.sum(resid**2)) / df_e if df_e > 0 else 0.0
    per = float(np.sum(1.0 / rows)) / len(rows) ** 2 / n_images  # Var of the mean of unit means per σ² of a row
    return ms_r * per, df_r, ms_e * per, df_e


def _crossed_variance(m: np.ndarray, strata: np.ndarray | None, floor: tuple[float, float, float, float] | None
                      ) -> tuple[float, float, dict[str, float], list[str]]:
    """Var(grand mean) of a (units, images) matrix, its Satterthwaite df, the components and notes on the
    components truncated at 0 or floored by the seeds' variance; the mean squares are taken within strata.

    Var = c + unit + max(b − c, 0), with a, b, c the units', images' and residual mean squares divided by U·N,
    f the seeds' floor (_seed_floor) and unit = a − c when a − c ≥ f, else a − c pooled with f by df: a − c
    estimates the generators' variance plus the seeds', f the seeds' alone, so a − c < f is evidence of no
    generator variance, and then both estimate the same thing (a sometimes-pool rule, Bancroft 1944). With few
    units a rests on U − 1 df and often falls below c by chance: dropping the unit term then left the seeds'
    variance out (2 replicates × 4 seeds covered 88 % on an A/A-like null). Truncating at max(a − c, f)
    instead over-covers (97.2 % in tests/test_variance.py's homogeneous scenario)."""
    n_units, n_images = m.shape
    codes = np.zeros(n_images, dtype=int) if strata is None else np.unique(strata, return_inverse=True)[1]
    counts = np.bincount(codes)
    df_u, df_i = n_units - 1, n_images - len(counts)
    if df_i == 0 and n_images > 1:
        raise ValueError(f"strata: all {n_images} test images are in a stratum of their own, so the image "
                         "variance cannot be estimated within persons; pass strata=None or fewer, larger strata")
    col = m.mean(0)
    stratum_mean = np.bincount(codes, col) / counts
    scale = n_units * n_images
    a = n_images * float(m.mean(1).var(ddof=1)) / scale if df_u > 0 else 0.0  # MS_units / (U·N)
    b = n_units * float(np.sum((col - stratum_mean[codes]) ** 2)) / df_i / scale if df_i > 0 else 0.0
    if df_u == 0:
        return b, float(df_i), {"images": b}, []
    if df_i == 0:
        return a, float(df_u), {"units": a}, ["one test image: unit variance only"]
    onehot = np.zeros((n_images, len(counts)))
    onehot[np.arange(n_images), codes] = 1.0
    cell = (m @ onehot) / counts  # (units, strata) means
    resid = m - cell[:, codes] - col[None, :] + stratum_mean[codes][None, :]
    c = float(np.sum(resid**2)) / (df_u * df_i) / scale  # MS_residual / (U·N)
    ms_r, df_r, ms_e, df_e = floor or (0.0, 1.0, 0.0, 1.0)
    f = ms_r - ms_e
    coef = {"a": 0.0, "b": 0.0, "c": 1.0, "r": 0.0, "e": 0.0}  # var = Σ coef · mean square (c: the base)
    notes = []
    if a - c >= f and a > c:
        coef["a"], coef["c"] = 1.0, coef["c"] - 1.0
        unit = a - c
    elif f > 0:  # pooled with the seeds' estimate, weighted by df (the unit term alone is on U − 1 df)
        w = df_u / (df_u + df_r)
        unit = max(w * (a - c) + (1 - w) * f, 0.0)
        if unit > 0:
            coef.update(a=w, c=coef["c"] - w, r=1 - w, e=-(1 - w))
        notes.append("unit variance estimated below the classifier seeds' own: pooled with it")
    else:
        unit = 0.0
        notes.append("unit variance estimated ≤ 0, set to 0")
    if b > c:
        coef["b"], coef["c"] = 1.0, coef["c"] - 1.0
    else:
        notes.append("image variance estimated ≤ 0, set to 0")
    values = {"a": (a, df_u), "b": (b, df_i), "c": (c, df_u * df_i), "r": (ms_r, df_r), "e": (ms_e, df_e)}
    terms = [(coef[k] * v, df) for k, (v, df) in values.items() if coef[k]]
    var = sum(t for t, _ in terms)
    components = {"units": unit, "images": max(b - c, 0.0), "residual": c}
    denominator = sum(t**2 / df for t, df in terms)
    return var, (var**2 / denominator if denominator > 0 else math.nan), components, notes


def _estimate(mean: float, var: float, df: float, unit_gains: np.ndarray, images: int,
              components: dict[str, float], method: str, notes: list[str], alpha: float, scale: float) -> Estimate:
    """The t(df) summary of a mean with this variance, all in D's units × scale."""
    var = max(var, 0.0)
    se = math.sqrt(var) * scale
    mean *= scale
    if se == 0:
        notes = [*notes, "no variation: se 0"]
        p, df, half, mde = (1.0 if mean == 0 else math.nan), math.nan, 0.0, math.nan
    else:
        p = float(2 * special.stdtr(df, -abs(mean) / se))  # stdtr / stdtrit: Student t's cdf and quantile
        half = float(special.stdtrit(df, 1 - alpha / 2)) * se
        mde = float(special.stdtrit(df, 1 - alpha / 2) + special.stdtrit(df, POWER)) * se
    improve = float(np.mean((unit_gains > 0) + 0.5 * (unit_gains == 0)))
    return Estimate(mean, se, float(df), mean - half, mean + half, p, improve, mde, len(unit_gains), images,
                    {k: v * scale**2 for k, v in components.items()}, "; ".join([method, *notes]))


def _unit_means(d: np.ndarray, unit_ids: np.ndarray | None) -> tuple[np.ndarray, list[str]]:
    """Rows averaged within units; with one unit and several rows, the rows themselves (said in a note)."""
    if d.shape[0] == 1:
        return d, ["one replicate: test-image variance only (training variance not estimated)"]
    if unit_ids is None:
        return d, []
    if len(np.unique(unit_ids)) == 1:
        return d, [f"one generator replicate: its {d.shape[0]} rows taken as units (generator variance not estimated)"]
    return unit_means(d, unit_ids)[0], []


def unit_means(d: np.ndarray, unit_ids: np.ndarray | list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows of d averaged within units: (units, columns) means, each row's unit index and each unit's row
    count."""
    codes = np.unique(np.asarray(unit_ids), return_inverse=True)[1]
    rows = np.bincount(codes)
    m = np.zeros((len(rows), d.shape[1]))
    np.add.at(m, codes, d)
    return m / rows[:, None], codes, rows


def _matrix(diff: np.ndarray) -> np.ndarray:
    d = np.asarray(diff, dtype=float)
    if d.ndim != 2 or d.size == 0:
        raise ValueError(f"diff must be a non-empty (replicates, test images) matrix of paired differences; "
                         f"got shape {d.shape}")
    if d.shape == (1, 1):
        raise ValueError("diff is one replicate of one test image: no variance can be estimated; "
                         "evaluate more test images or replicates")
    bad = np.argwhere(~np.isfinite(d))
    if len(bad):
        raise ValueError(f"diff has {len(bad)} non-finite entries (first at replicate {bad[0][0]}, image "
                         f"{bad[0][1]}); every (replicate, image) pair needs both arms' correctness")
    return d


def _ids(ids: np.ndarray | list[int] | None, n: int, name: str, what: str, fix: str) -> np.ndarray | None:
    if ids is None:
        return None
    a = np.asarray(ids)
    if a.ndim != 1 or len(a) != n:
        raise ValueError(f"{name} has shape {a.shape} but diff has {n} {what}s; pass {fix}")
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name} must be integer ids ({fix}); got dtype {a.dtype}")
    return a


def _check_level(value: float, name: str) -> None:
    if not 0 < value < 1:
        raise ValueError(f"{name} must be between 0 and 1 (e.g. 0.05); got {value}")
