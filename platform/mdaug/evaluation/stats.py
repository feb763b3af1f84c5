"""Statistics over seeds: mean ± 95 % CI per arm, paired difference against `real` (same seed, same real
subset) with CI and p-value (paired t-test), oracle efficiency, and the verdict in plain words."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy import stats

from mdaug.evaluation.arms import CLASSIC, NEGATIVE, ORACLE, REAL, is_generated_arm
from mdaug.evaluation.config import k_label
from mdaug.evaluation.scoring import RunResult

ALPHA = 0.05


def mean_ci(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and its t-distribution confidence interval (NaN bounds with fewer than two values)."""
    v = np.asarray(values, dtype=float)
    m = float(v.mean())
    if len(v) < 2:
        return m, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return m, m - half, m + half


def paired_test(diff: np.ndarray) -> float:
    """Two-sided p-value of a paired t-test on the differences (exact 0/1 when they do not vary)."""
    d = np.asarray(diff, dtype=float)
    if len(d) < 2 or d.std(ddof=1) == 0:
        return 1.0 if np.allclose(d, 0) else 0.0
    return float(stats.ttest_1samp(d, 0.0).pvalue)


@dataclass(frozen=True)
class ArmRow:
    """One (arm, k): accuracy and macro-F1 in points (0–100), gain over `real` in points."""

    arm: str
    k: str
    seeds: int
    train_images: float
    accuracy: float
    accuracy_lo: float
    accuracy_hi: float
    macro_f1: float
    gain: float
    gain_lo: float
    gain_hi: float
    p: float
    oracle_efficiency: float  # gain / oracle gain at the same k (NaN where it does not apply)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def significant_gain(self) -> bool:
        return self.gain > 0 and self.p < ALPHA


def summarize(results: list[RunResult]) -> list[ArmRow]:
    """One row per (k, arm), in plan order; differences are paired by seed against `real` at that k."""
    groups: dict[tuple[int, str], dict[int, RunResult]] = defaultdict(dict)
    for r in results:
        groups[(r.spec.k, r.spec.name)][r.spec.seed] = r
    rows: list[ArmRow] = []
    for (k, name), by_seed in groups.items():
        base = groups.get((k, REAL), {})
        seeds = sorted(by_seed)
        acc = np.array([by_seed[s].accuracy for s in seeds]) * 100
        paired = [s for s in seeds if s in base]
        diff = np.array([by_seed[s].accuracy - base[s].accuracy for s in paired]) * 100
        m, lo, hi = mean_ci(acc)
        g, glo, ghi = mean_ci(diff) if len(diff) and name != REAL else (math.nan,) * 3
        rows.append(ArmRow(name, k_label(k), len(seeds), float(np.mean([by_seed[s].train_images for s in seeds])),
                           m, lo, hi, float(np.mean([by_seed[s].macro_f1 for s in seeds]) * 100), g, glo, ghi,
                           paired_test(diff) if name != REAL else math.nan, math.nan))
    oracle_gain = {r.k: r.gain for r in rows if r.arm.startswith(ORACLE)}
    return [replace(r, oracle_efficiency=r.gain / oracle_gain[r.k])
            if is_generated_arm(r.arm) and oracle_gain.get(r.k, math.nan) > 0 else r for r in rows]


def _pts(x: float) -> str:
    return f"{x:+.1f}"


def _ci(r: ArmRow) -> str:
    return f"95 % CI {_pts(r.gain_lo)}…{_pts(r.gain_hi)}, p={r.p:.3g}"


def verdict(rows: list[ArmRow]) -> list[str]:
    """Plain-words lines: per k the best synthetic arm against real with the controls beside it, then the
    harness check (oracle detected, negative not)."""
    lines = []
    ks = list(dict.fromkeys(r.k for r in rows))
    for k in ks:
        at = {r.arm: r for r in rows if r.k == k}
        synth = [r for r in at.values() if is_generated_arm(r.arm)]
        if not synth:
            continue
        best = max(synth, key=lambda r: r.gain)
        classic = at.get(CLASSIC)
        oracle = next((r for r in at.values() if r.arm.startswith(ORACLE)), None)
        tail = f"; classic augmentation alone gives {_pts(classic.gain)}" if classic else ""
        if best.significant_gain:
            eff = f", {best.oracle_efficiency:.0%} of the oracle gain" if oracle and oracle.gain > 0 else ""
            lines.append(f"at k={k}, {best.arm} beats real by {_pts(best.gain)} points ({_ci(best)}){eff}{tail}")
        else:
            ceiling = f"; the oracle gains {_pts(oracle.gain)}" if oracle else ""
            lines.append(f"at k={k}, no synthetic arm beats real: the best, {best.arm}, gives {_pts(best.gain)} points "
                         f"({_ci(best)}){ceiling}{tail}")
    negatives = [r for r in rows if r.arm.startswith(NEGATIVE)]
    oracles = [r for r in rows if r.arm.startswith(ORACLE)]
    broken = [r for r in negatives if r.significant_gain]
    if broken:
        lines.append("HARNESS BROKEN: the negative control (no person information) gains "
                     + ", ".join(f"{_pts(r.gain)} at k={r.k} ({_ci(r)})" for r in broken))
    elif not oracles:
        lines.append("no oracle arm (data not from the simulator): the ceiling of a perfect generator is unknown; "
                     "negative control: " + ", ".join(f"{_pts(r.gain)} at k={r.k}" for r in negatives))
    else:
        first = oracles[0]
        neg = next(r for r in negatives if r.k == first.k)
        state = "detects a real gain" if first.significant_gain else "did NOT detect the oracle's gain"
        lines.append(f"harness check at k={first.k}: the oracle gains {_pts(first.gain)} ({_ci(first)}), the negative "
                     f"control {_pts(neg.gain)} ({_ci(neg)}) — the harness {state} and no fake one")
    return lines
