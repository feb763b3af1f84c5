"""The typed sections of the Ray jobs' configuration: training (`jobs/train.py`) and the sampling sweep
(`tuning/sweep_sampling.py`); their values live in configs/*.yaml (mdaug.config)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mdaug.bounds import (
    BATCH_MAX,
    CFG_MAX,
    COUNT_MAX,
    CPUS_MAX,
    GPUS_MAX,
    LR_MAX,
    PER_PERSON_MAX,
    SAMPLER_STEPS_MAX,
    SEED_MAX,
    SHIFT_MAX,
    WAIT_MAX_S,
    WIDTH_MAX,
    WORKERS_MAX,
    SettingError,
    choice,
    integer,
    interval,
    named,
    real,
    refuse,
)
from mdaug.storage import join

STAGES = ("classifier", "vae", "latents", "dit")


@dataclass(frozen=True)
class ClassifierStage:
    """The person classifier that measures identity (reconstruction and generator identity ratios, fidelity,
    memorisation; the sampling sweep's judge). Trained on the real train split only; never a training signal for
    the generator.

    judge_*: the independent judge (classifier/judge.pt) the same stage trains beside it, on the same data with
    seed + 1: another architecture (mdaug.models.classifier.ARCHITECTURES), never used by the sweep or the
    generator, which reports generated sets' identity next to the sweep's judge. batch_size and lr are shared."""

    steps: int = 600
    batch_size: int = 32
    width: int = 128
    lr: float = 4e-3
    judge_arch: str = "cnn2d"
    judge_steps: int = 1200
    judge_width: int = 128

    def __post_init__(self) -> None:
        from mdaug.models.classifier import ARCHITECTURES

        integer(self, "steps", 1, COUNT_MAX)
        integer(self, "batch_size", 1, BATCH_MAX)
        integer(self, "width", 1, WIDTH_MAX)
        real(self, "lr", 0.0, LR_MAX, lo_open=True)
        choice(self, "judge_arch", ARCHITECTURES)
        integer(self, "judge_steps", 1, COUNT_MAX)
        integer(self, "judge_width", 1, WIDTH_MAX)


@dataclass(frozen=True)
class VAEStage:
    """VA-VAE training. architecture: a name in mdaug.models.vavae.VAE_ARCHITECTURES.

    data / train_per_person: what the autoencoder trains on — another manifest (e.g. walkers who are not the
    task's persons) or, when empty, the task manifest; its first train_per_person train images per person
    (0: all). Recorded in the checkpoint, so the evaluation can verify what the generator saw.
    identity_weight: weight of the identity loss, the feature distance between an image and its
    reconstruction in a person classifier trained (identity_steps steps) on the autoencoder's own data."""

    architecture: str = "tiny"
    epochs: int = 10
    steps_per_epoch: int = 0  # 0: one pass over the training images per epoch
    batch_size: int = 32
    lr: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.9)
    schedule: str = "constant"  # constant | onecycle (training/vae_module.py)
    data: str = ""
    train_per_person: int = 0
    identity_weight: float = 0.0
    identity_steps: int = 300
    disc_start: int = 5001  # generator steps before the PatchGAN joins
    kl_weight: float = 1e-6
    vf_encoder: str = "none"  # dinov2 | none
    vf_weights: str | None = None  # DINOv2 folder (Hugging Face format), path or storage URI
    perceptual_weights: str | None = None  # torch.export program (.pt2), path or URI; none → no perceptual loss
    checkpoint: str | None = None  # an official VA-VAE checkpoint: fine-tune from it

    def __post_init__(self) -> None:
        from mdaug.models.vavae import VAE_ARCHITECTURES

        choice(self, "architecture", VAE_ARCHITECTURES)
        integer(self, "epochs", 1, COUNT_MAX)
        integer(self, "steps_per_epoch", 0, COUNT_MAX, " (0: one pass over the training images)")
        integer(self, "batch_size", 1, BATCH_MAX)
        real(self, "lr", 0.0, LR_MAX, lo_open=True)
        interval(self, "betas", 0.0, 0.9999, note=" (Adam's β1, β2 < 1)")
        choice(self, "schedule", ("constant", "onecycle"))  # training.vae_module.SCHEDULES
        integer(self, "train_per_person", 0, PER_PERSON_MAX, " (0: all)")
        real(self, "identity_weight", 0.0, 1e6, note=" (0: no identity loss)")
        integer(self, "identity_steps", 1, COUNT_MAX)
        integer(self, "disc_start", 0, 10**9, " generator steps")
        real(self, "kl_weight", 0.0, 1e6)
        choice(self, "vf_encoder", ("dinov2", "none"))
        if self.vf_weights and self.vf_encoder == "none":
            raise SettingError(self, "vf_weights", "{at}vf_weights is set but {at}vf_encoder is none: set "
                                                   "{at}vf_encoder=dinov2 for the VF loss (or drop vf_weights)")


@dataclass(frozen=True)
class DiTStage:
    """DiT training on the extracted latents of the train_per_person-subset of each person's train images (0: all):
    a generator for the evaluation's arms at k = train_per_person, written to dit_k{k}/ (else dit/). subset_seed
    picks the subset (0: the first k in the split's order; s > 0: a random one, mdaug.data.subsets); replicate r
    (a generator replicate: its own seed, and its own subset where the VA-VAE saw no task image) is written to
    dit_k{k}_r{r}/.
    other_data: a manifest of other persons (never the task's) whose train images the DiT learns beside the task's,
    as persons of their own (extra labels it is never asked to generate): how walking varies from recording to
    recording is learned from many persons, not only from k images each; other_share: about that fraction of each
    batch (0: off). The pipeline uses its other simulated walkers (aux) when other_share > 0 and other_data is "".
    Every validation epoch samples identity_per_person images per person and logs the identity ratio."""

    size: str = "tiny"
    patch_size: int = 1
    epochs: int = 20
    steps_per_epoch: int = 0  # 0: one pass over the training latents per epoch
    train_per_person: int = 0
    subset_seed: int = 0
    replicate: int = 0
    identity_per_person: int = 2
    batch_size: int = 64
    lr: float = 2e-4
    ema_decay: float = 0.9999
    class_dropout: float = 0.1
    preview_steps: int = 25
    preview_cfg: float = 4.0
    other_data: str = ""
    other_share: float = 0.0

    def __post_init__(self) -> None:
        from mdaug.models.dit import DIT_SIZES

        choice(self, "size", DIT_SIZES)
        integer(self, "patch_size", 1, 64)
        integer(self, "epochs", 1, COUNT_MAX)
        integer(self, "steps_per_epoch", 0, COUNT_MAX, " (0: one pass over the training latents)")
        integer(self, "train_per_person", 0, PER_PERSON_MAX, " (0: all)")
        integer(self, "subset_seed", 0, SEED_MAX, " (0: the first k in the split's order)")
        integer(self, "replicate", 0, 100, " (a generator replicate's index: its folder dit_k{k}_r{replicate})")
        integer(self, "identity_per_person", 1, 1000)
        integer(self, "batch_size", 1, BATCH_MAX)
        real(self, "lr", 0.0, LR_MAX, lo_open=True)
        real(self, "ema_decay", 0.0, 1.0, hi_open=True)
        real(self, "class_dropout", 0.0, 1.0, hi_open=True, note=" (a probability; 1 never trains the labels)")
        integer(self, "preview_steps", 1, SAMPLER_STEPS_MAX)
        real(self, "preview_cfg", 0.0, CFG_MAX)
        real(self, "other_share", 0.0, 0.9, note=" (a fraction of each batch; 0: the task's persons only)")


@dataclass(frozen=True)
class TrainJobConfig:
    """Everything a training job needs. `out` holds checkpoints, latents and (by default) MLflow."""

    stage: str = "vae"  # set by jobs/train.py --stage (and by the pipeline)
    data: str = ""  # split manifest (mdaug split); set by --data
    out: str = "runs/train"
    tracking_dir: str = ""  # sqlite MLflow store folder when MLFLOW_TRACKING_URI is unset; "" = out
    # where every artifact Ray workers read or write lives (images, VA-VAE, latents, checkpoints; Ray Train's
    # under ray/): a location every node reaches (s3://bucket/prefix, an NFS folder); "" = out (one machine)
    storage: str = ""
    experiment: str = "mdaug"
    workers: int = 2
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 0.5  # fractional: leaves CPU for Ray Data tasks on small machines
    # seconds an autoscaling cluster gets to add the nodes the workers need (asked for with request_resources)
    # before the job is refused; 0: refuse at once (a local Ray never grows). A cold GPU node takes minutes:
    # boot, image pull, setup (cluster.yaml's g5 workers: about 5–10 min), hence 900 in the cluster recipes.
    resource_wait_s: float = 0.0
    max_failures: int = 2
    keep_checkpoints: int = 2
    resume: bool = False
    seed: int = 0  # model initialisation and the order of every epoch's batches
    classifier: ClassifierStage = field(default_factory=ClassifierStage)
    vae: VAEStage = field(default_factory=VAEStage)
    dit: DiTStage = field(default_factory=DiTStage)

    def __post_init__(self) -> None:
        from mdaug.models.vavae import VAE_ARCHITECTURES

        if self.stage not in STAGES:
            raise refuse(self, "stage", self.stage, f"unknown stage; use one of {', '.join(STAGES)}")
        named(self, "experiment")
        integer(self, "workers", 1, WORKERS_MAX)
        real(self, "gpus_per_worker", 0.0, GPUS_MAX)
        real(self, "cpus_per_worker", 0.0, CPUS_MAX, lo_open=True)
        real(self, "resource_wait_s", 0.0, WAIT_MAX_S, note=" seconds (0: refuse at once)")
        integer(self, "max_failures", 0, 100, " (Ray Train restarts; -1, forever, is refused)")
        integer(self, "keep_checkpoints", 1, 1000)
        integer(self, "seed", 0, SEED_MAX)
        side = VAE_ARCHITECTURES[self.vae.architecture].latent_size
        if side % self.dit.patch_size:
            raise SettingError(self, "dit.patch_size", f"{{at}}dit.patch_size={self.dit.patch_size}: must divide the "
                                                       f"latent side {side} of {{at}}vae.architecture="
                                                       f"{self.vae.architecture}")

    @property
    def out_path(self) -> Path:
        return Path(self.out).resolve()

    @property
    def dit_dir(self) -> Path:
        k, r = self.dit.train_per_person, self.dit.replicate
        return self.out_path / ((f"dit_k{k}" if k else "dit") + (f"_r{r}" if r else ""))

    @property
    def run_name_file(self) -> Path:
        """Where the stage's unfinished Ray run is named (ray_train.RunMarker); each DiT in its own folder."""
        return (self.dit_dir if self.stage == "dit" else self.out_path / self.stage) / "ray_run_name"

    def artifact(self, *parts: str) -> str:
        """The storage location of an artifact (under `storage`, else under `out`)."""
        return join(self.storage or str(self.out_path), *parts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def config_hash(self) -> str:
        """sha256 (16 hex) of the whole resolved configuration."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SweepConfig:
    """Search space bounds, budget and the Ray resources of one trial."""

    trials: int = 8
    per_person: int = 8
    search: str = "random"  # random | optuna (when installed)
    cfg_scale: tuple[float, float] = (1.0, 12.0)
    steps: tuple[int, int] = (8, 250)
    cfg_interval_start: tuple[float, float] = (0.0, 0.3)
    timestep_shift: tuple[float, float] = (0.1, 1.0)
    seed: int = 0  # seeds the search (the same sweep tries the same settings) and the trials' images
    cpus_per_trial: float = 1.0  # Ray CPUs reserved per trial (each trial samples on one thread)
    gpus_per_trial: float = 0.0  # > 0: the trial generates (bf16) and scores on its GPU
    # tstr: maximise the real validation accuracy of a classifier trained on the trial's images alone (needs
    # identity and diversity, grades no classifier's features); frechet: minimise the Fréchet distance on the
    # identity classifier's features. Both are measured for every trial.
    objective: str = "tstr"
    tstr_steps: int = 300  # optimizer steps of the tstr objective's classifier

    def __post_init__(self) -> None:
        integer(self, "trials", 0, 10_000, " (0: no sweep)")
        integer(self, "per_person", 1, 1000)
        choice(self, "objective", ("tstr", "frechet"))
        integer(self, "tstr_steps", 1, 100_000)
        choice(self, "search", ("random", "optuna"))
        interval(self, "cfg_scale", 0.0, CFG_MAX)
        interval(self, "steps", 1, SAMPLER_STEPS_MAX, ints=True)
        interval(self, "cfg_interval_start", 0.0, 1.0)
        interval(self, "timestep_shift", 0.0, SHIFT_MAX, lo_open=True)
        integer(self, "seed", 0, SEED_MAX)
        real(self, "cpus_per_trial", 0.0, CPUS_MAX, lo_open=True)
        real(self, "gpus_per_trial", 0.0, GPUS_MAX)
