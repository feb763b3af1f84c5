"""One typed configuration for `jobs/train.py`, with presets and dotted key=value overrides."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from mdaug.storage import join

STAGES = ("classifier", "vae", "latents", "dit")


@dataclass(frozen=True)
class ClassifierStage:
    """The person classifier that measures identity (reconstruction and generator identity ratios, fidelity,
    memorisation). Trained on the real train split only; never a training signal for the generator."""

    steps: int = 600
    batch_size: int = 32
    width: int = 128
    lr: float = 4e-3


@dataclass(frozen=True)
class VAEStage:
    """VA-VAE training. preset: a name in mdaug.models.vavae.VAE_PRESETS.

    data / train_per_person: what the autoencoder trains on — another manifest (e.g. walkers who are not the
    task's persons) or, when empty, the task manifest; its first train_per_person train images per person
    (0: all). Recorded in the checkpoint, so the evaluation can verify what the generator saw.
    identity_weight: weight of the identity loss, the feature distance between an image and its
    reconstruction in a person classifier trained (identity_steps steps) on the autoencoder's own data."""

    preset: str = "tiny"
    epochs: int = 10
    steps_per_epoch: int = 0  # 0: one pass over the training images per epoch
    batch_size: int = 32
    lr: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.9)
    data: str = ""
    train_per_person: int = 0
    identity_weight: float = 0.0
    identity_steps: int = 300
    disc_start: int = 5001  # generator steps before the PatchGAN joins
    kl_weight: float = 1e-6
    vf_encoder: str = "none"  # dinov2 | none
    vf_weights: str | None = None  # local DINOv2 folder (Hugging Face format)
    perceptual_weights: str | None = None  # TorchScript file; none → no perceptual loss
    checkpoint: str | None = None  # an official VA-VAE checkpoint: fine-tune from it


@dataclass(frozen=True)
class DiTStage:
    """DiT training on the extracted latents of the first train_per_person train images per person (0: all):
    a generator for the evaluation's arms at k = train_per_person, written to dit_k{k}/ (else dit/).
    Every validation epoch samples identity_per_person images per person and logs the identity ratio."""

    size: str = "tiny"
    patch_size: int = 1
    epochs: int = 20
    steps_per_epoch: int = 0  # 0: one pass over the training latents per epoch
    train_per_person: int = 0
    identity_per_person: int = 2
    batch_size: int = 64
    lr: float = 2e-4
    ema_decay: float = 0.9999
    class_dropout: float = 0.1
    preview_steps: int = 25
    preview_cfg: float = 4.0


