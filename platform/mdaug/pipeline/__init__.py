"""The one-command pipeline: simulate → validate → split → VA-VAE → latents → DiT → sweep → generate →
evaluate → report, each stage skipped when its output matches its configuration."""

from mdaug.pipeline.config import PIPELINE_PRESETS, STAGES, PipelineConfig, pipeline_config
from mdaug.pipeline.runner import run_pipeline

__all__ = ["PIPELINE_PRESETS", "STAGES", "PipelineConfig", "pipeline_config", "run_pipeline"]
