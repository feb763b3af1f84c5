"""Per-person gains and the real-image worth of a gain: the shrunken per-person intervals cover each person's true
gain in simulated evaluations (binary outcomes, generator-replicate shifts) with and without between-person
differences, shrink a homogeneous effect toward its mean and keep a real spread; the learning curve reads a gain
backwards as real images per person and bounds what lies beyond its range."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mdaug.evaluation.arms import REAL, SYNTHETIC
from mdaug.evaluation.learning_curve import real_images_at, worth_lines
from mdaug.evaluation.per_person import person_gains
from mdaug.evaluation.stats import ArmRow

PERSONS, IMAGES, UNITS, SEEDS = 31, 9, 2, 4  # the tiny main job's test split and replicates


def _evaluation(true: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, list[int], np.ndarray]:
    """(runs × images) paired differences whose per-person expected gain is `true` (probability units)."""
    labels = np.repeat(np.arange(PERSONS), IMAGES)
    base = rng.uniform(0.5, 0.85, len(labels))
    rows, units = [], []
    for u in range(UNITS):
        shift = rng.normal(0, 0.02)  # the generator replicate's own luck, shared by every person
        for _ in range(SEEDS):
            a = rng.random(len(labels)) < base
            b = rng.random(len(labels)) < np.clip(base + true[labels] + shift, 0, 1)
            rows.append(b.astype(float) - a)
            units.append(u)
    return np.array(rows), units, labels


@pytest.mark.parametrize("tau", [0.0, 0.10])
def test_shrunken_per_person_intervals_cover_the_true_gains(tau):
    rng = np.random.default_rng(3)
    cover, shrink, taus = [], [], []
    for _ in range(80):
        true = rng.normal(0.03, tau, PERSONS) if tau else np.full(PERSONS, 0.03)
        g = person_gains(*_evaluation(true, rng))
        cover.append(np.mean([p.lo <= 100 * t <= p.hi for p, t in zip(g.persons, true, strict=True)]))
        shrink.append(np.std([p.gain for p in g.persons]) / np.std([p.raw for p in g.persons]))
        taus.append(g.tau)
        assert all(p.lo <= p.gain <= p.hi and p.images == IMAGES for p in g.persons)
    assert 0.92 <= np.mean(cover) <= 0.99, np.mean(cover)  # 0.96 (τ = 0) and 0.94 (τ = 10 points) over 200 measured
    if tau:
        assert 6 < np.mean(taus) < 14 and np.mean(shrink) > 0.45, (np.mean(taus), np.mean(shrink))  # spread kept
    else:
        assert np.mean(taus) < 3 and np.mean(shrink) < 0.3, (np.mean(taus), np.mean(shrink))  # noise shrunk


def test_real_images_at_reads_the_curve_backwards_and_bounds_its_ends():
    curve = {2: 50.0, 5: 70.0, 10: 80.0}
    assert real_images_at(curve, 75.0) == pytest.approx(7.5)
    assert real_images_at(curve, 60.0) == pytest.approx(3.5)
    assert real_images_at(curve, 70.0) == 5.0
    assert real_images_at(curve, 85.0) == math.inf and real_images_at(curve, 40.0) == -math.inf


def _row(arm: str, k: int, acc: float, **kw) -> ArmRow:
    return ArmRow(arm, str(k), "temporal", 2, 8, 10 * k, acc, acc - 2, acc + 2, acc, **kw)


def test_a_gain_is_worth_real_images_on_the_real_curve():
    rows = [_row(REAL, 5, 70.0), _row(REAL, 10, 80.0), _row(REAL, 20, 78.0),  # a dip is flattened
            _row(SYNTHETIC, 5, 75.0, family="primary", gain=5.0, gain_lo=-1.0, gain_hi=12.0),
            _row(SYNTHETIC, 10, 81.0, family="primary", gain=1.0, gain_lo=-0.5, gain_hi=2.0),
            _row(SYNTHETIC, 20, 78.0, family="primary", gain=0.0, gain_lo=-3.0, gain_hi=3.0)]
    lines = dict(worth_lines(rows))
    assert lines["5"].startswith("k=5 · temporal: the synthetic images are worth +2.5 real images per person (the "
                                 "gain's 95 % CI read on the curve: < 0…> +15; the curve's own noise not included)")
    assert "does not rise beyond k=10" in lines["10"] and "no real-image equivalent" in lines["10"]
    assert "worth +0.0 real images per person (the gain's 95 % CI read on the curve: -12.5…> 0;" in lines["20"]
    assert worth_lines(rows[:1] + rows[3:4]) == []  # one k of real: no curve
