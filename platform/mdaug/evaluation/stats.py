"""Statistics of an evaluation. Per (arm, k): accuracy with a 95 % CI from a hierarchical bootstrap over
seeds × test images; the paired gain over the arm's comparator (real; real+classic for
real+synthetic+classic) with its bootstrap CI, the paired t-test p and the exact sign-flip permutation p over
seeds; and that permutation p Holm-adjusted within the comparison's family:
- primary: real+synthetic@reference vs real, one per k — the pre-registered comparison (Holm over k);
- controls, each Holm over k: the oracle (must gain), A/A (must not), random labels (a harm check);
- secondary: every other comparison at one k, Holm within that k.
Significant means adjusted p < ALPHA. Oracle efficiency (gain / oracle gain, with a bootstrap CI) only where
the oracle's gain is significant."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass, replace

import numpy as np

from mdaug.evaluation.arms import AA, COMPARATOR, NEGATIVE, ORACLE, REAL, SYNTHETIC, RunSpec
from mdaug.evaluation.config import k_label
from mdaug.evaluation.scoring import RunResult
from mdaug.evaluation.significance import bootstrap_means, holm, interval, sign_flip_p, t_test_p
from mdaug.seeds import hash_seed

ALPHA = 0.05
CONTROLS = {ORACLE: "oracle", AA: "A/A", NEGATIVE: "random-labels"}
NAN = math.nan


@dataclass(frozen=True)
class ArmRow:
    """One (arm, k); accuracies and gains in points (0–100)."""

    arm: str
    k: str
    seeds: int
    train_images: float
    accuracy: float
    accuracy_lo: float
    accuracy_hi: float
    macro_f1: float
    versus: str = ""  # the comparator arm ('' for real)
    family: str = "baseline"  # primary | oracle | A/A | random-labels | secondary | baseline
    gain: float = NAN
    gain_lo: float = NAN
    gain_hi: float = NAN
    p_t: float = NAN  # paired t-test over seeds
    p_perm: float = NAN  # exact sign-flip permutation over seeds
    p_adj: float = NAN  # p_perm, Holm-adjusted within the family
    oracle_efficiency: float = NAN
    efficiency_lo: float = NAN
    efficiency_hi: float = NAN

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


def _holm_group(r: ArmRow) -> tuple[str, str]:
    """Holm adjusts within: the primary and each control over k; the secondary comparisons within one k."""
    return (r.family, r.k) if r.family == "secondary" else (r.family, "")


def _matrix(runs: dict[int, RunResult], seeds: list[int]) -> np.ndarray:
    return np.array([runs[s].correct for s in seeds], dtype=float)


def summarize(results: list[RunResult], primary: str, draws: int = 2000) -> list[ArmRow]:
    """One row per (k, arm) in plan order, then the families' Holm adjustment and oracle efficiencies."""
    groups: dict[tuple[int, str], dict[int, RunResult]] = defaultdict(dict)
    specs: dict[tuple[int, str], RunSpec] = {}
    for r in results:
        groups[(r.spec.k, r.spec.name)][r.spec.seed] = r
        specs[(r.spec.k, r.spec.name)] = r.spec
    names_at = defaultdict(dict)
    for (k, name), spec in specs.items():
        names_at[k][spec.arm] = name
    rows: list[ArmRow] = []
    boots: dict[tuple[str, str], np.ndarray] = {}  # (k label, arm name) → bootstrap gains
    for (k, name), by_seed in groups.items():
        arm, seeds = specs[(k, name)].arm, sorted(by_seed)
        acc = _matrix(by_seed, seeds)
        lo, hi = interval(bootstrap_means(acc, draws, hash_seed(k, name)) * 100)
        row = ArmRow(name, k_label(k), len(seeds), float(np.mean([by_seed[s].train_images for s in seeds])),
                     float(acc.mean() * 100), lo, hi, float(np.mean([by_seed[s].macro_f1 for s in seeds]) * 100))
        versus = names_at[k].get(COMPARATOR.get(arm, ""), "")
        base = groups.get((k, versus), {})
        paired = [s for s in seeds if s in base]
        if arm != REAL and paired:
            diff = _matrix(by_seed, paired) - _matrix(base, paired)
            boot = boots[(row.k, name)] = bootstrap_means(diff, draws, hash_seed(k, "gain", len(paired))) * 100
            per_seed = diff.mean(1) * 100
            g_lo, g_hi = interval(boot)
            row = replace(row, versus=versus, family=_family(arm, name, primary), gain=float(per_seed.mean()),
                          gain_lo=g_lo, gain_hi=g_hi, p_t=t_test_p(per_seed), p_perm=sign_flip_p(per_seed))
        rows.append(row)
    rows = _adjust(rows)
    return _efficiency(rows, boots)


def family_floor(rows: list[ArmRow], row: ArmRow) -> float:
    """The smallest Holm-adjusted p the row's family can reach: (family size) × 2 / 2^seeds."""
    size = sum(1 for r in rows if r.family != "baseline" and _holm_group(r) == _holm_group(row))
    return min(1.0, size * 2 / 2 ** row.seeds)


def _adjust(rows: list[ArmRow]) -> list[ArmRow]:
    by_family: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        if r.family != "baseline":
            by_family[_holm_group(r)].append(i)
    out = list(rows)
    for members in by_family.values():
        for i, p in zip(members, holm([rows[i].p_perm for i in members]), strict=True):
            out[i] = replace(rows[i], p_adj=p)
    return out


def _efficiency(rows: list[ArmRow], boots: dict[tuple[str, str], np.ndarray]) -> list[ArmRow]:
    """gain / oracle gain for the real+synthetic arms (both measured against real), where the oracle's gain at
    that k is significant and its whole bootstrap interval is above 0; the CI from the two bootstraps, which
    drew the same seeds and images (same seed count, same generator seed)."""
    oracle = {r.k: r for r in rows if r.family == "oracle" and r.significant_gain and r.gain_lo > 0}
    out = []
    for r in rows:
        o = oracle.get(r.k)
        if o is not None and r.arm.startswith(SYNTHETIC + "@") and r.seeds == o.seeds:
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = boots[(r.k, r.arm)] / boots[(r.k, o.arm)]
            lo, hi = interval(ratio[np.isfinite(ratio)])
            r = replace(r, oracle_efficiency=r.gain / o.gain, efficiency_lo=lo, efficiency_hi=hi)
        out.append(r)
    return out
