"""The verdict in plain words: per k the pre-registered primary comparison first — for every classifier
architecture, with its CI, Holm-adjusted p, probability of improvement over generator replicates, minimum
detectable effect and equivalence status from one crossed model — whether the classifiers agree, then the
controls beside it (placebo, permuted persons, oracle, A/A, random labels), the secondary comparisons, the
harness's state and both judges' identity ratios. No line selects the best of several arms."""

from __future__ import annotations

import math

import numpy as np

from mdaug.evaluation.arms import AA, NEGATIVE, ORACLE, PERMUTED, PLACEBO, TSTR
from mdaug.evaluation.config import k_label
from mdaug.evaluation.learning_curve import worth_lines
from mdaug.evaluation.per_person import primary_person_gains
from mdaug.evaluation.sensitivity import sensitivity_lines
from mdaug.evaluation.stats import ArmRow, family_size, summarize

IDENTITY_GATE = 0.3  # below this independent identity ratio, generated images carry too little identity to help
WORDS = {"gain": "gain", "loss": "loss", "equivalent": "no gain beyond ±{m:g} (equivalent)",
         "inconclusive": "inconclusive (neither a gain nor equivalence within ±{m:g} shown)"}


def _pts(x: float) -> str:
    return f"{x:+.1f}"


def _p(x: float) -> str:
    return "–" if math.isnan(x) else f"{x:.2g}"


def _gain(r: ArmRow) -> str:
    return f"{_pts(r.gain)} points (95 % CI {_pts(r.gain_lo)}…{_pts(r.gain_hi)})"


def primary_line(r: ArmRow, family: int, margin: float, generator: str = "", budget_note: str = "") -> str:
    improve = "" if math.isnan(r.p_improve) else f"; improves in {r.p_improve:.0%} of generator replicates"
    return (f"k={r.k} · primary (pre-registered), {r.arch} classifier: {r.arm}{generator} vs {r.versus}: {_gain(r)}, "
            f"p={_p(r.p)} over {r.replicates} generator replicates × {r.runs // max(r.replicates, 1)} seeds × test "
            f"images (df {r.df:.1f}), Holm over {family} k p={_p(r.p_adj)} → {WORDS[r.status].format(m=margin)}"
            f"{improve}; MDE {r.mde:.1f} points at 80 % power; sign-flip p={_p(r.p_perm)} (conditional on this "
            f"test set){budget_note}")


def _control_words(r: ArmRow, margin: float) -> str:
    arm = r.arm.split("@")[0]
    state = WORDS[r.status].format(m=margin) if r.status else "–"
    if arm == ORACLE:
        return f"oracle {_pts(r.gain)} (adj. p={_p(r.p_adj)}, {'detected' if r.significant_gain else 'NOT detected'})"
    if arm == AA:
        return (f"A/A {_pts(r.gain)} (adj. p={_p(r.p_adj)}: a noise reference, significant in ~5 % of runs by "
                f"design{'; significant in this run' if r.significant else ''})")
    if arm == PLACEBO:
        nil = "no effect of repeating real images" if not r.significant else \
            "REPEATING REAL IMAGES ALONE CHANGES ACCURACY: the primary's gain may come from batch composition"
        return f"placebo {_pts(r.gain)} ({state}; {nil})"
    if arm == PERMUTED:
        need = "the gain needs identity" if r.significant and r.gain < 0 else \
            "NOT shown that the gain needs identity" if not r.significant else \
            "permuted persons BEAT the primary: the gain does not come from identity"
        return f"permuted persons vs the primary {_pts(r.gain)} (adj. p={_p(r.p_adj)}; {need})"
    if arm == NEGATIVE:
        words = "label noise hurts, as expected" if r.significant and r.gain < 0 else \
            "a SIGNIFICANT GAIN from wrongly labelled images: more images alone help here" if r.significant_gain \
            else "no significant effect"
        return f"random labels {_pts(r.gain)} (adj. p={_p(r.p_adj)}; harm check: {words})"
    return f"{r.arm} {_pts(r.gain)} (adj. p={_p(r.p_adj)})"


def _agreement(primaries: list[ArmRow]) -> str | None:
    if len(primaries) < 2:
        return None
    states = {r.arch: r.status for r in primaries}
    k = primaries[0].k
    if set(states.values()) == {"gain"}:
        return f"k={k} · robust gain: every classifier architecture ({', '.join(states)}) shows it"
    return f"k={k} · NOT a robust result: the classifiers disagree or do not show a gain (" + ", ".join(
        f"{a}: {s}" for a, s in states.items()) + ")"


DETAIL = "  "  # the prefix of a line that details the primary above it (per-person gains, real-image worth, steps)


def headline(lines: list[str]) -> list[str]:
    """The verdict without its detail lines: what the console shows (the report and verdict.txt hold all)."""
    return [x for x in lines if not x.startswith(DETAIL)]


