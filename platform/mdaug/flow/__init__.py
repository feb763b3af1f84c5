"""Rectified flow: training objective, samplers with classifier-free guidance, latent normalisation."""

from mdaug.flow.latents import LatentStats, decode_latents
from mdaug.flow.sampler import SamplingConfig, sample, shifted_times
from mdaug.flow.transport import flow_loss

__all__ = ["LatentStats", "SamplingConfig", "decode_latents", "flow_loss", "sample", "shifted_times"]
