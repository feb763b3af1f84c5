"""What a gain is worth in real images: the real arm's accuracy over k (piecewise linear between the evaluated k,
made non-decreasing) read backwards at real(k) + gain, with the gain's CI read the same way. Outside the curve's
range the bound is given as a bound ('> +5'): no k beyond the evaluated ones is guessed."""

from __future__ import annotations

import math

import numpy as np

from mdaug.evaluation.arms import REAL
from mdaug.evaluation.config import ALL, k_label
from mdaug.evaluation.stats import ArmRow


def real_images_at(curve: dict[int, float], accuracy: float) -> float:
    """The k at which the real curve reaches `accuracy`; -inf below its first point, +inf above its last."""
    ks = sorted(curve)
    acc = np.maximum.accumulate([curve[k] for k in ks])
    if accuracy < acc[0]:
        return -math.inf
    if accuracy > acc[-1]:
        return math.inf
    top = int(np.searchsorted(acc, accuracy, side="left"))  # first point at or above accuracy
    if top == 0 or acc[top] == acc[top - 1]:
        return float(ks[top])
    frac = (accuracy - acc[top - 1]) / (acc[top] - acc[top - 1])
    return float(ks[top - 1] + frac * (ks[top] - ks[top - 1]))


def _bound(x: float, k: int, curve: dict[int, float]) -> str:
    if math.isinf(x):
        end = max(curve) - k if x > 0 else min(curve) - k
        return ("> " if x > 0 else "< ") + (f"{end:+g}" if end else "0")
    return f"{x - k:+.1f}"


def _worth(curve: dict[int, float], own: float, k: int, target: float) -> str:
    """Real images per person beyond k that `target` accuracy is worth; `own`: the real arm's accuracy at k
    (below the running maximum where the curve dips: a target on that flat stretch is worth 0)."""
    if own <= target <= curve[k]:
        return "+0.0"
    return _bound(real_images_at(curve, target), k, curve)


def worth_lines(rows: list[ArmRow]) -> list[tuple[str, str]]:
    """(k label, line) per primary row (k, classifier) when `real` ran at two or more numeric k of its classifier."""
    lines = []
    for r in rows:
        if r.family != "primary" or r.k == k_label(ALL) or math.isnan(r.gain):
            continue
        raw = {int(x.k): x.accuracy for x in rows if x.arm == REAL and x.arch == r.arch and x.k != k_label(ALL)}
        if len(raw) < 2 or int(r.k) not in raw:
            continue
        ks = sorted(raw)
        curve = dict(zip(ks, np.maximum.accumulate([raw[x] for x in ks]).tolist(), strict=True))
        k, own = int(r.k), raw[int(r.k)]
        head = f"k={r.k} · {r.arch}: "
        if r.gain > 0 and curve[max(ks)] <= curve[k]:
            lines.append((r.k, head + f"the real learning curve does not rise beyond k={k} (over k = "
                                      f"{', '.join(map(str, ks))}): no real-image equivalent of the gain"))
            continue
        at = [_worth(curve, own, k, own + g) for g in (r.gain, r.gain_lo, r.gain_hi)]
        lines.append((r.k, head + f"the synthetic images are worth {at[0]} real images per person (the gain's 95 % "
                                  f"CI read on the curve: {at[1]}…{at[2]}; the curve's own noise not included) on the "
                                  f"real learning curve over k = {', '.join(map(str, ks))}"))
    return lines
