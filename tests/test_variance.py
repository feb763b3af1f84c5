"""One estimand, one variance (evaluation/variance.py): the crossed units × images CI covers the true mean gain
93–97 % of the time over thousands of simulated evaluations of binary correctness, with and without image-level
heterogeneity of the gain, where the old seeds × images bootstrap over-covers; Holm over two k keeps the
family-wise false-positive rate ≤ α + 0.02; TOST tells "equivalent" from "inconclusive"; Nadeau–Bengio and the
degenerate inputs give their documented numbers."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pytest
from conftest import margin
from scipy import optimize, special, stats

from mdaug.evaluation.significance import holm
from mdaug.evaluation.variance import Estimate, crossed_estimate, equivalence, nadeau_bengio, status, tost_p

PERSONS = 31
PERSON_LEVEL = np.random.default_rng(31).normal(0.0, 0.5, PERSONS)  # the persons are fixed: drawn once


@dataclass(frozen=True)
class World:
    """A probit model of both arms' correctness on one test image for one evaluation replicate:
    comparator = Φ(base + person + image + seed), arm = Φ(comparator's latent + gain + unit + unit·seed + image
    gain + unit × image); each a normal random effect with this standard deviation; then Bernoulli noise."""

    units: int = 6  # generator replicates (k-subset, DiT seed, generated draw)
    seeds: int = 2  # classifier seeds per generator
    per_person: int = 9  # test images per person
    base: float = 0.95  # latent level of the comparator (≈ 72 % accuracy)
    gain: float = 0.15  # latent gain of the arm
    image: float = 1.0  # image difficulty
    seed: float = 0.15  # classifier seed's level, both arms
    unit_gain: float = 0.1  # a generator replicate's effect on the gain
    seed_gain: float = 0.1  # a (generator, seed)'s effect on the gain
    image_gain: float = 0.4  # the gain's heterogeneity across test images
    unit_image: float = 0.3  # a generator that helps some images more than others

    def true_gain(self) -> float:
        """The population mean of D in points, exactly: E Φ(μ + N(0, s²)) = Φ(μ / √(1 + s²)), per fixed person."""
        comparator = 1 + self.image**2 + self.seed**2
        arm = comparator + self.unit_gain**2 + self.seed_gain**2 + self.image_gain**2 + self.unit_image**2
        level = self.base + PERSON_LEVEL
        return float(np.mean(special.ndtr((level + self.gain) / math.sqrt(arm))
                             - special.ndtr(level / math.sqrt(comparator)))) * 100

    def null(self) -> World:
        """The same world with the latent gain that makes the true mean gain exactly 0."""
        return replace(self, gain=optimize.brentq(lambda g: replace(self, gain=g).true_gain(), -2, 2, xtol=1e-12))

    def simulate(self, sims: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(sims, units·seeds, images) paired differences in {−1, 0, 1}, the rows' unit ids, the images' persons."""
        rng = np.random.default_rng(seed)
        n = PERSONS * self.per_person
        strata = np.repeat(np.arange(PERSONS), self.per_person)
        shape = (sims, self.units, self.seeds, n)

        def effect(sd: float, *dims: int) -> np.ndarray:  # dims: a 1 where the effect is shared
            return sd * rng.standard_normal(dims)

        comparator = (self.base + PERSON_LEVEL[strata] + effect(self.image, sims, 1, 1, n)
                      + effect(self.seed, sims, self.units, self.seeds, 1))
        arm = (comparator + self.gain + effect(self.unit_gain, sims, self.units, 1, 1)
               + effect(self.seed_gain, sims, self.units, self.seeds, 1) + effect(self.image_gain, sims, 1, 1, n)
               + effect(self.unit_image, sims, self.units, 1, n))
        correct_arm = rng.random(shape) < special.ndtr(arm)
        correct_comparator = rng.random(shape) < special.ndtr(comparator)
        diff = correct_arm.astype(np.int8) - correct_comparator.astype(np.int8)
        return diff.reshape(sims, -1, n), np.repeat(np.arange(self.units), self.seeds), strata


SCENARIOS = {"image-heterogeneous gain": World(units=8, per_person=6),
             "homogeneous gain": World(units=6, per_person=9, image_gain=0.0),
             # the main job's design (2 generator replicates × 4 seeds) on an A/A-like null: seed noise only. The
             # unit term, on 1 df, falls below the seeds' own variance in ~2/3 of runs; dropping it then covered 88 %
             "2 replicates × 4 seeds, seed noise only": World(units=2, seeds=4, unit_gain=0.0, image_gain=0.0,
                                                              unit_image=0.0, seed_gain=0.2).null()}
