"""VA-VAE training losses: L1 (+ optional perceptual) with learned log-variance, KL, PatchGAN hinge loss
with adaptive weight, and the vision-foundation (VF) alignment loss with adaptive weight."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class VAELossConfig:
    """Defaults from the VA-VAE release (REFERENCE §2)."""

    kl_weight: float = 1e-6
    perceptual_weight: float = 1.0  # used only when perceptual weights are given
    disc_start: int = 5001
    disc_weight: float = 0.5
    disc_layers: int = 3
    disc_channels: int = 64
    vf_weight: float = 0.1
    identity_weight: float = 0.0  # identity loss (feature distance in a frozen person classifier); 0 = off
    distmat_margin: float = 0.25
    cos_margin: float = 0.5
    logvar_init: float = 0.0


class NLayerDiscriminator(nn.Module):
    """PatchGAN: strided 4×4 convolutions with BatchNorm and LeakyReLU(0.2), one logit per patch."""

    def __init__(self, in_channels: int, channels: int = 64, layers: int = 3) -> None:
        super().__init__()
        seq: list[nn.Module] = [nn.Conv2d(in_channels, channels, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < layers else 1
            seq += [nn.Conv2d(channels * prev, channels * mult, 4, stride, 1, bias=False),
                    nn.BatchNorm2d(channels * mult), nn.LeakyReLU(0.2, True)]
        seq.append(nn.Conv2d(channels * mult, 1, 4, 1, 1))
        self.main = nn.Sequential(*seq)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


def hinge_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def adaptive_weight(main: torch.Tensor, other: torch.Tensor, layer: torch.Tensor, clamp: float = 1e4) -> torch.Tensor:
    """‖∇_layer main‖ / (‖∇_layer other‖ + 1e-4), detached: balances `other` against `main`."""
    g_main = torch.autograd.grad(main, layer, retain_graph=True)[0]
    g_other = torch.autograd.grad(other, layer, retain_graph=True)[0]
    return (g_main.norm() / (g_other.norm() + 1e-4)).clamp(0.0, clamp).detach()


def vf_loss(z_proj: torch.Tensor, feats: torch.Tensor, distmat_margin: float, cos_margin: float) -> torch.Tensor:
    """Margin cosine term mean(relu(1 − m2 − cos(z, f))) per position plus margin distance-matrix term
    mean(relu(|cos_sim(z) − cos_sim(f)| − m1)) over position pairs; z_proj and feats are (B, D, h, w)."""
    z = F.normalize(z_proj.flatten(2), dim=1)  # (B, D, N)
    f = F.normalize(feats.flatten(2), dim=1)
    cos_term = F.relu(1.0 - cos_margin - (z * f).sum(1)).mean()
    sim_z = z.transpose(1, 2) @ z
    sim_f = f.transpose(1, 2) @ f
    dist_term = F.relu((sim_z - sim_f).abs() - distmat_margin).mean()
    return cos_term + dist_term


class PerceptualLoss(nn.Module):
    """A user-supplied network (e.g. an exported LPIPS) mapping (x, x̂) in [-1, 1] to a per-sample distance, from a
    `torch.export` program (`.pt2`); a TorchScript file still loads (torch deprecates TorchScript). No weights are
    ever downloaded."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"perceptual-loss weights {path} not found: export your LPIPS (or other) network with "
                "torch.export.save(torch.export.export(net, (x, y)), 'lpips.pt2') and pass that file, or train "
                "without a perceptual loss"
            )
        if path.suffix == ".pt2":
            self.net = torch.export.load(str(path)).module()
        else:
            warnings.warn(f"{path}: TorchScript is deprecated in torch; export the network with torch.export to a "
                          ".pt2 file", DeprecationWarning, stacklevel=2)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                self.net = torch.jit.load(str(path), map_location="cpu").eval()
        for p in self.net.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(x, y).reshape(x.shape[0], 1, 1, 1)


class IdentityLoss(nn.Module):
    """Per-sample distance between an image and its reconstruction in the feature maps of a frozen person
    classifier (mean |Δ| / mean |f| per block, averaged over blocks): what tells persons apart must survive
    the autoencoder. The classifier is trained on the autoencoder's own training data, never on the
    evaluation's persons beyond what the generator may see."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.net = classifier.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> IdentityLoss:  # the classifier stays in eval mode (BatchNorm frozen)
        return self

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        terms = [(a - b).abs().flatten(1).mean(1) / (a.abs().flatten(1).mean(1) + 1e-6)
                 for a, b in zip(self.net.feature_maps(x), self.net.feature_maps(y), strict=True)]
        return torch.stack(terms).mean(0).reshape(x.shape[0], 1, 1, 1)


class VAVAELoss(nn.Module):
    """Owns the discriminator, the learned log-variance and the VF projection."""

    def __init__(self, cfg: VAELossConfig, image_channels: int, z_channels: int, vf_dim: int | None,
                 perceptual: PerceptualLoss | None = None, identity: IdentityLoss | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.logvar = nn.Parameter(torch.full((), cfg.logvar_init))
        self.discriminator = NLayerDiscriminator(image_channels, cfg.disc_channels, cfg.disc_layers)
        self.perceptual = perceptual
        object.__setattr__(self, "identity", identity)  # frozen, not part of the checkpoint
        self.vf_proj = nn.Conv2d(z_channels, vf_dim, 1, bias=False) if vf_dim else None

    def generator_loss(self, x: torch.Tensor, rec: torch.Tensor, kl: torch.Tensor, z: torch.Tensor,
                       feats: torch.Tensor | None, step: int, decoder_last: torch.Tensor,
                       encoder_last: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        c = self.cfg
        pixel = (x - rec).abs()
        if self.perceptual is not None:
            pixel = pixel + c.perceptual_weight * self.perceptual(x, rec)
        identity = self.identity(x, rec) if self.identity is not None and c.identity_weight > 0 else None
        if identity is not None:
            pixel = pixel + c.identity_weight * identity
        nll = (pixel / torch.exp(self.logvar) + self.logvar).sum() / x.shape[0]
        kl_loss = kl.mean()
        loss = nll + c.kl_weight * kl_loss
        logs = {"l1": (x - rec).abs().mean().detach(), "nll": nll.detach(), "kl": kl_loss.detach(),
                "logvar": self.logvar.detach()}
        if identity is not None:
            logs["identity"] = identity.mean().detach()
        if step >= c.disc_start:
            g = -self.discriminator(rec).mean()
            w = adaptive_weight(nll, g, decoder_last) * c.disc_weight if self.training else torch.tensor(0.0)
            loss = loss + w * g
            logs |= {"g": g.detach(), "d_weight": w}
        if self.vf_proj is not None and feats is not None:
            if feats.shape[-2:] != z.shape[-2:]:
                feats = F.interpolate(feats, size=z.shape[-2:], mode="bilinear", antialias=True)
            vf = vf_loss(self.vf_proj(z), feats, c.distmat_margin, c.cos_margin)
            w = adaptive_weight(nll, vf, encoder_last) * c.vf_weight if self.training else torch.tensor(0.0)
            loss = loss + w * vf
            logs |= {"vf": vf.detach(), "vf_weight": w}
        return loss, logs | {"loss": loss.detach()}

    def discriminator_loss(self, x: torch.Tensor, rec: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        real, fake = self.discriminator(x.detach()), self.discriminator(rec.detach())
        d = hinge_d_loss(real, fake)
        return d, {"d_loss": d.detach(), "logits_real": real.mean().detach(), "logits_fake": fake.mean().detach()}
