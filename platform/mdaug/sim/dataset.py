"""`mdaug simulate`: persons × per_person spectrograms written as ROOT/ID_k/*.png|jpg, atomically."""

from __future__ import annotations

import functools
import io
import json
import math
import multiprocessing
import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from mdaug.bounds import SettingError
from mdaug.cpus import available_cpus
from mdaug.imaging import encode, tiled_grid, to_pil
from mdaug.sim.config import SimConfig
from mdaug.sim.kinematics import WalkBatch
from mdaug.sim.persons import Person, draw_persons
from mdaug.sim.radar import add_noise, baseband_return, max_doppler_hz, spectrogram_image

CHUNK = 32


def sample_batch(persons: list[Person], keys: list[tuple[int, int]], cfg: SimConfig) -> tuple[WalkBatch, np.ndarray]:
    """Walk parameters and SNR for (person index, sample index) keys; each sample draws from its own
    generator, so a sample does not depend on which others are simulated with it."""
    v = cfg.variation
    rows, snr = [], []
    for pi, si in keys:
        g = np.random.default_rng([cfg.seed, pi, si, 1])
        p = persons[pi]
        rows.append({
            **p.to_dict(),
            "rel_velocity": p.rel_velocity * (1 + g.uniform(-v.velocity, v.velocity)),
            "start_phase": g.random(),
            "jitter_amp": g.normal(0, v.stride_jitter / math.sqrt(1.5), 3),
            "jitter_freq": g.uniform(0.2, 0.8, 3),
            "jitter_phase": g.uniform(0, 2 * np.pi, 3),
            "aspect": np.deg2rad(g.uniform(*v.aspect_deg)),
            "start_range": g.uniform(*v.range_m),
        })
        snr.append(g.uniform(*v.snr_db))
    fields = {k: np.array([r[k] for r in rows]) for k in rows[0]}
    fields["height"] = fields.pop("height_m")
    return WalkBatch(**fields), np.array(snr)


def simulate_images(persons: list[Person], keys: list[tuple[int, int]], cfg: SimConfig) -> np.ndarray:
    """[0, 1] spectrograms (len(keys), size, size) for the given (person, sample) keys."""
    b, snr = sample_batch(persons, keys, cfg)
    signal = baseband_return(b, cfg.radar)
    noise_rngs = [np.random.default_rng([cfg.seed, pi, si, 2]) for pi, si in keys]
    return spectrogram_image(add_noise(signal, snr, noise_rngs), cfg.radar, cfg.size)


def check_radar(persons: list[Person], cfg: SimConfig) -> float:
    """Refuse settings that alias or cut the gait cycle short; return the largest Doppler (Hz)."""
    keys = [(pi, si) for pi in cfg.person_indices for si in cfg.samples]
    batches = [sample_batch(persons, keys[i:i + CHUNK], cfg)[0] for i in range(0, len(keys), CHUNK)]
    return _refuse_radar(cfg, max(float(b.cycle_duration.max()) for b in batches),
                         lambda: max(max_doppler_hz(b, cfg.radar) for b in batches))  # chunked: bounded memory


def _refuse_radar(cfg: SimConfig, longest: float, fmax_of: Callable[[], float]) -> float:
    """Refuse a duration shorter than `longest` (s), then a PRF below twice fmax_of(); return that Doppler (Hz)."""
    if cfg.radar.duration_s < longest:
        raise ValueError(
            f"duration {cfg.radar.duration_s} s is shorter than the slowest walker's gait cycle "
            f"({longest:.2f} s); use a duration of at least {math.ceil(longest * 10) / 10} s"
        )
    fmax = fmax_of()
    if cfg.radar.prf_hz < 2 * fmax:
        raise ValueError(
            f"PRF {cfg.radar.prf_hz:g} Hz aliases: the fastest body part reaches {fmax:.0f} Hz Doppler at "
            f"{cfg.radar.carrier_hz / 1e9:g} GHz; use a PRF of at least {math.ceil(2 * fmax)} Hz"
        )
    return fmax