CHUNKS, CHUNK = 4, 1000  # 4000 simulated evaluations per scenario: coverage ± 0.35 % (one SE)


@pytest.mark.parametrize("name", SCENARIOS)
def test_the_crossed_ci_covers_the_true_gain_and_the_old_bootstrap_over_covers(name):
    world = SCENARIOS[name]
    truth = world.true_gain()
    estimates, diff = [], None
    for chunk in range(CHUNKS):
        diff, units, strata = world.simulate(CHUNK, seed=len(name) * 10 + chunk)
        estimates += [crossed_estimate(d, units, strata) for d in diff]
    coverage = np.mean([e.lo <= truth <= e.hi for e in estimates])
    margin("crossed CI", f"coverage, {name}", coverage, "0.93–0.97")
    assert 0.93 <= coverage <= 0.97
    assert all(e.units == world.units and e.images == diff.shape[2] for e in estimates)
    assert "person-stratified" in estimates[0].method
    # the bootstrap over seeds × images it replaced (seeds and images resampled independently, which counts the
    # unit × image interaction three times) covered 0.986 and 0.984 in the first two scenarios (2026-12-03). With 2
    # replicates and a real generator variance (World(units=2, seeds=4)) the CI covers ≈ 0.93: one df cannot
    # estimate it, which is why the verdict names the replicates and df


def test_holm_over_two_k_keeps_the_family_wise_false_positive_rate():
    sims = 1500
    worlds = [World().null(), World(base=1.3, units=6, per_person=9).null()]  # k=5 and a more accurate k=10
    assert all(abs(w.true_gain()) < 1e-9 for w in worlds)
    p = np.array([[crossed_estimate(d, u, s).p for d in diff]
                  for diff, u, s in (w.simulate(sims, seed=100 + i) for i, w in enumerate(worlds))])
    rejected = np.mean([min(holm(p[:, j].tolist())) < 0.05 for j in range(sims)])
    margin("Holm over 2 k", "family-wise false-positive rate", rejected, "≤ 0.07")
    assert rejected <= 0.05 + 0.02
    assert np.all((p > 0) & (p <= 1))


def test_tost_says_equivalent_with_enough_replicates_and_inconclusive_with_too_few():
    zero = replace(World(image_gain=0.1, unit_gain=0.05, unit_image=0.1), gain=0.0, seed_gain=0.0).null()
    big = replace(zero, units=20, per_person=20)
    few = replace(zero, units=2, per_person=1)  # 2 generators, 31 images
    big_diff, big_units, big_strata = big.simulate(8, seed=5)
    big_estimates = [crossed_estimate(d, big_units, big_strata) for d in big_diff]
    assert all(equivalence(e, 2.0) == "equivalent" for e in big_estimates), big_estimates
    big_verdicts = [status(e, e.p, 2.0) for e in big_estimates]  # p < α (5 % of nulls) says "gain"/"loss" first
    assert big_verdicts.count("equivalent") >= 6, big_verdicts
    few_diff, few_units, _ = few.simulate(8, seed=6)  # one image per person: no within-person variance
    verdicts = [status(e, e.p, 2.0) for e in (crossed_estimate(d, few_units) for d in few_diff)]
    assert "equivalent" not in verdicts and verdicts.count("inconclusive") >= 6, verdicts
    for gain, expected in ((0.6, "gain"), (-0.6, "loss")):
        diff, units, strata = replace(World(), gain=gain).simulate(1, seed=7)
        est = crossed_estimate(diff[0], units, strata)
        assert status(est, min(1.0, 2 * est.p), 2.0) == expected, est  # Holm-adjusted over 2 k at most doubles p


def test_tost_p_is_the_larger_one_sided_p():
    est = Estimate(0.5, 1.0, 10.0, -1.7, 2.7, 0.63, 0.6, 3.0, 11, 100)
    assert math.isclose(tost_p(est, 2.0), stats.t.sf(1.5, 10))  # the upper test binds: (0.5 − 2) / 1
    assert equivalence(est, 2.0, alpha=0.05) == "not equivalent" and equivalence(est, 3.0) == "equivalent"
    assert status(est, 0.01, 2.0) == "gain" and status(replace(est, mean=-0.5), 0.01, 2.0) == "loss"
    with pytest.raises(ValueError, match="margin must be a positive number"):
        tost_p(est, 0.0)


