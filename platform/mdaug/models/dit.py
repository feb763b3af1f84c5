"""LightningDiT: DiT with adaLN-Zero, SwiGLU FFN, RMSNorm, 2-D RoPE (on top of fixed sin-cos position
embeddings), optional qk-norm, fused scaled-dot-product attention. Class-conditional on persons; the
null (unconditional) label is index num_classes and is trained by label dropout."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class DiTConfig:
    input_size: int = 16
    patch_size: int = 1
    in_channels: int = 32
    hidden_size: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    num_classes: int = 31
    class_dropout: float = 0.1
    qk_norm: bool = False

    @property
    def null_label(self) -> int:
        return self.num_classes


DIT_SIZES: dict[str, dict[str, int]] = {
    "tiny": {"depth": 4, "hidden_size": 128, "num_heads": 4},
    "S": {"depth": 12, "hidden_size": 384, "num_heads": 6},
    "B": {"depth": 12, "hidden_size": 768, "num_heads": 12},
    "L": {"depth": 24, "hidden_size": 1024, "num_heads": 16},
    "XL": {"depth": 28, "hidden_size": 1152, "num_heads": 16},
}


def dit_config(size: str, **kw) -> DiTConfig:
    """A size ("tiny", "S", "B", "L", "XL") with the given data fields (input_size, in_channels, …)."""
    if size not in DIT_SIZES:
        raise ValueError(f"unknown DiT size {size!r}; choose from {', '.join(DIT_SIZES)}")
    return replace(DiTConfig(**kw), **DIT_SIZES[size])


def sincos_2d(dim: int, grid: int) -> torch.Tensor:
    """Fixed 2-D sin-cos position embedding (grid², dim): half the channels encode rows, half columns."""
    def one_d(d: int, pos: torch.Tensor) -> torch.Tensor:
        omega = 1.0 / 10000 ** (torch.arange(d // 2, dtype=torch.float64) / (d / 2))
        out = pos.reshape(-1, 1).double() * omega[None]
        return torch.cat([out.sin(), out.cos()], dim=1)

    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    return torch.cat([one_d(dim // 2, rows), one_d(dim // 2, cols)], dim=1).float()


class Rope2D(nn.Module):
    """Rotary embedding over a grid, rotate-half layout: of each head's channel halves, the first quarter
    pairs rotate with the row and the second with the column. Applied to (B, N, heads, head_dim) in the
    input dtype (one fused pass under torch.compile)."""

    def __init__(self, head_dim: int, grid: int, theta: float = 10000.0) -> None:
        super().__init__()
        quarter = head_dim // 4
        freqs = 1.0 / theta ** (torch.arange(quarter, dtype=torch.float64) / quarter)
        rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
        ang = torch.cat([rows.reshape(-1, 1) * freqs, cols.reshape(-1, 1) * freqs], dim=1)  # (N, head_dim/2)
        self.register_buffer("cos", ang.cos().float()[:, None], persistent=False)  # (N, 1, head_dim/2)
        self.register_buffer("sin", ang.sin().float()[:, None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, N, heads, head_dim)
        half = x.shape[-1] // 2
        x1, x2 = x[..., :half], x[..., half:]
        cos, sin = self.cos.to(x.dtype), self.sin.to(x.dtype)
        return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, qk_norm: bool, rope: Rope2D) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.q_norm = nn.RMSNorm(self.head_dim, eps=1e-6) if qk_norm else nn.Identity()
        self.k_norm = nn.RMSNorm(self.head_dim, eps=1e-6) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim)
        self.rope = rope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, self.head_dim).unbind(2)  # (B, N, heads, head_dim)
        q, k = self.rope(self.q_norm(q)), self.rope(self.k_norm(k))
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class SwiGLU(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.w12 = nn.Linear(dim, 2 * hidden)
        self.w3 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(a) * b)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


class DiTBlock(nn.Module):
    def __init__(self, c: DiTConfig, rope: Rope2D) -> None:
        super().__init__()
        h = c.hidden_size
        self.norm1 = nn.RMSNorm(h, eps=1e-6)
        self.attn = Attention(h, c.num_heads, c.qk_norm, rope)
        self.norm2 = nn.RMSNorm(h, eps=1e-6)
        self.mlp = SwiGLU(h, int(2 / 3 * c.mlp_ratio * h))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(h, 6 * h))

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        sh1, sc1, g1, sh2, sc2, g2 = self.adaLN_modulation(cond).chunk(6, dim=-1)
        x = x + g1[:, None] * self.attn(modulate(self.norm1(x), sh1, sc1))
        return x + g2[:, None] * self.mlp(modulate(self.norm2(x), sh2, sc2))


class TimestepEmbedder(nn.Module):
    """t ∈ [0, 1] → sinusoidal features of 1000·t → MLP."""

    def __init__(self, hidden: int, freq_dim: int = 256) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.freq_dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
        args = 1000.0 * t.float()[:, None] * freqs[None]
        return self.mlp(torch.cat([args.cos(), args.sin()], dim=-1))


class LightningDiT(nn.Module):
    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        c = self.config = config
        if c.input_size % c.patch_size:
            raise ValueError(f"input_size {c.input_size} is not a multiple of patch_size {c.patch_size}")
        grid = c.input_size // c.patch_size
        self.x_embedder = nn.Conv2d(c.in_channels, c.hidden_size, c.patch_size, stride=c.patch_size)
        self.t_embedder = TimestepEmbedder(c.hidden_size)
        self.y_embedder = nn.Embedding(c.num_classes + 1, c.hidden_size)  # last row: the null label
        self.register_buffer("pos_embed", sincos_2d(c.hidden_size, grid)[None], persistent=False)
        rope = Rope2D(c.hidden_size // c.num_heads, grid)
        self.blocks = nn.ModuleList(DiTBlock(c, rope) for _ in range(c.depth))
        self.norm_final = nn.RMSNorm(c.hidden_size, eps=1e-6)
        self.adaLN_final = nn.Sequential(nn.SiLU(), nn.Linear(c.hidden_size, 2 * c.hidden_size))
        self.final = nn.Linear(c.hidden_size, c.patch_size**2 * c.in_channels)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias) if m.bias is not None else None
        w = self.x_embedder.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.x_embedder.bias)
        nn.init.normal_(self.y_embedder.weight, std=0.02)
        for layer in (self.t_embedder.mlp[0], self.t_embedder.mlp[2]):
            nn.init.normal_(layer.weight, std=0.02)
        for block in self.blocks:  # adaLN-Zero: every block starts as the identity
            nn.init.zeros_(block.adaLN_modulation[-1].weight)
            nn.init.zeros_(block.adaLN_modulation[-1].bias)
        for layer in (self.adaLN_final[-1], self.final):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def drop_labels(self, y: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Replace labels by the null label with probability class_dropout (training CFG)."""
        if self.config.class_dropout <= 0:
            return y
        drop = torch.rand(y.shape, device=y.device, generator=generator) < self.config.class_dropout
        return torch.where(drop, torch.full_like(y, self.config.null_label), y)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Velocity for latents x (B, C, H, W) at times t (B,) for labels y (B,) (null label allowed)."""
        c = self.config
        b, _, hgt, wid = x.shape
        h = self.x_embedder(x).flatten(2).transpose(1, 2) + self.pos_embed
        cond = self.t_embedder(t) + self.y_embedder(y)
        for block in self.blocks:
            h = block(h, cond)
        shift, scale = self.adaLN_final(cond).chunk(2, dim=-1)
        h = self.final(modulate(self.norm_final(h), shift, scale))
        p, g = c.patch_size, hgt // c.patch_size
        h = h.view(b, g, g, p, p, c.in_channels).permute(0, 5, 1, 3, 2, 4)
        return h.reshape(b, c.in_channels, hgt, wid)

    def train_flops_per_image(self) -> float:
        """Forward+backward FLOPs per image (3 × forward matmul FLOPs incl. attention)."""
        c = self.config
        n = (c.input_size // c.patch_size) ** 2
        h = c.hidden_size
        ffn = int(2 / 3 * c.mlp_ratio * h)
        per_block = 2 * n * (h * 3 * h + h * h + h * 2 * ffn + ffn * h) + 4 * n * n * h
        return 3.0 * c.depth * per_block
