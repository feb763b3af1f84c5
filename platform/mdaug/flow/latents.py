"""Per-channel latent statistics that travel inside the DiT checkpoint, with the identity of the VAE
that produced the latents. Decoding without them, or with another VAE, is an error — never silent."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


def latent_moments(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Per channel of (B, C, H, W) latents: the float64 sum and sum of squares, and how many values each sums."""
    z = z.double().transpose(0, 1).flatten(1)  # (C, B·H·W)
    return z.sum(1), (z * z).sum(1), z.shape[1]


@dataclass
class LatentStats:
    mean: torch.Tensor  # (C,)
    std: torch.Tensor  # (C,)
    vae_identity: str
    count: int

    @classmethod
    def from_latents(cls, batches: Iterable[torch.Tensor], vae_identity: str) -> LatentStats:
        """From (B, C, H, W) batches of latents."""
        return cls.from_moments(map(latent_moments, batches), vae_identity)

    @classmethod
    def from_moments(cls, parts: Iterable[tuple[torch.Tensor, torch.Tensor, int]], vae_identity: str) -> LatentStats:
        """From parts' latent_moments, each computed where its latents are: float64 sums of sums."""
        total, sq, n = None, None, 0
        for part_sum, part_sq, count in parts:
            total = part_sum if total is None else total + part_sum
            sq = part_sq if sq is None else sq + part_sq
            n += count
        if n == 0:
            raise ValueError("no latents to compute statistics from")
        mean = total / n
        std = (sq / n - mean**2).clamp_min(1e-12).sqrt()
        return cls(mean.float(), std.float(), vae_identity, n)

    def _shape(self, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return t.to(z.device, z.dtype).view(1, -1, 1, 1)

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self._shape(self.mean, z)) / self._shape(self.std, z)

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        return z * self._shape(self.std, z) + self._shape(self.mean, z)

    def to_dict(self) -> dict:
        return {"mean": self.mean.clone(), "std": self.std.clone(), "vae_identity": self.vae_identity,
                "count": self.count}

    @classmethod
    def from_dict(cls, d: dict | None, source: str = "checkpoint") -> LatentStats:
        if not d or "mean" not in d or "std" not in d or not d.get("vae_identity"):
            raise ValueError(
                f"{source} carries no latent statistics (mean/std and VAE identity); it cannot be decoded. "
                "Train the DiT with mdaug so the statistics are stored in its checkpoint."
            )
        return cls(d["mean"], d["std"], d["vae_identity"], int(d.get("count", 0)))


@torch.no_grad()
def decode_latents(vae: nn.Module, z_normalized: torch.Tensor, stats: LatentStats | None) -> torch.Tensor:
    """Denormalise with the checkpoint's statistics and decode, after checking the VAE is the one that
    made the training latents."""
    if stats is None:
        raise ValueError("no latent statistics: refusing to decode normalised latents as if they were raw")
    identity = vae.identity()
    if identity != stats.vae_identity:
        raise ValueError(
            f"this VAE ({identity[:12]}…) is not the one the DiT's latents came from "
            f"({stats.vae_identity[:12]}…); decode with the VAE recorded in the DiT checkpoint"
        )
    return vae.decode(stats.denormalize(z_normalized))


class EncodeBatch:
    """Ray Data actor: the VAE encoder, loaded once per actor (this module imports only torch: actors start fast)."""

    def __init__(self, vae_uri: str, architecture: str) -> None:
        from mdaug.models.vavae import load_vae

        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.vae = load_vae(vae_uri, architecture).to(self.device)

    @torch.no_grad()
    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = torch.from_numpy(batch["image"]).to(self.device)
        z = self.vae.encode(x).mean.float().cpu().numpy()
        return {"latent": z, "label": batch["label"], "index": batch["index"], "sha256": batch["sha256"]}