def test_nadeau_bengio_on_a_hand_computed_case():
    est = nadeau_bengio([1.0, 2.0, 3.0, 4.0, 5.0], n_train=80, n_test=20)
    se = math.sqrt((1 / 5 + 20 / 80) * 2.5)  # s² = 2.5: 1.0607, against 0.7071 uncorrected
    assert est.mean == 3.0 and math.isclose(est.se, se) and est.df == 4
    assert math.isclose(est.hi - est.mean, 2.776445 * se, rel_tol=1e-6)
    assert math.isclose(est.p, 2 * stats.t.sf(3 / se, 4)) and 0.04 < est.p < 0.05
    assert est.p_improve == 1.0 and math.isclose(est.mde, (2.776445 + stats.t.ppf(0.8, 4)) * se, rel_tol=1e-6)
    with pytest.raises(ValueError, match="at least 2 splits"):
        nadeau_bengio([1.0], 10, 5)


def test_the_variance_is_the_crossed_anova_and_persons_are_fixed():
    rng = np.random.default_rng(0)
    row, col = rng.normal(0, 0.1, 5), rng.normal(0, 0.3, 40)
    additive = row[:, None] + col[None, :]  # no residual: Var = var(row)/U + var(col)/N
    est = crossed_estimate(additive, scale=1.0)
    a, b = row.var(ddof=1) / 5, col.var(ddof=1) / 40
    assert math.isclose(est.se**2, a + b) and math.isclose(est.df, (a + b) ** 2 / (a**2 / 4 + b**2 / 39))
    noisy = additive + rng.normal(0, 0.5, additive.shape)
    strata = np.repeat(np.arange(8), 5)
    person_shift = np.repeat(rng.normal(0, 1.0, 8), 5)[None, :]  # fixed persons: no variance from their levels
    shifted = crossed_estimate(noisy + person_shift, strata=strata)
    assert math.isclose(shifted.se, crossed_estimate(noisy, strata=strata).se)
    assert crossed_estimate(noisy + person_shift).se > 2 * shifted.se
    doubled = crossed_estimate(np.repeat(noisy, 2, axis=0), units=np.repeat(np.arange(5), 2))
    assert math.isclose(doubled.se, crossed_estimate(noisy).se) and doubled.units == 5  # rows averaged in units
    fresh = crossed_estimate(noisy, fresh_test=True, scale=1.0)
    assert math.isclose(fresh.se, noisy.mean(1).std(ddof=1) / math.sqrt(5)) and fresh.df == 4
    assert fresh.method.startswith("nested")
    signs = np.array([[1.0, 1.0], [1.0, 0.0], [0.0, 0.0], [-1.0, 0.0]])
    assert crossed_estimate(signs).p_improve == (2 + 0.5) / 4


def test_degenerate_inputs_give_their_documented_results():
    zeros = crossed_estimate(np.zeros((4, 20)), units=[0, 0, 1, 1])
    assert (zeros.mean, zeros.se, zeros.p, zeros.lo, zeros.hi) == (0.0, 0.0, 1.0, 0.0, 0.0)
    assert "no variation" in zeros.method and math.isnan(zeros.mde)
    assert math.isnan(crossed_estimate(np.ones((3, 10))).p)  # undefined, not a false 0
    rng = np.random.default_rng(1)
    d = rng.integers(-1, 2, (3, 50)).astype(float)
    one_unit = crossed_estimate(d, units=[7, 7, 7])
    assert "one generator replicate" in one_unit.method and one_unit.units == 3
    assert math.isclose(one_unit.se, crossed_estimate(d).se)
    one_row = crossed_estimate(d[:1], scale=1.0)
    assert math.isclose(one_row.se, d[0].std(ddof=1) / math.sqrt(50)) and "one replicate" in one_row.method
    one_image = crossed_estimate(d[:, :1], scale=1.0)
    assert math.isclose(one_image.se, d[:, 0].std(ddof=1) / math.sqrt(3)) and one_image.df == 2
    for bad, match in ((np.zeros((1, 1)), "one replicate of one test image"), (np.zeros(5), "matrix"),
                       (np.array([[0.0, np.nan]]), "non-finite")):
        with pytest.raises(ValueError, match=match):
            crossed_estimate(bad)
    with pytest.raises(ValueError, match="units has shape"):
        crossed_estimate(d, units=[0, 1])
    with pytest.raises(ValueError, match="stratum of their own"):
        crossed_estimate(d, strata=np.arange(50))
