"""The one-command pipeline: simulate → validate → split → VA-VAE → latents → DiT → sweep → generate →
evaluate → report, each stage skipped when its output matches its configuration. `run_pipeline` is imported on
first use: loading the configuration (mdaug.config) must not import Ray, MLflow and Lightning."""

from typing import Any

from mdaug.pipeline.config import STAGES, PipelineConfig

__all__ = ["STAGES", "PipelineConfig", "run_pipeline"]


def __getattr__(name: str) -> Any:
    if name == "run_pipeline":
        from mdaug.pipeline.runner import run_pipeline

        return run_pipeline
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
