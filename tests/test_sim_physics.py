"""The simulator obeys radar physics: torso Doppler, limb Doppler, no aliasing, determinism, identity."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import margin

from mdaug.sim import RadarConfig, SimConfig, VariationConfig, simulate_dataset
from mdaug.sim.dataset import check_radar, sample_batch, simulate_images
from mdaug.sim.persons import draw_persons, min_pairwise_distance

# One walker straight at the radar, far away (small elevation angle), almost noise-free.
CLEAN = VariationConfig(velocity=0.0, snr_db=(60.0, 60.0), aspect_deg=(0.0, 0.0), range_m=(30.0, 30.0))


def _unchecked(cfg: SimConfig, **fields) -> SimConfig:
    """A copy with `fields` set past SimConfig's own checks (which refuse these settings first), so the
    simulator's full check is tested too."""
    out = replace(cfg)
    for name, value in fields.items():
        object.__setattr__(out, name, value)
    return out


def _doppler_axis(radar: RadarConfig, size: int) -> np.ndarray:
    """Frequency (Hz) of each image row, top row = +PRF/2."""
    return (0.5 - (np.arange(size) + 0.5) / size) * radar.prf_hz


def test_torso_doppler_matches_walking_speed():
    cfg = SimConfig(persons=4, per_person=1, size=256, variation=CLEAN)
    persons = draw_persons(cfg.persons, cfg.seed)
    imgs = simulate_images(persons, [(i, 0) for i in range(cfg.persons)], cfg)
    freqs = _doppler_axis(cfg.radar, cfg.size)
    b, _ = sample_batch(persons, [(i, 0) for i in range(cfg.persons)], cfg)
    for img, v in zip(imgs, b.velocity, strict=True):
        expected = 2 * v / cfg.radar.wavelength_m
        strongest = freqs[img.argmax(axis=0)]  # the torso dominates each time frame
        measured = np.median(strongest)
        assert measured > 0, "an approaching walker must give positive Doppler"
        assert abs(measured - expected) / expected < 0.12, (measured, expected)


def test_feet_reach_higher_doppler_than_torso():
    cfg = SimConfig(persons=4, per_person=1, size=256, variation=CLEAN)
    persons = draw_persons(cfg.persons, cfg.seed)
    imgs = simulate_images(persons, [(i, 0) for i in range(cfg.persons)], cfg)
    freqs = _doppler_axis(cfg.radar, cfg.size)
    for img in imgs:
        torso = np.median(freqs[img.argmax(axis=0)])
        above = img > 1 - 30 / cfg.radar.dynamic_range_db  # within 30 dB of the peak
        envelope = np.array([freqs[np.flatnonzero(col)].max() for col in above.T])
        assert envelope.max() > 2.5 * torso, (envelope.max(), torso)
        # the limb arches are periodic: the envelope rises and falls, it is not a flat band
        assert np.percentile(envelope, 90) - np.percentile(envelope, 10) > 0.5 * torso


def test_default_prf_does_not_alias_and_low_prf_is_refused():
    cfg = SimConfig(per_person=3)
    persons = draw_persons(cfg.persons, cfg.seed)
    fmax = check_radar(persons, cfg)
    assert 2 * fmax <= cfg.radar.prf_hz
    with pytest.raises(ValueError, match=r"radar.prf_hz: PRF 1000 Hz aliases.*at least \d+ Hz"):
        replace(cfg, radar=replace(cfg.radar, prf_hz=1000.0))  # the configuration refuses it (a subset's bound)
    with pytest.raises(ValueError, match=r"PRF 1000 Hz aliases.*at least \d+ Hz"):  # and so does the full check
        check_radar(persons, _unchecked(cfg, radar=replace(cfg.radar, prf_hz=1000.0)))
    # the image itself: rows near ±PRF/2 hold only noise
    imgs = simulate_images(persons, [(0, 0), (1, 0)], replace(cfg, size=128, variation=CLEAN))
    edge = np.concatenate([imgs[:, :6], imgs[:, -6:]], axis=1)
    assert edge.max() < 1 - 30 / cfg.radar.dynamic_range_db