def verdict(rows: list[ArmRow], margin: float, budgets: dict[str, str] | None = None,
            identity: dict[str, dict] | None = None, generators: dict[str, str] | None = None,
            beside: dict[str, list[str]] | None = None) -> list[str]:
    """budgets: k label → a note when the generator saw more than k real images per person; identity: k label →
    {"independent": ratio, "sweep": ratio} (the generated sets' mean identity ratios); generators: k label → how
    the arm's generator is named (e.g. ' (generators k=5, 2 replicates)'); beside: k label → lines that follow
    the primary (per-person gains, the real-image worth), indented by DETAIL."""
    budgets, identity, generators, beside = budgets or {}, identity or {}, generators or {}, beside or {}
    lines: list[str] = []
    previous = None
    for k in dict.fromkeys(r.k for r in rows):
        at = [r for r in rows if r.k == k]
        primaries = [r for r in at if r.family == "primary"]
        for r in primaries:
            lines.append(primary_line(r, family_size(rows, r), margin, generators.get(k, ""), budgets.get(k, "")))
        agree = _agreement(primaries)
        if agree:
            lines.append(agree)
        lines += [DETAIL + x for x in beside.get(k, [])]
        controls = [r for r in at if r.family in ("placebo", "permuted", "oracle", "A/A", "random-labels")]
        if controls:
            lines.append(f"k={k} · controls: " + "; ".join(_control_words(r, margin) for r in controls))
        real = next((r for r in at if r.family == "baseline" and r.arch == (controls or at)[0].arch), None)
        secondary = [r for r in at if r.family == "secondary"]
        words = []
        for r in secondary:
            share = f", {r.accuracy / real.accuracy:.0%} of real's accuracy" if r.arm == TSTR and real else ""
            words.append(f"{r.arm} vs {r.versus} {_pts(r.gain)} (95 % CI {_pts(r.gain_lo)}…{_pts(r.gain_hi)}, "
                         f"adj. p={_p(r.p_adj)}{share})")
        if words:
            lines.append(f"k={k} · secondary (Holm over {len(secondary)} comparisons): " + "; ".join(words))
        if k in identity:  # a detail where the same generators were measured at the k before
            same = previous is not None and identity.get(previous) == identity[k] and \
                generators.get(previous) == generators.get(k)
            lines.append((DETAIL if same else "") + identity_line(k, identity[k]))
        previous = k
    return lines + harness_lines(rows)


def identity_line(k: str, ratios: dict) -> str:
    independent, sweep = ratios.get("independent", math.nan), ratios.get("sweep", math.nan)
    line = (f"k={k} · generated sets' identity ratio {independent:.2f} by the independent judge (a 2-D CNN the sweep "
            f"and the generator never used) and {sweep:.2f} by the sweep's judge")
    if independent < IDENTITY_GATE:
        line += (f"; below {IDENTITY_GATE}: the generator carries too little identity for its images to help — "
                 "improve the generator before reading the gains above as a verdict on generative augmentation")
    return line


def harness_lines(rows: list[ArmRow]) -> list[str]:
    """Can this run tell a real gain from noise? The oracle must gain and the placebo must not (each where it
    ran); the A/A arm is reported as noise, not as a pass/fail."""
    oracle = {r.k: r for r in rows if r.arm.startswith(ORACLE)}
    placebo = {r.k: r for r in rows if r.arm.startswith(PLACEBO)}
    parts = []
    for k in dict.fromkeys(r.k for r in rows):
        words = []
        if k in oracle:
            words.append("the oracle's gain is detected" if oracle[k].significant_gain else
                         f"the oracle's gain is NOT detected ({_gain(oracle[k])}): this run cannot see a gain")
        if k in placebo:
            words.append("the placebo shows no effect" if not placebo[k].significant else
                         "the PLACEBO DIFFERS: batch composition alone moves accuracy")
        if words:
            parts.append(f"at k={k} " + " and ".join(words))
    no_oracle = "" if oracle else "; no oracle arm (data not from the simulator): the ceiling of a perfect " \
                                  "generator is unknown"
    return ["harness: " + "; ".join(parts or ["no control arm ran"]) + no_oracle]


def conclude(results: list, context: dict) -> tuple[list[ArmRow], list[str]]:
    """The table's rows and the verdict's lines from the runs' per-image outcomes and the run's context (what
    eval_job stores as context.json): the evaluation and eval/compare.py say the same."""
    strata = np.asarray(context["strata"]) if context.get("strata") is not None else None
    main = [r for r in results if r.spec.steps_factor == 1]  # the others: the step-budget sensitivity runs
    rows = summarize(main, context["primary"], context["margin"], strata)
    beside: dict[str, list[str]] = {}
    if strata is not None:
        for (arch, k), gains in primary_person_gains(main, context["primary"], strata).items():
            beside.setdefault(k_label(k), []).append(f"k={k_label(k)} · {arch}: {gains.summary()}")
    for k, line in worth_lines(rows) + sensitivity_lines(results, context["primary"], strata,
                                                          context.get("steps", {})):
        beside.setdefault(k, []).append(line)
    lines = verdict(rows, context["margin"], context.get("budgets"), context.get("identity"),
                    context.get("generators"), beside)
    return rows, ([context["look"]] if context.get("look") else []) + lines
