"""The primary's sensitivity to the step budget: the primary pair trained again at half and at double the chosen
steps (arms.plan_sensitivity), each gain from the same crossed model as the primary. Reported beside the primary,
not tested: a gain that appears only at one step budget is a statement about that budget."""

from __future__ import annotations

import numpy as np

from mdaug.evaluation.arms import REAL
from mdaug.evaluation.config import k_label
from mdaug.evaluation.stats import paired_difference
from mdaug.evaluation.variance import crossed_estimate


def _gain(runs: list, primary: str, strata: np.ndarray | None) -> str:
    """The primary's gain over real among these runs, from the crossed model; '–' without two replicates (the
    training variance would not be in its CI)."""
    arm, real = ({r.spec.row: r for r in runs if r.spec.name == name} for name in (primary, REAL))
    diff, units = paired_difference(arm, real)
    if len(set(units)) < 2:
        return "– (fewer than 2 generator replicates)"
    est = crossed_estimate(diff, units, strata)
    return f"{est.mean:+.1f} (95 % CI {est.lo:+.1f}…{est.hi:+.1f})"


def sensitivity_lines(results: list, primary: str, strata: np.ndarray | None, steps: dict[str, int]
                      ) -> list[tuple[str, str]]:
    """(k label, line) per k that has sensitivity runs, with the chosen budget's gain on the same seeds beside
    them; steps: the chosen steps per classifier architecture."""
    lines = []
    extra = [r for r in results if r.spec.steps_factor != 1]
    for k in dict.fromkeys(r.spec.k for r in extra):
        at = [r for r in extra if r.spec.k == k]
        arch, seeds = at[0].spec.arch, {r.spec.seed for r in at}
        chosen = steps.get(arch)
        same = [r for r in results if r.spec.steps_factor == 1 and r.spec.k == k and r.spec.arch == arch
                and r.spec.seed in seeds]
        parts = []
        for factor in sorted({r.spec.steps_factor for r in at} | {1.0}):
            runs = same if factor == 1 else [r for r in at if r.spec.steps_factor == factor]
            budget = f" ({round(chosen * factor)})" if chosen else ""
            parts.append(f"{factor:g}× the steps{budget} {_gain(runs, primary, strata)}")
        lines.append((k_label(k), f"k={k_label(k)} · sensitivity to the step budget ({arch}, the same {len(seeds)} "
                                  f"seed(s) per generator replicate; reported, not tested): the primary's gain at "
                                  + "; at ".join(parts)))
    return lines
