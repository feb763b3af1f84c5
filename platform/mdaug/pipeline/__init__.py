"""The one-command pipeline: simulate → validate → split → VA-VAE → latents → DiT → sweep → generate →
evaluate → report, each stage skipped when its output matches its configuration."""

from mdaug.pipeline.config import STAGES, PipelineConfig
from mdaug.pipeline.runner import run_pipeline

__all__ = ["STAGES", "PipelineConfig", "run_pipeline"]
