"""The pipeline's typed configuration and its presets (tiny: 2-core CPU; small: one GPU; paper: GPUs)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from mdaug.evaluation.config import ALL, EvalConfig, eval_config
from mdaug.flow.sampler import SamplingConfig
from mdaug.ray_mlflow.sweep import SweepConfig
from mdaug.sim import SimConfig

STAGES = ("simulate", "validate", "split", "classifier", "vae", "latents", "dit", "sweep", "generate", "evaluate",
          "report")


@dataclass(frozen=True)
class PipelineConfig:
    """What the pipeline runs. data=None simulates the embedded 31-person data set (and, for the evaluation's
    oracle arm, fresh recordings of the same persons).

    aux: walkers who are not among the task's persons (simulated data only), for the autoencoder: it then
    sees no image of a task person. None, or user data: it trains on the smallest evaluated k-subset.
    train_preset / train_overrides: jobs/train.py's preset and key=value overrides for the training stages.
    generator_ks: a DiT per k, trained on the first k train images per person (None: one per evaluated k);
    the evaluation's arms at k use the generator whose budget is the largest k' ≤ k.
    sweep: the sampling sweep's budget and trial resources (run on the smallest k's DiT); sampling: settings used
    when the sweep is skipped (sweep.trials = 0).
    resource_wait_s: seconds an autoscaling cluster gets to add the nodes a training stage or a sweep trial needs
    before the stage is refused (0: at once; TrainJobConfig.resource_wait_s).
    evaluation: the evaluation's arms, k, seeds and budget (data/synthetic/out are filled in by the pipeline).
    storage: where the artifacts live that Ray workers read and write (the images, VA-VAE, latents, checkpoints,
    the sweep's trials) and where every stage's outputs are copied: a location every node reaches (s3://bucket/
    prefix, an NFS folder). "" = the output folder, enough on one machine; `out` stays the driver's working
    folder (stage records, the lock, and the MLflow store when MLFLOW_TRACKING_URI names no server).
    """

    out: Path = Path("runs/pipeline")
    data: Path | None = None
    preset: str = "tiny"
    sim: SimConfig = field(default_factory=lambda: SimConfig(per_person=60, size=64))
    aux: SimConfig | None = None
    val: float = 0.15
    test: float = 0.15
    split_seed: int = 0
    train_preset: str = "tiny"
    train_overrides: tuple[str, ...] = ()
    workers: int | None = None  # Ray Train workers (None: the train preset's) and generator actors (None: 2)
    resource_wait_s: float = 0.0
    generator_ks: tuple[int, ...] | None = None
    sweep: SweepConfig = field(default_factory=SweepConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    evaluation: EvalConfig = field(default_factory=EvalConfig)
    experiment: str = "mdaug"
    storage: str = ""

    @property
    def dit_ks(self) -> tuple[int, ...]:
        return tuple(sorted(self.generator_ks or self.evaluation.ks, key=lambda k: (k == ALL, k)))


PIPELINE_PRESETS: dict[str, dict] = {
    # 2-core CPU, ≤ 10 minutes end to end: 64² gray, tiny models, a 2-trial sweep, a small evaluation.
    # One DiT, trained on the first 5 train images per person, serves both k (it saw 5 ⊂ 10): a second one would
    # cost another two CPU-minutes.
    "tiny": {"sim": SimConfig(per_person=60, size=64),
             "aux": SimConfig(persons=31, first_person=31, per_person=20, size=64), "train_preset": "tiny",
             "generator_ks": (5,),
             # two trials cannot search guidance 1–12: keep them where samples carry identity (at guidance ≈ 1 the
             # tiny DiT's samples are realistic but 0.6 identity ratio, at ≈ 12 recognisable but far from real)
             "sweep": SweepConfig(trials=2, per_person=2, steps=(10, 30), cfg_scale=(3.0, 8.0)),
             "evaluation": eval_config("tiny")},
    # One GPU: 128² gray, VA-VAE small, DiT-S.
    "small": {"sim": SimConfig(per_person=60, size=128),
              "aux": SimConfig(persons=31, first_person=31, per_person=60, size=128), "train_preset": "small",
              "sweep": SweepConfig(trials=8, per_person=8), "evaluation": eval_config("default")},
    # The original project's setting: 256² pseudo-colour, f16d32 VA-VAE, DiT-B/1, GPU workers.
    "paper": {"sim": SimConfig(per_person=60, size=256, colormap="jet"),
              "aux": SimConfig(persons=31, first_person=31, per_person=60, size=256, colormap="jet"),
              "train_preset": "paper",
              "sweep": SweepConfig(trials=16, per_person=8, gpus_per_trial=1.0),
              "evaluation": eval_config("default", gpus_per_run=0.25, cpus_per_run=2.0)},
}


def pipeline_config(preset: str = "tiny", vae_checkpoint: str | None = None, vf_weights: str | None = None,
                    **values) -> PipelineConfig:
    """A preset, then explicit values (None = not given); --vae-checkpoint / --vf-weights become overrides."""
    if preset not in PIPELINE_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; use one of {', '.join(PIPELINE_PRESETS)}")
    cfg = replace(PipelineConfig(preset=preset), **PIPELINE_PRESETS[preset])
    cfg = replace(cfg, **{k: v for k, v in values.items() if v is not None})
    extra = []
    if vae_checkpoint:
        if not Path(vae_checkpoint).is_file():
            raise FileNotFoundError(f"--vae-checkpoint {vae_checkpoint} not found (the official VA-VAE checkpoint "
                                    "is vavae-imagenet256-f16d32-dinov2.pt from hustvl/LightningDiT's README)")
        extra.append(f"vae.checkpoint={Path(vae_checkpoint).resolve()}")
    if vf_weights:
        extra += ["vae.vf_encoder=dinov2", f"vae.vf_weights={Path(vf_weights).resolve()}"]
    return replace(cfg, train_overrides=cfg.train_overrides + tuple(extra))