def test_short_duration_is_refused():
    with pytest.raises(ValueError, match="radar.duration_s: duration 0.5 s is shorter than the slowest walker's"):
        SimConfig(per_person=1, radar=RadarConfig(duration_s=0.5))
    cfg = _unchecked(SimConfig(per_person=1), radar=RadarConfig(duration_s=0.5))
    with pytest.raises(ValueError, match="shorter than the slowest walker's gait cycle"):
        check_radar(draw_persons(cfg.persons, cfg.seed), cfg)


def test_persons_keep_their_distance():
    persons = draw_persons(31, seed=0)
    assert min_pairwise_distance(persons) >= 0.3
    assert draw_persons(31, seed=0) == persons
    assert draw_persons(31, seed=1) != persons


def _digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("fmt,cmap", [("png", "gray"), ("jpg", "jet")])
def test_same_arguments_give_identical_files(tmp_path, fmt, cmap):
    cfg = SimConfig(persons=3, per_person=2, size=32, image_format=fmt, colormap=cmap, seed=5)
    simulate_dataset(tmp_path / "a", cfg, progress=False)
    simulate_dataset(tmp_path / "b", cfg, progress=False)
    a, b = _digest(tmp_path / "a"), _digest(tmp_path / "b")
    assert a == b
    assert f"ID_3/s0001.{fmt}" in a and "persons.json" in a and "preview.png" in a
    simulate_dataset(tmp_path / "c", replace(cfg, seed=6), progress=False)
    assert _digest(tmp_path / "c")[f"ID_1/s0000.{fmt}"] != a[f"ID_1/s0000.{fmt}"]


def test_samples_do_not_depend_on_batch_composition():
    cfg = SimConfig(persons=3, per_person=3, size=32)
    persons = draw_persons(3, 0)
    alone = simulate_images(persons, [(2, 1)], cfg)
    together = simulate_images(persons, [(0, 0), (2, 1), (1, 2)], cfg)
    np.testing.assert_array_equal(alone[0], together[1])


def test_existing_output_is_refused_and_nothing_half_written(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        simulate_dataset(tmp_path / "out", SimConfig(persons=2, per_person=1, size=32), progress=False)
    bad = _unchecked(SimConfig(persons=2, per_person=1, size=32), radar=RadarConfig(prf_hz=500.0))
    with pytest.raises(ValueError):
        simulate_dataset(tmp_path / "new", bad, progress=False)
    assert not (tmp_path / "new").exists() and not list(tmp_path.glob(".*partial"))


@pytest.mark.slow  # ≈ 40–50 s (1,240 simulated walks): the default tier stays under 8 minutes
def test_persons_are_distinguishable_but_not_trivially(seed):
    """Logistic regression on 16×16 pixels, 20 train / 20 test per person: far above chance, below 100 %."""
    from sklearn.linear_model import LogisticRegression

    cfg = SimConfig(per_person=40, size=64, seed=seed)
    persons = draw_persons(cfg.persons, cfg.seed)
    keys = [(p, s) for p in range(cfg.persons) for s in range(cfg.per_person)]
    imgs = np.concatenate([simulate_images(persons, keys[i:i + 64], cfg) for i in range(0, len(keys), 64)])
    x = imgs.reshape(len(keys), 16, 4, 16, 4).mean((2, 4)).reshape(len(keys), -1)
    y = np.array([p for p, _ in keys])
    train = np.array([s < 20 for _, s in keys])
    clf = LogisticRegression(max_iter=2000, C=1.0).fit(x[train], y[train])
    acc = clf.score(x[~train], y[~train])
    # 0.195–0.281 over simulator seeds 0–4 (bench/learning_margins.py): 6–9× chance, far from perfect
    margin("sim_distinguishable", "logistic-regression accuracy (chance 0.032)", acc, "in (0.12, 0.98)")
    assert 0.12 < acc < 0.98
