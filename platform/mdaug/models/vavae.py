"""VA-VAE: the LDM AutoencoderKL architecture with parameter names and shapes of the official release,
so an official checkpoint (`state_dict` with encoder.*, decoder.*, quant_conv.*, post_quant_conv.*) loads."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mdaug import storage


@dataclass(frozen=True)
class VAEConfig:
    """Architecture. Defaults are the official f16d32: 256² × 3 → 16 × 16 × 32."""

    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2
    attn_resolutions: tuple[int, ...] = (16,)
    z_channels: int = 32
    resolution: int = 256
    in_channels: int = 3
    out_ch: int = 3
    dropout: float = 0.0

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.ch_mult) - 1)

    @property
    def latent_size(self) -> int:
        return self.resolution // self.downsample


VAE_ARCHITECTURES: dict[str, VAEConfig] = {
    "f16d32": VAEConfig(),
    # CPU architecture for the embedded default: 64² gray → 16 × 16 × 8. Narrow (8 channels at full resolution,
    # 0.6 GFLOP per image for a training step: ×3.8 cheaper than 16) so it gets hundreds of steps on 2 cores; f4
    # keeps the limb arches; 8 latent channels keep more identity than 4 (reconstruction identity ratio 0.78 vs
    # 0.67 after 750 steps with the identity loss).
    "tiny": VAEConfig(ch=8, ch_mult=(1, 2, 4), num_res_blocks=1, attn_resolutions=(), z_channels=8,
                      resolution=64, in_channels=1, out_ch=1),
    "small": VAEConfig(ch=64, ch_mult=(1, 1, 2, 2, 4), num_res_blocks=1, attn_resolutions=(8,), z_channels=16,
                       resolution=128, in_channels=1, out_ch=1),
}


def Normalize(channels: int) -> nn.GroupNorm:  # noqa: N802 (official name)
    return nn.GroupNorm(num_groups=32 if channels % 32 == 0 else _groups(channels), num_channels=channels,
                        eps=1e-6, affine=True)


def _groups(channels: int) -> int:
    return max(g for g in (32, 16, 8, 4, 2, 1) if channels % g == 0)


class ResnetBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = Normalize(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = Normalize(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        if in_channels != out_channels:
            self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return (self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x) + h


class AttnBlock(nn.Module):
    """Single-head spatial self-attention with 1×1 q/k/v/proj convolutions (fused SDPA kernel)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = Normalize(channels)
        self.q, self.k, self.v = (nn.Conv2d(channels, channels, 1) for _ in range(3))
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        hn = self.norm(x)
        q, k, v = (m(hn).flatten(2).transpose(1, 2)[:, None] for m in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q, k, v)[:, 0].transpose(1, 2).reshape(b, c, h, w)
        return x + self.proj_out(out)


class Downsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class MiddleBlock(nn.Module):
    """ResNet → attention → ResNet at the lowest resolution (official names mid.block_1 / attn_1 / block_2)."""

    def __init__(self, channels: int, dropout: float) -> None:
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels, dropout)
        self.attn_1 = AttnBlock(channels)
        self.block_2 = ResnetBlock(channels, channels, dropout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(h)))


def run_stage(stage: nn.Module, h: torch.Tensor) -> torch.Tensor:
    """One resolution level: ResNet blocks (each followed by its attention block, if any), then the resampler."""
    for i, block in enumerate(stage.block):
        h = block(h)
        if len(stage.attn):
            h = stage.attn[i](h)
    for name in ("downsample", "upsample"):
        if hasattr(stage, name):
            h = getattr(stage, name)(h)
    return h


