"""Typed configuration of the simulator, with documented defaults."""

from __future__ import annotations

from dataclasses import dataclass, field

SPEED_OF_LIGHT = 299_792_458.0


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


@dataclass(frozen=True)
class SimConfig:
    """What `mdaug simulate` makes: persons × per_person images of size² pixels.

    first_sample: index of each person's first recording; the same seed with first_sample past an existing
    set gives fresh recordings of the same persons (the evaluation's oracle).
    first_person: index of the first walker of the seed's draw; first_person=31 gives 31 *other* walkers
    (ID_32 …), never among persons 1–31 (auxiliary data of other persons, e.g. for the autoencoder)."""

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
        if self.first_sample < 0 or self.first_person < 0:
            raise ValueError(f"first_sample and first_person must be ≥ 0, got {self.first_sample}, "
                             f"{self.first_person}")
        if self.persons < 1 or self.per_person < 1:
            raise ValueError(f"persons and per_person must be ≥ 1, got {self.persons} and {self.per_person}")
        if not 16 <= self.size <= 1024:
            raise ValueError(f"size must be between 16 and 1024 pixels, got {self.size}")
        if self.image_format not in ("png", "jpg"):
            raise ValueError(f"image format must be png or jpg, got {self.image_format!r}")
        if self.colormap not in ("gray", "jet"):
            raise ValueError(f"colormap must be gray or jet, got {self.colormap!r}")

    @property
    def person_indices(self) -> range:
        """Indices of the simulated walkers in the seed's draw (folder ID_{index + 1})."""
        return range(self.first_person, self.first_person + self.persons)

    @property
    def samples(self) -> range:
        """Recording indices of each person."""
        return range(self.first_sample, self.first_sample + self.per_person)
