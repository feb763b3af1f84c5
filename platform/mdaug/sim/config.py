"""Typed configuration of the simulator, with documented defaults."""

from __future__ import annotations

from dataclasses import dataclass, field

from mdaug.bounds import SEED_MAX, choice, integer, interval, real, refuse

SPEED_OF_LIGHT = 299_792_458.0
WALKERS_MAX = 1000  # first_person + persons: the draw places walkers one by one (1000: seconds)
RECORDINGS_MAX = 10_000  # per_person: recordings per walker


@dataclass(frozen=True)
class RadarConfig:
    """Continuous-wave radar and spectrogram settings.

    carrier_hz: carrier frequency (24 GHz: a common gait radar band).
    prf_hz: slow-time sampling rate; must exceed twice the largest Doppler or the image aliases.
    duration_s: observation time per spectrogram; must cover at least one gait cycle.
    window_s: STFT window length (Hann).
    dynamic_range_db: the image keeps this many dB below its peak; lower values are clipped.
    radar_height_m: antenna height above the floor.
    """

    carrier_hz: float = 24e9
    prf_hz: float = 2400.0
    duration_s: float = 2.5
    window_s: float = 0.128
    dynamic_range_db: float = 45.0
    radar_height_m: float = 1.0

    def __post_init__(self) -> None:
        real(self, "carrier_hz", 1e8, 3e11, note=" Hz (100 MHz – 300 GHz)")
        real(self, "prf_hz", 0.0, 1e5, lo_open=True, note=" Hz")
        real(self, "duration_s", 0.0, 60.0, lo_open=True, note=" s")
        real(self, "window_s", 0.0, self.duration_s, lo_open=True, note=" s (at most duration_s)")
        real(self, "dynamic_range_db", 0.0, 200.0, lo_open=True, note=" dB")
        real(self, "radar_height_m", 0.0, 100.0, note=" m")

    @property
    def wavelength_m(self) -> float:
        return SPEED_OF_LIGHT / self.carrier_hz


@dataclass(frozen=True)
class VariationConfig:
    """Per-sample variation of one person's walk (the same person, another recording).

    velocity: relative velocity varies uniformly by ± this fraction.
    stride_jitter: standard deviation of the smooth stride-to-stride cadence variation.
    snr_db: uniform range of the signal-to-noise ratio.
    aspect_deg: uniform range of the angle between walking direction and line of sight.
    range_m: uniform range of the start distance from the radar.
    """

    velocity: float = 0.04
    stride_jitter: float = 0.02
    snr_db: tuple[float, float] = (10.0, 30.0)
    aspect_deg: tuple[float, float] = (-20.0, 20.0)
    range_m: tuple[float, float] = (5.0, 9.0)

    def __post_init__(self) -> None:
        real(self, "velocity", 0.0, 1.0, hi_open=True, note=" (a fraction of the walking speed)")
        real(self, "stride_jitter", 0.0, 1.0)
        interval(self, "snr_db", -50.0, 200.0, note=" dB")
        interval(self, "aspect_deg", -90.0, 90.0, note=" degrees")
        interval(self, "range_m", 0.0, 1000.0, lo_open=True, note=" m")


@dataclass(frozen=True)
class SimConfig:
    """What `mdaug simulate` makes: persons × per_person images of size² pixels.

    first_sample: index of each person's first recording; the same seed with first_sample past an existing
    set gives fresh recordings of the same persons (the evaluation's oracle).
    first_person: index of the first walker of the seed's draw; first_person=31 gives 31 *other* walkers
    (ID_32 …), never among persons 1–31 (auxiliary data of other persons, e.g. for the autoencoder).
    Refused when the configuration loads: a setting out of its range (first_person + persons ≤ 1000 walkers,
    per_person ≤ 10,000), and a radar that aliases or misses a gait cycle on a subset of the walkers
    (mdaug.sim.dataset.check_radar_quickly; the simulation checks them all)."""

    persons: int = 31
    first_person: int = 0
    per_person: int = 60
    first_sample: int = 0
    size: int = 128
    image_format: str = "png"
    colormap: str = "gray"
    seed: int = 0
    radar: RadarConfig = field(default_factory=RadarConfig)
    variation: VariationConfig = field(default_factory=VariationConfig)

    def __post_init__(self) -> None:
        integer(self, "persons", 1, WALKERS_MAX)
        integer(self, "first_person", 0, WALKERS_MAX - self.persons,
                f" (first_person + persons ≤ {WALKERS_MAX} walkers)")
        integer(self, "per_person", 1, RECORDINGS_MAX)
        integer(self, "first_sample", 0, 10**6)
        integer(self, "size", 16, 1024, " pixels")
        choice(self, "image_format", ("png", "jpg"))
        choice(self, "colormap", ("gray", "jet"))
        integer(self, "seed", 0, SEED_MAX)
        from mdaug.sim.dataset import check_radar_quickly  # the physics: it needs the walkers

        check_radar_quickly(self)
        if round(self.radar.window_s * self.radar.prf_hz) < 8:
            raise refuse(self, "radar.window_s", self.radar.window_s, f"must hold at least 8 samples at prf_hz="
                                                                      f"{self.radar.prf_hz:g} (the STFT window)")

    @property
    def person_indices(self) -> range:
        """Indices of the simulated walkers in the seed's draw (folder ID_{index + 1})."""
        return range(self.first_person, self.first_person + self.persons)

    @property
    def samples(self) -> range:
        """Recording indices of each person."""
        return range(self.first_sample, self.first_sample + self.per_person)
