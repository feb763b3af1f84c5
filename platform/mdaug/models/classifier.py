"""The person classifier of micro-Doppler spectrograms: the evaluation's classifier, the feature network of
the fidelity, identity and memorisation metrics, and (trained on the autoencoder's own data) the encoder of
the VA-VAE's identity loss.

A spectrogram is a time series of Doppler profiles: every time column (all Doppler rows of all channels) is
one input vector; 1-D convolutions run over time and global average pooling makes the features independent
of where in the recording a stride starts. Gait identity lives in the Doppler profile and the cadence, which
this sees directly: on the simulated set (31 persons, 64², 300 steps) it recognises 76 % of the validation
images from 5 training images per person and 96 % from 10, where a 2-D ResNet of several times its cost
reaches 55 % and 92 %.

`ClassifierConfig.arch` selects the architecture: "temporal" (this file; files written before `arch` existed
load as it) or "cnn2d" (models/cnn2d.py, the independent judge); `build_classifier` makes either.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from mdaug import storage
from mdaug.models import cnn2d

ARCHITECTURES = {"temporal": "temporal 1-D CNN", "cnn2d": "2-D CNN"}  # arch → how a report names it


@dataclass(frozen=True)
class ClassifierConfig:
    """in_channels × height: the rows of one time column (channels × Doppler bins)."""

    in_channels: int
    height: int
    num_classes: int
    width: int = 128  # channels of every temporal block (cnn2d: of its last block)
    layers: int = 3  # blocks; each after the first halves the time axis (cnn2d: each halves both axes)
    kernel: int = 5  # time steps per convolution (cnn2d: the side of its square kernels)
    arch: str = "temporal"  # temporal | cnn2d

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"unknown classifier architecture {self.arch!r}; use one of {', '.join(ARCHITECTURES)}")

    @classmethod
    def for_arch(cls, arch: str, in_channels: int, height: int, num_classes: int,
                 width: int = 128) -> ClassifierConfig:
        """The default depth and kernel of `arch` at this input and width."""
        depth = {"layers": cnn2d.LAYERS, "kernel": cnn2d.KERNEL} if arch == "cnn2d" else {}
        return cls(in_channels, height, num_classes, width, arch=arch, **depth)


def build_classifier(cfg: ClassifierConfig) -> nn.Module:
    """A freshly initialised classifier of cfg.arch."""
    return cnn2d.Conv2dClassifier(cfg) if cfg.arch == "cnn2d" else PersonClassifier(cfg)


class PersonClassifier(nn.Module):
    """The temporal classifier (arch "temporal")."""

    def __init__(self, cfg: ClassifierConfig) -> None:
        if cfg.arch != "temporal":
            raise ValueError(f"PersonClassifier is the temporal classifier; build arch {cfg.arch!r} with "
                             "build_classifier(cfg)")
        super().__init__()
        self.config = cfg
        blocks, cin = [], cfg.in_channels * cfg.height
        for i in range(cfg.layers):
            blocks.append(nn.Sequential(
                nn.Conv1d(cin, cfg.width, cfg.kernel, stride=1 if i == 0 else 2, padding=cfg.kernel // 2,
                          bias=False),
                nn.BatchNorm1d(cfg.width), nn.ReLU()))
            cin = cfg.width
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Linear(cfg.width, cfg.num_classes)
        self.feature_dim = cfg.width

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each block's output (B, width, T_l) for images x (B, C, H, W) in [-1, 1]."""
        h = x.flatten(1, 2)  # (B, C·H, W): one vector per time column
        maps = []
        for block in self.blocks:
            h = block(h)
            maps.append(h)
        return maps

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer features (B, width): the last block, averaged over time."""
        return self.feature_maps(x)[-1].mean(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def save_classifier(net: nn.Module, path: Path, extra: dict | None = None) -> None:
    """A standalone classifier file: config, weights and what it was trained on (`extra`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    storage.atomic_torch_save({"format": "mdaug-classifier/1", "config": asdict(net.config),
                               "state_dict": net.state_dict(), **(extra or {})}, path)


def load_classifier(path: Path | str) -> tuple[nn.Module, dict]:
    """(classifier in eval mode, the file's other entries) from a local path or a storage URI; a missing or
    foreign file is a clear error."""
    if not storage.exists(path):
        raise FileNotFoundError(f"person classifier {path} not found; train it with "
                                "`jobs/train.py --stage classifier` (the pipeline does)")
    ckpt = storage.torch_load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != "mdaug-classifier/1":
        raise ValueError(f"{path} is not an mdaug classifier file")
    try:
        net = build_classifier(ClassifierConfig(**ckpt["config"]))  # no "arch" (older files): temporal
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: {err}; this mdaug cannot read it, retrain it with "
                         "`jobs/train.py --stage classifier`") from err
    net.load_state_dict(ckpt["state_dict"])
    return net.eval(), {k: v for k, v in ckpt.items() if k not in ("config", "state_dict", "format")}
