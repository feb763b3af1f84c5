"""Rectified flow + sampler + CFG recover a known class-conditional 2-D Gaussian mixture."""

from __future__ import annotations

import pytest
import torch
from conftest import margin

from mdaug.flow import LatentStats, SamplingConfig, flow_loss, sample, shifted_times
from mdaug.flow.latents import latent_moments
from mdaug.models.dit import DiTConfig, LightningDiT

MEANS = torch.tensor([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.5]])
STD = 0.3


@pytest.fixture(scope="module")
def mixture_model(seed) -> LightningDiT:
    torch.manual_seed(seed)
    cfg = DiTConfig(input_size=1, patch_size=1, in_channels=2, hidden_size=64, depth=2, num_heads=2,
                    num_classes=3, class_dropout=0.2)
    model = LightningDiT(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    for _ in range(1500):
        y = torch.randint(0, 3, (256,))
        x = (MEANS[y] + STD * torch.randn(256, 2)).view(256, 2, 1, 1)
        loss, _ = flow_loss(model, x, model.drop_labels(y), cosine_weight=0.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def _draw(model, scale: float, n: int = 300, method: str = "euler", seed: int = 0) -> torch.Tensor:
    cfg = SamplingConfig(steps=50, method=method, cfg_scale=scale, cfg_interval_start=0.0, timestep_shift=1.0)
    labels = [k for k in range(3) for _ in range(n)]
    return sample(model, labels, list(range(seed * 3 * n, (seed + 1) * 3 * n)), cfg).view(3, n, 2)


@pytest.mark.parametrize("method", ["euler", "heun"])
def test_class_means_and_spread_are_recovered(mixture_model, method, seed):
    s = _draw(mixture_model, 1.0, method=method, seed=seed)
    err = (s.mean(1) - MEANS).norm(dim=1)
    # over seeds 0–4 × 1 and 2 threads (bench/learning_margins.py): mean error 0.081–0.119 (bound 0.15), spread
    # error 0.040–0.068 (bound 0.1), for both methods
    margin(f"flow_{method}", "largest class-mean error", err.max().item(), "< 0.15")
    margin(f"flow_{method}", "largest spread error", (s.std(1) - STD).abs().max().item(), "< 0.1")
    assert err.max() < 0.15
    assert (s.std(1) - STD).abs().max() < 0.1


def test_guidance_sharpens_toward_the_right_person(mixture_model, seed):
    plain, guided = _draw(mixture_model, 1.0, seed=seed), _draw(mixture_model, 3.0, seed=seed)
    nearest = (guided[..., None, :] - MEANS).norm(dim=-1).argmin(-1)
    right = (nearest == torch.arange(3)[:, None]).float().mean().item()
    margin("flow_guidance", "guided samples nearest their mean", right, "== 1")
    # seeds 0–4 × 1 and 2 threads: every guided sample nearest its mean; spread ratio 0.46–0.63 (bound 0.8)
    margin("flow_guidance", "guided / plain spread", (guided.std(1).mean() / plain.std(1).mean()).item(), "< 0.8")
    assert (nearest == torch.arange(3)[:, None]).float().mean() == 1.0
    assert guided.std(1).mean() < 0.8 * plain.std(1).mean()


def test_unconditional_row_learned_the_whole_mixture(mixture_model, seed):
    """The null label (index num_classes) was trained by dropout: it generates all three modes."""
    model = mixture_model
    null = torch.full((600,), model.config.null_label)
    x = torch.randn(600, 2, 1, 1, generator=torch.Generator().manual_seed(seed))
    for t0, t1 in zip(shifted_times(50, 1.0)[:-1].tolist(), shifted_times(50, 1.0)[1:].tolist(), strict=True):
        with torch.no_grad():
            x = x + (t1 - t0) * model(x, torch.full((600,), t0), null)
    modes = (x.view(600, 1, 2) - MEANS).norm(dim=-1).argmin(-1).bincount(minlength=3)
    # smallest mode 159–178 of 600 over seeds 0–4 × 1 and 2 threads (200 each if even); bound 120
    margin("flow_unconditional", "smallest mode of 600 samples", modes.min().item(), "> 120")
    assert modes.min() > 120, modes


def test_timestep_shift():
    t = shifted_times(10, 0.3)
    assert t[0] == 0 and t[-1] == 1 and (t.diff() > 0).all()
    assert t[5] < 0.5  # shift < 1 spends more steps near noise
    assert torch.allclose(shifted_times(10, 1.0), torch.linspace(0, 1, 11, dtype=torch.float64))


def test_statistics_summed_from_parts_equal_those_of_all_latents():
    """What the latents stage does: each block's moments where it is, summed on the driver (a part may be empty)."""
    z = torch.randn(37, 4, 3, 5, generator=torch.Generator().manual_seed(0)) * torch.tensor([1, 2, 3, 4]).view(
        1, 4, 1, 1) + torch.tensor([0, -1, 5, 2]).view(1, 4, 1, 1)
    whole = LatentStats.from_latents([z], "vae")
    parts = LatentStats.from_moments(map(latent_moments, (z[:10], z[10:10], z[10:30], z[30:])), "vae")
    assert parts.count == whole.count == 37 * 15
    assert torch.allclose(parts.mean, whole.mean) and torch.allclose(parts.std, whole.std)
    assert torch.allclose(whole.mean, torch.tensor([0.0, -1.0, 5.0, 2.0]), atol=0.7)  # the known distribution
    with pytest.raises(ValueError, match="no latents"):
        LatentStats.from_moments([latent_moments(z[:0])], "vae")