@dataclass(frozen=True)
class TrainJobConfig:
    """Everything a training job needs. `out` holds checkpoints, latents and (by default) MLflow."""

    stage: str = "vae"
    data: str = ""  # split manifest (mdaug split)
    preset: str = "tiny"
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
        if self.stage not in STAGES:
            raise ValueError(f"unknown stage {self.stage!r}; use one of {', '.join(STAGES)}")
        if self.workers < 1:
            raise ValueError(f"--workers must be ≥ 1, got {self.workers}")
        if self.resource_wait_s < 0:
            raise ValueError(f"resource_wait_s must be ≥ 0 seconds, got {self.resource_wait_s}")

    @property
    def out_path(self) -> Path:
        return Path(self.out).resolve()

    @property
    def dit_dir(self) -> Path:
        k = self.dit.train_per_person
        return self.out_path / (f"dit_k{k}" if k else "dit")

    @property
    def run_name_file(self) -> Path:
        """Where the stage's Ray run name is kept, for --resume."""
        return self.out_path / self.stage / "ray_run_name"

    def artifact(self, *parts: str) -> str:
        """The storage location of an artifact (under `storage`, else under `out`)."""
        return join(self.storage or str(self.out_path), *parts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def config_hash(self) -> str:
        """sha256 (16 hex) of the whole resolved configuration."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


PRESETS: dict[str, dict[str, Any]] = {
    # 64² gray, 2-core CPU: two DDP workers of one thread each (bench/dit_overhead.py: the tiny DiT trains at
    # 1.01× a plain 2-thread loop this way, 0.81× as one 2-thread worker), batch 16 each = 32 per step.
    # No PatchGAN: too few steps for it to help; the identity loss keeps who walks in the reconstructions.
    "tiny": {"workers": 2, "cpus_per_worker": 1.0,
             "vae": {"preset": "tiny", "epochs": 6, "steps_per_epoch": 100, "batch_size": 16, "lr": 1e-3,
                     "betas": (0.9, 0.99), "disc_start": 100_000, "identity_weight": 1.0},
             # few latents per person: small batches and a high rate learn identity fastest per CPU-second
             # (identity ratio after 160 s: batch 32 / lr 3e-3 0.84, batch 32 / 2e-3 0.71, batch 64 / 1e-3 0.17)
             "dit": {"size": "tiny", "patch_size": 2, "epochs": 4, "steps_per_epoch": 200, "batch_size": 16,
                     "lr": 3e-3, "ema_decay": 0.999}},
    # 128² gray, one GPU or a strong CPU.
    "small": {"vae": {"preset": "small", "epochs": 50, "batch_size": 32, "lr": 2e-4, "disc_start": 2000,
                      "identity_weight": 1.0},
              "dit": {"size": "S", "patch_size": 1, "epochs": 200, "batch_size": 128}},
    # The original project's setting: f16d32 VA-VAE at 256² RGB, DiT-B/1, GPUs.
    "paper": {"vae": {"preset": "f16d32", "epochs": 50, "batch_size": 32, "lr": 1e-4, "disc_start": 5001},
              "dit": {"size": "B", "patch_size": 1, "epochs": 400, "batch_size": 256, "lr": 2e-4},
              "gpus_per_worker": 1.0, "cpus_per_worker": 4.0},
}


def _coerce(value: str, current: Any, key: str) -> Any:
    parsed = yaml.safe_load(value)
    if current is None or parsed is None:
        return parsed
    if isinstance(current, bool):
        if not isinstance(parsed, bool):
            raise ValueError(f"override {key}={value!r}: expected true or false")
        return parsed
    if isinstance(current, int | float):
        try:
            return int(value) if isinstance(current, int) else float(value)
        except ValueError:
            raise ValueError(f"override {key}={value!r}: expected a {type(current).__name__}") from None
    if isinstance(current, str):
        return str(parsed)
    if isinstance(current, tuple) and isinstance(parsed, list) and len(parsed) == len(current):
        return tuple(type(c)(v) for c, v in zip(current, parsed, strict=True))
    raise ValueError(f"override {key}={value!r}: expected a {type(current).__name__}")


def _apply(obj: Any, updates: dict[str, Any], where: str = "") -> Any:
    names = {f.name for f in fields(obj)}
    changes = {}
    for k, v in updates.items():
        if k not in names:
            raise ValueError(f"unknown configuration key {where + k!r}; valid keys: {', '.join(sorted(names))}")
        cur = getattr(obj, k)
        changes[k] = _apply(cur, v, f"{where}{k}.") if dataclasses.is_dataclass(cur) and isinstance(v, dict) else v
    return replace(obj, **changes)


def build_config(stage: str, data: str, preset: str = "tiny", overrides: list[str] = (),
                 **flags: Any) -> TrainJobConfig:
    """Preset, then command-line flags (None = not given), then key=value overrides (dotted keys)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; use one of {', '.join(PRESETS)}")
    cfg = _apply(TrainJobConfig(stage=stage, data=data, preset=preset), PRESETS[preset])
    cfg = replace(cfg, **{k: v for k, v in flags.items() if v is not None})
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not key=value (e.g. vae.lr=1e-3)")
        key, value = item.split("=", 1)
        parts = key.split(".")
        target: Any = cfg
        for p in parts[:-1]:
            if p not in {f.name for f in fields(target)} or not dataclasses.is_dataclass(getattr(target, p)):
                raise ValueError(f"unknown configuration key {key!r}")
            target = getattr(target, p)
        if parts[-1] not in {f.name for f in fields(target)}:
            raise ValueError(f"unknown configuration key {key!r}; valid keys under it: "
                             f"{', '.join(sorted(f.name for f in fields(target)))}")
        update: dict[str, Any] = {parts[-1]: _coerce(value, getattr(target, parts[-1]), key)}
        for p in reversed(parts[:-1]):
            update = {p: update}
        cfg = _apply(cfg, update)
    return cfg


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'vae': {'lr': 1}} → {'vae.lr': 1} (for MLflow params)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= flatten(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


def to_yaml(cfg: TrainJobConfig) -> str:
    return yaml.safe_dump(json.loads(json.dumps(cfg.to_dict())), sort_keys=False)  # tuples as lists
