"""Frozen vision-foundation encoders for the VF loss: `dinov2` (Hugging Face Dinov2Model from local
weights) or `none`. Nothing is downloaded: a missing path is an error naming it and where to get it."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DINOV2_HELP = (
    "Save DINOv2 ViT-L/14 in Hugging Face format once, on a machine with internet: "
    "`Dinov2Model.from_pretrained('facebook/dinov2-large').save_pretrained(DIR)`, then pass DIR "
    "(or DIR/model.safetensors)."
)


class DinoV2Encoder(nn.Module):
    """Images in [-1, 1] (gray or RGB) → patch features (B, D, 16, 16) at 224², frozen."""

    def __init__(self, path: str | Path, image_size: int = 224) -> None:
        super().__init__()
        try:
            from transformers import Dinov2Model
        except ImportError:
            raise ImportError("the dinov2 VF encoder needs the transformers package: pip install -e '.[dinov2]' "
                              "(scripts/setup.sh installs it)") from None

        path = Path(path)
        folder = path.parent if path.is_file() else path
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"DINOv2 weights not found at {path} (no config.json there). {DINOV2_HELP}")
        self.model = Dinov2Model.from_pretrained(folder, local_files_only=True).eval().requires_grad_(False)
        self.name = f"dinov2:{path}"
        self.image_size = image_size
        self.dim = self.model.config.hidden_size
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> DinoV2Encoder:  # stays frozen in eval mode
        return super().train(False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        x = F.interpolate((x + 1) / 2, size=(self.image_size, self.image_size), mode="bilinear", antialias=True)
        tokens = self.model(pixel_values=(x - self.mean) / self.std).last_hidden_state
        skip = 1 + getattr(self.model.config, "num_register_tokens", 0)
        grid = self.image_size // self.model.config.patch_size
        return tokens[:, skip:].transpose(1, 2).reshape(x.shape[0], self.dim, grid, grid)


def build_foundation(kind: str, weights: str | Path | None = None) -> DinoV2Encoder | None:
    """`dinov2` needs local weights; `none` disables the VF loss."""
    if kind == "none":
        return None
    if kind == "dinov2":
        if weights is None:
            raise ValueError(f"the dinov2 VF encoder needs vae.vf_weights (a local DINOv2 folder). {DINOV2_HELP}")
        return DinoV2Encoder(weights)
    raise ValueError(f"unknown foundation encoder {kind!r}; use dinov2 or none")
