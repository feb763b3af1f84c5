"""The one-command pipeline: simulate → validate → split → VA-VAE → latents → DiT → sweep → generate →
evaluate → report, each stage skipped when its output matches its configuration. `PipelineConfig` and
`run_pipeline` are imported on first use: `--help` imports neither torch nor Ray, MLflow and Lightning, and loading
the configuration (mdaug.config) imports no Ray, MLflow or Lightning."""

from typing import Any

from mdaug.pipeline.stages import STAGES

__all__ = ["STAGES", "PipelineConfig", "run_pipeline"]


def __getattr__(name: str) -> Any:
    if name == "run_pipeline":
        from mdaug.pipeline.runner import run_pipeline

        return run_pipeline
    if name == "PipelineConfig":
        from mdaug.pipeline.config import PipelineConfig

        return PipelineConfig
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