class Encoder(nn.Module):
    def __init__(self, c: VAEConfig) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(c.in_channels, c.ch, 3, padding=1)
        res, block_in = c.resolution, c.ch
        in_mult = (1, *c.ch_mult)
        self.down = nn.ModuleList()
        for level, mult in enumerate(c.ch_mult):
            stage = nn.Module()
            stage.block, stage.attn = nn.ModuleList(), nn.ModuleList()
            block_in, block_out = c.ch * in_mult[level], c.ch * mult
            for _ in range(c.num_res_blocks):
                stage.block.append(ResnetBlock(block_in, block_out, c.dropout))
                block_in = block_out
                if res in c.attn_resolutions:
                    stage.attn.append(AttnBlock(block_in))
            if level != len(c.ch_mult) - 1:
                stage.downsample = Downsample(block_in)
                res //= 2
            self.down.append(stage)
        self.mid = MiddleBlock(block_in, c.dropout)
        self.norm_out = Normalize(block_in)
        self.conv_out = nn.Conv2d(block_in, 2 * c.z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for stage in self.down:
            h = run_stage(stage, h)
        return self.conv_out(F.silu(self.norm_out(self.mid(h))))


class Decoder(nn.Module):
    def __init__(self, c: VAEConfig) -> None:
        super().__init__()
        block_in = c.ch * c.ch_mult[-1]
        res = c.latent_size
        self.conv_in = nn.Conv2d(c.z_channels, block_in, 3, padding=1)
        self.mid = MiddleBlock(block_in, c.dropout)
        stages: list[nn.Module] = []
        for level in reversed(range(len(c.ch_mult))):
            stage = nn.Module()
            stage.block, stage.attn = nn.ModuleList(), nn.ModuleList()
            block_out = c.ch * c.ch_mult[level]
            for _ in range(c.num_res_blocks + 1):
                stage.block.append(ResnetBlock(block_in, block_out, c.dropout))
                block_in = block_out
                if res in c.attn_resolutions:
                    stage.attn.append(AttnBlock(block_in))
            if level != 0:
                stage.upsample = Upsample(block_in)
                res *= 2
            stages.insert(0, stage)
        self.up = nn.ModuleList(stages)
        self.norm_out = Normalize(block_in)
        self.conv_out = nn.Conv2d(block_in, c.out_ch, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(z))
        for stage in reversed(self.up):
            h = run_stage(stage, h)
        return self.conv_out(F.silu(self.norm_out(h)))


class DiagonalGaussian:
    """Posterior q(z|x) = N(mean, exp(logvar)), logvar clamped to [-30, 20] as in LDM."""

    def __init__(self, moments: torch.Tensor) -> None:
        self.mean, logvar = moments.chunk(2, dim=1)
        self.logvar = logvar.clamp(-30.0, 20.0)
        self.std = torch.exp(0.5 * self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + self.std * noise

    def mode(self) -> torch.Tensor:
        return self.mean

    def kl(self) -> torch.Tensor:
        """KL to N(0, I), summed over C, H, W: shape (B,)."""
        return 0.5 * (self.mean.pow(2) + self.logvar.exp() - 1.0 - self.logvar).sum(dim=(1, 2, 3))


class AutoencoderKL(nn.Module):
    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.quant_conv = nn.Conv2d(2 * config.z_channels, 2 * config.z_channels, 1)
        self.post_quant_conv = nn.Conv2d(config.z_channels, config.z_channels, 1)

    def encode(self, x: torch.Tensor) -> DiagonalGaussian:
        return DiagonalGaussian(self.quant_conv(self.encoder(x)))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(z))

    def forward(self, x: torch.Tensor, sample: bool = True) -> tuple[torch.Tensor, DiagonalGaussian]:
        post = self.encode(x)
        return self.decode(post.sample() if sample else post.mode()), post

    def identity(self) -> str:
        """sha256 of the architecture and weights: the DiT records which VAE made its latents."""
        h = hashlib.sha256(repr(sorted(asdict(self.config).items())).encode())
        for name, t in sorted(self.state_dict().items()):
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
        return h.hexdigest()


TRAINING_ONLY_PREFIXES = ("loss.", "foundation_model.")


def load_official_vavae(path: str | Path, *, ch: int = 128, ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4),
                        num_res_blocks: int = 2, attn_resolutions: tuple[int, ...] = (16,), z_channels: int = 32,
                        resolution: int = 256, in_channels: int = 3, out_ch: int = 3) -> AutoencoderKL:
    """Load an official VA-VAE checkpoint (a dict whose `state_dict` holds the LDM keys).

    Training-only keys (loss.*, foundation_model.*) are ignored; any other missing or unexpected key
    is an error that lists them."""
    if not storage.exists(path):
        raise FileNotFoundError(
            f"VA-VAE checkpoint {path} not found. Download the official f16d32 release "
            "(hustvl/LightningDiT, 'vavae-imagenet256-f16d32-dinov2.pt') and pass its path."
        )
    ckpt = storage.torch_load(path, map_location="cpu", weights_only=True)
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds no state_dict; expected the official VA-VAE checkpoint format")
    state = {k: v for k, v in state.items() if not k.startswith(TRAINING_ONLY_PREFIXES)}
    cfg = VAEConfig(ch=ch, ch_mult=tuple(ch_mult), num_res_blocks=num_res_blocks,
                    attn_resolutions=tuple(attn_resolutions), z_channels=z_channels, resolution=resolution,
                    in_channels=in_channels, out_ch=out_ch)
    model = AutoencoderKL(cfg)
    expected = model.state_dict()
    missing = sorted(expected.keys() - state.keys())
    unexpected = sorted(state.keys() - expected.keys())
    wrong = sorted(k for k in expected.keys() & state.keys() if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        raise ValueError(
            f"{path} does not match the VA-VAE architecture {cfg}: missing keys {missing[:20]}, "
            f"unexpected keys {unexpected[:20]}, wrong shapes {[(k, tuple(state[k].shape)) for k in wrong[:20]]}"
        )
    model.load_state_dict(state)
    return model


def save_vae(model: AutoencoderKL, path: str | Path, architecture: str, extra: dict | None = None) -> str:
    """Write a standalone mdaug VAE checkpoint; returns the model identity stored in it."""
    identity = model.identity()
    storage.atomic_torch_save({"format": "mdaug-vae/1", "config": asdict(model.config), "architecture": architecture,
                               "identity": identity, "state_dict": model.state_dict(), **(extra or {})}, path)
    return identity


def vae_record(path: str | Path) -> dict:
    """What a VAE checkpoint records beside its weights: provenance (manifest, content hashes and persons it
    trained on) and identity_metrics (the reconstruction identity ratio at its exported epoch), where present."""
    ckpt = storage.torch_load(path, map_location="cpu", weights_only=True)
    return {k: v for k, v in ckpt.items() if k != "state_dict"}


def load_vae(path: str | Path, architecture: str | None = None) -> AutoencoderKL:
    """Load a checkpoint written by save_vae (a local path or a storage URI); with `architecture`, refuse one
    trained as another."""
    if not storage.exists(path):
        raise FileNotFoundError(f"VAE checkpoint {path} not found; train one with `jobs/train.py --stage vae`")
    ckpt = storage.torch_load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != "mdaug-vae/1":
        raise ValueError(f"{path} is not an mdaug VAE checkpoint (an official one loads with load_official_vavae)")
    trained_as = ckpt.get("architecture", ckpt.get("preset"))  # "preset": checkpoints before 2026-11-27
    if architecture is not None and trained_as != architecture:
        raise ValueError(f"{path} was trained as VAE architecture {trained_as!r}, not {architecture!r}; "
                         "set train.vae.architecture to match or retrain the VAE")
    cfg = VAEConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in ckpt["config"].items()})
    model = AutoencoderKL(cfg)
    model.load_state_dict(ckpt["state_dict"])
    if model.identity() != ckpt["identity"]:
        raise ValueError(f"{path} is damaged: its weights do not match the identity recorded in it")
    return model.eval()