@functools.lru_cache(maxsize=64)
def check_radar_quickly(cfg: SimConfig) -> None:
    """check_radar on a subset, for the configuration (milliseconds): every walker's first recording for the gait
    cycle, the fastest walker's for the Doppler. Its values bound check_radar's from below, so what it refuses
    check_radar refuses too, with the same message (as a SettingError naming the key); a PRF just under the full
    set's need still passes here and is refused when the simulation starts."""
    try:
        persons = draw_persons(cfg.first_person + cfg.persons, cfg.seed)
    except ValueError as err:
        raise SettingError(cfg, "persons", f"{{at}}persons={cfg.persons}: {err}") from None
    first, _ = sample_batch(persons, [(pi, cfg.first_sample) for pi in cfg.person_indices], cfg)
    fastest = max(cfg.person_indices, key=lambda pi: persons[pi].rel_velocity)
    try:
        _refuse_radar(cfg, float(first.cycle_duration.max()),
                      lambda: max_doppler_hz(sample_batch(persons, [(fastest, cfg.first_sample)], cfg)[0], cfg.radar))
    except ValueError as err:
        key = "radar.prf_hz" if str(err).startswith("PRF") else "radar.duration_s"
        raise SettingError(cfg, key, f"{{at}}{key}: {err}") from None


def encoded_chunk(keys: list[tuple[int, int]], cfg: SimConfig) -> list[bytes]:
    """File bytes of the given (person index, sample index) recordings (runs in a worker process)."""
    persons = draw_persons(cfg.first_person + cfg.persons, cfg.seed)
    return [encode(to_pil(img, cfg.colormap), cfg.image_format) for img in simulate_images(persons, keys, cfg)]


def _chunks_in_order(chunks: list[list[tuple[int, int]]], cfg: SimConfig, workers: int):
    """Encoded chunks in order; chunks are independent (per-sample generators), so processes share the work."""
    if workers <= 1 or len(chunks) < 4:
        yield from (encoded_chunk(c, cfg) for c in chunks)
        return
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield from pool.map(encoded_chunk, chunks, [cfg] * len(chunks))


def simulate_dataset(out: Path, cfg: SimConfig, progress: bool = True, workers: int | None = None) -> dict:
    """Write the data set to `out` (which must not exist or be empty); returns the summary.

    Files go to a sibling temporary folder renamed to `out` only when complete. `workers` processes
    simulate in parallel (default: one per CPU); the files do not depend on it."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} already exists and is not empty; choose another --out or remove it")
    persons = draw_persons(cfg.first_person + cfg.persons, cfg.seed)
    fmax = check_radar(persons, cfg)
    tmp = out.parent / f".{out.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    keys = [(pi, si) for pi in cfg.person_indices for si in cfg.samples]
    chunks = [keys[start : start + CHUNK] for start in range(0, len(keys), CHUNK)]
    previews: dict[int, Image.Image] = {}
    try:
        for pi in cfg.person_indices:
            (tmp / f"ID_{pi + 1}").mkdir()
        bar = tqdm(total=len(keys), desc="simulate", unit="img", disable=not progress)
        for chunk, files in zip(chunks, _chunks_in_order(chunks, cfg, workers or available_cpus()), strict=True):
            for (pi, si), data in zip(chunk, files, strict=True):
                (tmp / f"ID_{pi + 1}" / f"s{si:04d}.{cfg.image_format}").write_bytes(data)
                if si == cfg.first_sample:
                    previews[pi] = Image.open(io.BytesIO(data))
            bar.update(len(chunk))
        bar.close()
        summary = {
            "config": asdict(cfg),
            "max_doppler_hz": fmax,
            "persons": {f"ID_{pi + 1}": persons[pi].to_dict() for pi in cfg.person_indices},
        }
        (tmp / "persons.json").write_text(json.dumps(summary, indent=2))
        tiled_grid([(f"ID_{pi + 1}", previews[pi]) for pi in cfg.person_indices], cell=max(96, min(cfg.size, 128)),
                   out=tmp / "preview.png")
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary
