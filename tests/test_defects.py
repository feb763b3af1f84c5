"""Each defect that turned the original project's samples into noise (REFERENCE §1) is impossible here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from mdaug.flow import LatentStats, SamplingConfig, decode_latents, sample
from mdaug.flow.sampler import guided_velocity, null_label_of, seeded_noise
from mdaug.models.dit import LightningDiT, dit_config
from mdaug.models.vavae import AutoencoderKL, VAEConfig

REPO = Path(__file__).resolve().parents[1]
CODE_DIRS = ("platform", "jobs", "tuning", "eval", "bench")


def _code() -> dict[Path, str]:
    return {p: p.read_text() for d in CODE_DIRS for p in (REPO / d).rglob("*.py")}


def _live_dit(num_classes: int = 5, channels: int = 32, class_dropout: float = 0.1) -> LightningDiT:
    """A DiT whose output depends on the label (zero-initialised layers randomised)."""
    torch.manual_seed(0)
    m = LightningDiT(dit_config("tiny", input_size=4, in_channels=channels, num_classes=num_classes,
                                class_dropout=class_dropout))
    for p in m.parameters():
        if torch.count_nonzero(p) == 0:
            torch.nn.init.normal_(p, std=0.05)
    return m.eval()


# 1. CFG used a null label that was never trained.
def test_sampling_uses_the_null_row_trained_by_dropout():
    m = _live_dit()
    assert m.config.null_label == 5 and null_label_of(m) == 5 and m.y_embedder.num_embeddings == 6
    seen: list[torch.Tensor] = []
    hook = m.y_embedder.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].clone()))
    sample(m, [0, 3], [1, 2], SamplingConfig(steps=2, cfg_scale=4.0, cfg_interval_start=0.0))
    hook.remove()
    assert set(torch.cat(seen).tolist()) == {0, 3, 5}  # conditional labels + the null row, nothing else
    # training dropout writes exactly that row, and it receives gradient
    m = _live_dit(class_dropout=1.0).train()
    dropped = m.drop_labels(torch.tensor([0, 1, 2]))
    assert dropped.tolist() == [5, 5, 5]
    m(torch.randn(3, 32, 4, 4), torch.rand(3), dropped).pow(2).sum().backward()
    grads = m.y_embedder.weight.grad
    assert grads[5].abs().sum() > 0 and grads[:5].abs().sum() == 0
    m.y_embedder = torch.nn.Embedding(5, m.config.hidden_size)  # a table without the null row
    with pytest.raises(ValueError, match="must be the last row"):
        null_label_of(m)


# 2. CFG applied to only 3 of 32 latent channels.
def test_guidance_changes_every_channel():
    m = _live_dit()
    x, y = torch.randn(2, 32, 4, 4), torch.tensor([1, 2])
    cfg = SamplingConfig(cfg_scale=5.0, cfg_interval_start=0.0)
    with torch.no_grad():
        guided = guided_velocity(m, x, 0.5, y, cfg)
        v_c = m(x, torch.full((2,), 0.5), y)
        v_u = m(x, torch.full((2,), 0.5), torch.full((2,), 5))
    assert torch.allclose(guided, v_u + 5.0 * (v_c - v_u), atol=1e-5)
    per_channel = (guided - v_c).abs().amax(dim=(0, 2, 3))
    assert (per_channel > 1e-4).all(), "guidance left some channels untouched"


def test_batched_and_two_pass_guidance_agree():
    m = _live_dit()
    labels, seeds = [0, 1, 4], [7, 8, 9]
    a = sample(m, labels, seeds, SamplingConfig(steps=6, cfg_scale=3.0, cfg_interval_start=0.1, cfg_mode="batched"))
    b = sample(m, labels, seeds, SamplingConfig(steps=6, cfg_scale=3.0, cfg_interval_start=0.1, cfg_mode="two_pass"))
    assert torch.allclose(a, b, atol=1e-5)


# 3. Latent statistics in a side file; raw latents decoded silently when missing.
def test_stats_travel_with_the_checkpoint_and_guard_decoding(tmp_path):
    from mdaug.training.dit_module import DiTModule, export_dit, load_dit

    vae = AutoencoderKL(VAEConfig(ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(), z_channels=4,
                                  resolution=8, in_channels=1, out_ch=1))
    z = torch.randn(10, 4, 4, 4) * 3 + 1
    stats = LatentStats.from_latents([z[:5], z[5:]], vae.identity())
    assert torch.allclose(stats.normalize(z).mean((0, 2, 3)), torch.zeros(4), atol=1e-5)
    module = DiTModule(dit_config("tiny", input_size=4, in_channels=4, num_classes=3), stats)
    export_dit(module, tmp_path / "dit.pt")
    model, loaded, _ = load_dit(tmp_path / "dit.pt")
    assert torch.equal(loaded.mean, stats.mean) and loaded.vae_identity == vae.identity()
    out = decode_latents(vae, torch.zeros(1, 4, 4, 4), loaded)
    assert out.shape == (1, 1, 8, 8)
    other = AutoencoderKL(vae.config)
    with pytest.raises(ValueError, match="not the one the DiT's latents came from"):
        decode_latents(other, torch.zeros(1, 4, 4, 4), loaded)
    with pytest.raises(ValueError, match="refusing to decode"):
        decode_latents(vae, torch.zeros(1, 4, 4, 4), None)
    ckpt = torch.load(tmp_path / "dit.pt", weights_only=True)
    del ckpt["latent_stats"]
    torch.save(ckpt, tmp_path / "nostats.pt")
    with pytest.raises(ValueError, match="carries no latent statistics"):
        load_dit(tmp_path / "nostats.pt")


# 4. Horizontal flip (time reversal) or vertical flip (Doppler negation) as augmentation.
def test_no_flip_augmentation_anywhere():
    flip = re.compile(r"\bflip(lr|ud)?\s*\(|Horizontal_?Flip|Vertical_?Flip|\.flip\(|RandomFlip", re.IGNORECASE)
    offenders = [f"{p.relative_to(REPO)}:{i + 1}" for p, text in _code().items()
                 for i, line in enumerate(text.splitlines()) if flip.search(line) and p.name != "test_defects.py"]
    assert offenders == []


# 5. One noise tensor reused for every sample of a person.
def test_every_sample_has_its_own_noise_and_is_batch_independent():
    m = _live_dit()
    cfg = SamplingConfig(steps=4, cfg_scale=2.0, cfg_interval_start=0.0)
    same_person = sample(m, [2, 2, 2, 2], [10, 11, 12, 13], cfg)
    flat = same_person.flatten(1)
    assert torch.cdist(flat, flat).add(torch.eye(4) * 1e9).min() > 1.0  # all distinct
    alone = sample(m, [2], [12], cfg)
    shuffled = sample(m, [2, 0, 2], [13, 99, 12], cfg)
    assert torch.allclose(alone[0], same_person[2], atol=1e-5)
    assert torch.allclose(shuffled[2], same_person[2], atol=1e-5)
    noise = seeded_noise(list(range(50)), (8,))
    assert noise.T.corrcoef().abs().fill_diagonal_(0).max() < 0.6
    with pytest.raises(ValueError, match="one seed per sample"):
        sample(m, [1, 2], [1], cfg)


# 6. Hard-coded paths; no test set disjoint from the generator's training data.
def test_no_hard_coded_data_paths():
    hard = re.compile(r"['\"](/kaggle|/content|/home/|/root/|/data/|C:\\\\)")
    assert [str(p.relative_to(REPO)) for p, text in _code().items() if hard.search(text)] == []


def test_test_split_is_disjoint_from_generator_training_splits(small_sim):
    from mdaug.data.split import find_overlap, make_split

    for seed in range(3):
        m, _ = make_split(small_sim, seed=seed, progress=False)
        assert find_overlap(m, m, ("test",), ("train", "val")) == []
