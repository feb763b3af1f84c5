"""Statistics of an evaluation. Per (classifier, arm, k): accuracy, and the paired gain over the arm's comparator
(real; real+classic for real+synthetic+classic; the primary for permuted-persons) — both from one crossed model
of generator replicates × test images (evaluation/variance.py): the test, the CI, the minimum detectable effect
and the equivalence status all come from the same estimate and variance. Holm adjusts that p within families:
- primary: real+synthetic@reference vs real, one per k, per classifier architecture — the pre-registered
  comparison (Holm over k);
- controls, each Holm over k: placebo, permuted persons, oracle, A/A, random labels;
- secondary: every other comparison at one k, Holm within that k.
The exact sign-flip p over the runs stays beside it as a conditional secondary: it holds this test set and these
generators fixed. Significant means adjusted p < ALPHA."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass, replace

import numpy as np

from mdaug.evaluation.arms import AA, COMPARATOR, NEGATIVE, ORACLE, PERMUTED, PLACEBO, REAL, RunSpec
from mdaug.evaluation.config import k_label
from mdaug.evaluation.scoring import RunResult
from mdaug.evaluation.significance import holm, sign_flip_p
from mdaug.evaluation.variance import Estimate, crossed_estimate, status

ALPHA = 0.05
CONTROLS = {ORACLE: "oracle", AA: "A/A", NEGATIVE: "random-labels", PLACEBO: "placebo", PERMUTED: "permuted"}
NAN = math.nan


@dataclass(frozen=True)
class ArmRow:
    """One (classifier, arm, k); accuracies and gains in points (0–100)."""

    arm: str
    k: str
    arch: str
    replicates: int  # generator replicates (the model's units)
    runs: int  # trainings (replicates × classifier seeds)
    train_images: float
    accuracy: float
    accuracy_lo: float
    accuracy_hi: float
    macro_f1: float
    versus: str = ""  # the comparator arm ('' for real)
    family: str = "baseline"  # primary | oracle | A/A | random-labels | placebo | permuted | secondary | baseline
    gain: float = NAN
    gain_lo: float = NAN
    gain_hi: float = NAN
    se: float = NAN
    df: float = NAN
    p: float = NAN  # two-sided, the crossed model's t(df)
    p_adj: float = NAN  # p, Holm-adjusted within the family
    p_perm: float = NAN  # exact sign-flip over runs: conditional on this test set and these generators
    p_improve: float = NAN  # share of generator replicates whose gain is > 0
    mde: float = NAN  # minimum detectable effect at 80 % power (points)
    status: str = ""  # gain | loss | equivalent | inconclusive (TOST within ±margin)
    method: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def significant(self) -> bool:
        return self.p_adj < ALPHA

    @property
    def significant_gain(self) -> bool:
        return self.gain > 0 and self.significant


def _family(arm: str, name: str, primary: str) -> str:
    if name == primary:
        return "primary"
    return CONTROLS.get(arm, "secondary")


def holm_group(r: ArmRow) -> tuple[str, str, str]:
    """Holm adjusts within: the primary (per architecture) and each control over k; the secondary comparisons
    within one k."""
    return (r.family, r.k, r.arch) if r.family == "secondary" else (r.family, "", r.arch)


def _matrix(runs: dict[tuple[int, int], RunResult], keys: list[tuple[int, int]]) -> np.ndarray:
    return np.array([runs[key].correct for key in keys], dtype=float)


def paired_difference(runs: dict[tuple[int, int], RunResult], base: dict[tuple[int, int], RunResult]
                      ) -> tuple[np.ndarray, list[int]]:
    """(rows, test images) per-image differences runs − base over the (replicate, seed) rows both ran, in row
    order, and each row's generator replicate; no rows when they share none."""
    keys = sorted(s for s in runs if s in base)
    return _matrix(runs, keys) - _matrix(base, keys), [rep for rep, _ in keys]


def summarize(results: list[RunResult], primary: str, margin: float, strata: np.ndarray | None = None) -> list[ArmRow]:
    """One row per (classifier, k, arm) in plan order, then the families' Holm adjustment and equivalence status.
    strata: the test images' labels (the image variance is estimated within persons)."""
    groups: dict[tuple[str, int, str], dict[tuple[int, int], RunResult]] = defaultdict(dict)
    specs: dict[tuple[str, int, str], RunSpec] = {}
    for r in results:
        key = (r.spec.arch, r.spec.k, r.spec.name)
        groups[key][r.spec.row] = r
        specs[key] = r.spec
    names_at: dict[tuple[str, int], dict[str, str]] = defaultdict(dict)
    for (arch, k, name), spec in specs.items():
        names_at[(arch, k)][spec.arm] = name
    rows: list[ArmRow] = []
    for (arch, k, name), runs in groups.items():
        arm, keys = specs[(arch, k, name)].arm, sorted(runs)
        acc = crossed_estimate(_matrix(runs, keys), [rep for rep, _ in keys], strata)
        row = ArmRow(name, k_label(k), arch, len({rep for rep, _ in keys}), len(keys),
                     float(np.mean([runs[s].train_images for s in keys])), acc.mean, acc.lo, acc.hi,
                     float(np.mean([runs[s].macro_f1 for s in keys]) * 100))
        versus = primary if arm == PERMUTED else names_at[(arch, k)].get(COMPARATOR.get(arm, ""), "")
        diff, units = paired_difference(runs, groups.get((arch, k, versus), {}))
        if arm != REAL and units:
            est = crossed_estimate(diff, units, strata)
            row = replace(row, versus=versus, family=_family(arm, name, primary), gain=est.mean, gain_lo=est.lo,
                          gain_hi=est.hi, se=est.se, df=est.df, p=est.p, p_perm=sign_flip_p(diff.mean(1) * 100),
                          p_improve=est.p_improve, mde=est.mde, method=est.method)
            row = replace(row, status=_status(row, margin))
        rows.append(row)
    return _adjust(rows, margin)


def _status(row: ArmRow, margin: float) -> str:
    """The row's TOST status from its own estimate (after Holm, the adjusted p decides gain or loss)."""
    if math.isnan(row.p):
        return "inconclusive"
    est = Estimate(row.gain, row.se, row.df, row.gain_lo, row.gain_hi, row.p, row.p_improve, row.mde,
                   row.replicates, 0)
    return status(est, row.p if math.isnan(row.p_adj) else row.p_adj, margin, ALPHA)


def family_size(rows: list[ArmRow], row: ArmRow) -> int:
    return sum(1 for r in rows if r.family != "baseline" and holm_group(r) == holm_group(row))


def _adjust(rows: list[ArmRow], margin: float) -> list[ArmRow]:
    by_family: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        if r.family != "baseline":
            by_family[holm_group(r)].append(i)
    out = list(rows)
    for members in by_family.values():
        for i, p in zip(members, holm([rows[i].p for i in members]), strict=True):
            adjusted = replace(rows[i], p_adj=p)
            out[i] = replace(adjusted, status=_status(adjusted, margin))
    return out
