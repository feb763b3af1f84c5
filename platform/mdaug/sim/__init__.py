"""Built-in physics simulator of walking people seen by a CW radar (Boulic–Thalmann + ellipsoid RCS)."""

from mdaug.sim.config import RadarConfig, SimConfig, VariationConfig
from mdaug.sim.dataset import simulate_dataset

__all__ = ["RadarConfig", "SimConfig", "VariationConfig", "simulate_dataset"]
