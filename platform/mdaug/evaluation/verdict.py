"""The verdict in plain words: per k the pre-registered primary comparison first (with its Holm-adjusted p),
then the controls beside it, the secondary comparisons, the harness's state, and — when the generator's
identity ratio is low — why its images cannot help. No line selects the best of several arms."""

from __future__ import annotations

import math

from mdaug.evaluation.arms import AA, ORACLE, TSTR
from mdaug.evaluation.stats import ArmRow, family_floor

IDENTITY_GATE = 0.3  # below this generator identity ratio, generated images carry too little identity to help


def _pts(x: float) -> str:
    return f"{x:+.1f}"


def _p(x: float) -> str:
    return "–" if math.isnan(x) else f"{x:.2g}"


def _gain(r: ArmRow) -> str:
    return f"{_pts(r.gain)} points (95 % CI {_pts(r.gain_lo)}…{_pts(r.gain_hi)})"


def _outcome(r: ArmRow) -> str:
    if not r.significant:
        return "no significant difference"
    return "significant gain" if r.gain > 0 else "significant loss"


def primary_line(r: ArmRow, family_size: int, budget_note: str = "") -> str:
    caveat = ""
    if r.significant and r.gain_lo <= 0 <= r.gain_hi:
        caveat = (" on this test set; its 95 % CI, which also resamples the test images, includes 0: it may not "
                  "hold on other test images")
    return (f"k={r.k} · primary (pre-registered): {r.arm} vs {r.versus}: {_gain(r)}, sign-flip p={_p(r.p_perm)} "
            f"over training seeds on this test set, Holm-adjusted over {family_size} k p={_p(r.p_adj)} → "
            f"{_outcome(r)}{caveat}{budget_note}")


def _control_words(r: ArmRow) -> str:
    arm = r.arm.split("@")[0]
    if arm == ORACLE:
        state = "detected" if r.significant_gain else "NOT detected"
        return f"oracle {_pts(r.gain)} (adj. p={_p(r.p_adj)}, {state})"
    if arm == AA:
        state = "no false gain" if not r.significant else "FALSE POSITIVE"
        return f"A/A {_pts(r.gain)} (adj. p={_p(r.p_adj)}, {state})"
    if r.significant_gain:
        state = "a SIGNIFICANT GAIN from images without person information: more images alone help here, so a " \
                "synthetic gain of this size says nothing about identity"
    else:
        state = "label noise hurts, as expected" if r.gain < 0 else "no significant effect"
    return f"random labels {_pts(r.gain)} (adj. p={_p(r.p_adj)}; harm check: {state})"


def verdict(rows: list[ArmRow], budgets: dict[str, str] | None = None,
            identity: dict[str, float] | None = None) -> list[str]:
    """budgets: k label → a note when the generator saw more than k real images per person;
    identity: k label → the generated set's identity ratio (classifier accuracy on generated ÷ on real)."""
    budgets, identity = budgets or {}, identity or {}
    lines: list[str] = []
    ks = list(dict.fromkeys(r.k for r in rows))
    primaries = [r for r in rows if r.family == "primary"]
    for k in ks:
        at = [r for r in rows if r.k == k]
        for r in (r for r in at if r.family == "primary"):
            lines.append(primary_line(r, len(primaries), budgets.get(k, "")))
        controls = [r for r in at if r.family in ("oracle", "A/A", "random-labels")]
        if controls:
            lines.append(f"k={k} · controls: " + "; ".join(_control_words(r) for r in controls))
        real = next((r for r in at if r.family == "baseline"), None)
        secondary = [r for r in at if r.family == "secondary"]
        words = []
        for r in secondary:
            share = f", {r.accuracy / real.accuracy:.0%} of real's accuracy" if r.arm == TSTR and real else ""
            words.append(f"{r.arm} vs {r.versus} {_pts(r.gain)} (adj. p={_p(r.p_adj)}{share})")
        if words:
            floor = family_floor(rows, secondary[0])
            reach = f"; with {secondary[0].seeds} seeds the smallest reachable adj. p is {floor:.2g}" \
                if floor >= 0.05 else ""
            lines.append(f"k={k} · secondary (Holm over {len(secondary)} comparisons{reach}): " + "; ".join(words))
    lines += harness_lines(rows)
    for k, ratio in identity.items():
        if ratio < IDENTITY_GATE:
            lines.append(f"identity gate at k={k}: the generator carries too little identity for its images to help "
                         f"(identity ratio {ratio:.2f} < {IDENTITY_GATE}: the person classifier recognises "
                         f"{ratio:.0%} as many of its images' persons as of real images'); improve the generator "
                         "before reading the gains above as a verdict on generative augmentation")
    return lines


def harness_lines(rows: list[ArmRow]) -> list[str]:
    """Can this run tell a real gain from noise? At every k the A/A arm must not differ and the oracle must
    gain (each where it ran)."""
    aa = {r.k: r for r in rows if r.arm == AA}
    oracle = {r.k: r for r in rows if r.arm.startswith(ORACLE)}
    broken = [k for k, r in aa.items() if r.significant]
    if broken:
        return ["HARNESS BROKEN: the A/A arm (real vs real, another seed stream) differs significantly at k="
                + ", ".join(broken) + " — the primary test's p-values cannot be trusted in this run"]
    parts = []
    for k in dict.fromkeys(r.k for r in rows):
        words = []
        if k in oracle:
            o = oracle[k]
            words.append("the oracle's gain is detected" if o.significant_gain else
                         f"the oracle's gain is NOT detected ({_gain(o)})")
        if k in aa:
            words.append("the A/A arm shows no false gain")
        if words:
            parts.append(f"at k={k} " + " and ".join(words))
    no_oracle = "" if oracle else "; no oracle arm (data not from the simulator): the ceiling of a perfect " \
                                  "generator is unknown"
    return ["harness: " + "; ".join(parts or ["no control arm ran"]) + no_oracle]
