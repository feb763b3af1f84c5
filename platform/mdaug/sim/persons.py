"""Personal gait parameters: drawn once per seed, kept apart by a minimum distance."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

# Uniform ranges of each personal parameter. Relative velocity rv = V / Ht (Boulic–Thalmann).
PARAM_RANGES: dict[str, tuple[float, float]] = {
    "height_m": (1.55, 1.95),
    "rel_velocity": (0.9, 1.6),
    "arm_swing": (0.7, 1.6),  # × 9.88·rv degrees of shoulder swing
    "knee_amp": (0.85, 1.15),  # × the knee-flexion curve (peak ≈ 70°)
    "torsion_amp": (0.6, 1.4),  # × 4·rv degrees of pelvis torsion
    "lr_amp": (0.9, 1.1),  # right-leg amplitude relative to the left
    "lr_phase": (0.45, 0.55),  # right-leg phase lag in cycles
    "girth": (0.8, 1.3),  # × segment radii (BMI proxy)
}


@dataclass(frozen=True)
class Person:
    """One walker's identity: the parameters that stay fixed across their recordings."""

    height_m: float
    rel_velocity: float
    arm_swing: float
    knee_amp: float
    torsion_amp: float
    lr_amp: float
    lr_phase: float
    girth: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _unit_to_person(u: np.ndarray) -> Person:
    values = {}
    for (name, (lo, hi)), x in zip(PARAM_RANGES.items(), u, strict=True):
        values[name] = float(lo + (hi - lo) * x)
    return Person(**values)


def draw_persons(n: int, seed: int, min_distance: float = 0.3, max_tries: int = 100_000) -> list[Person]:
    """Draw n persons uniformly in the parameter box, rejecting any closer than min_distance
    (Euclidean, in the box scaled to the unit cube) to one already drawn."""
    assert [f.name for f in fields(Person)] == list(PARAM_RANGES)
    rng = np.random.default_rng([seed, 7919])
    chosen: list[np.ndarray] = []
    for _ in range(max_tries):
        if len(chosen) == n:
            break
        u = rng.random(len(PARAM_RANGES))
        if all(np.linalg.norm(u - c) >= min_distance for c in chosen):
            chosen.append(u)
    if len(chosen) < n:
        raise ValueError(
            f"could not place {n} persons at minimum distance {min_distance} in {max_tries} draws; "
            "lower min_distance or the number of persons"
        )
    return [_unit_to_person(u) for u in chosen]


def min_pairwise_distance(persons: list[Person]) -> float:
    """Smallest unit-cube distance between two persons (inf for fewer than two)."""
    lo = np.array([r[0] for r in PARAM_RANGES.values()])
    hi = np.array([r[1] for r in PARAM_RANGES.values()])
    u = (np.array([list(p.to_dict().values()) for p in persons]) - lo) / (hi - lo)
    d = np.linalg.norm(u[:, None] - u[None], axis=-1)
    d[np.diag_indices(len(u))] = np.inf
    return float(d.min())
