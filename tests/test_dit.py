"""LightningDiT: reference sizes, adaLN-Zero init, patching, overfitting a batch."""

from __future__ import annotations

import pytest
import torch
from conftest import margin

from mdaug.flow import flow_loss
from mdaug.models.dit import DIT_SIZES, LightningDiT, dit_config


@pytest.mark.parametrize("size,expected", [("B", 130.6), ("XL", 675.3)])
def test_reference_parameter_counts(size, expected):
    """B/1 and XL/1 on 16×16×32 latents with 1000 classes: the reference counts (pos-embed included)."""
    with torch.device("meta"):
        m = LightningDiT(dit_config(size, num_classes=1000))
    n = sum(p.numel() for p in m.parameters()) + m.pos_embed.numel()
    assert abs(n / 1e6 - expected) < 0.1


def test_starts_as_zero_and_patches_roundtrip():
    m = LightningDiT(dit_config("tiny", input_size=8, in_channels=4, patch_size=2, num_classes=5))
    x = torch.randn(3, 4, 8, 8)
    out = m(x, torch.rand(3), torch.tensor([0, 4, 5]))
    assert out.shape == x.shape and torch.count_nonzero(out) == 0  # adaLN-Zero + zero final layer
    assert m.y_embedder.num_embeddings == 6  # 5 persons + the null label
    with pytest.raises(ValueError, match="not a multiple of patch_size"):
        LightningDiT(dit_config("tiny", input_size=9, patch_size=2))
    with pytest.raises(ValueError, match="unknown DiT size"):
        dit_config("XXL")
    assert set(DIT_SIZES) == {"tiny", "S", "B", "L", "XL"}


def test_qk_norm_and_rope_are_used():
    m = LightningDiT(dit_config("tiny", input_size=4, in_channels=4, qk_norm=True))
    assert isinstance(m.blocks[0].attn.q_norm, torch.nn.RMSNorm)
    rope = m.blocks[0].attn.rope
    q = torch.randn(1, 16, 1, 32)  # (B, N, heads, head_dim) on a 4×4 grid
    # rotations preserve norms, and a score depends on relative position only
    assert torch.allclose(rope(q).norm(dim=-1), q.norm(dim=-1), atol=1e-5)
    a, b = torch.randn(32), torch.randn(32)
    qa, kb = rope(a.expand(1, 16, 1, 32)), rope(b.expand(1, 16, 1, 32))
    score = lambda i, j: (qa[0, i, 0] * kb[0, j, 0]).sum()  # noqa: E731
    assert torch.isclose(score(0, 5), score(10, 15), atol=1e-4)  # both: one row down, one column right


def test_dit_overfits_a_batch(seed):
    torch.manual_seed(seed)
    m = LightningDiT(dit_config("tiny", input_size=8, in_channels=8, patch_size=1, num_classes=4))
    x1 = torch.randn(8, 8, 8, 8)
    y = torch.arange(8) % 4
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3, betas=(0.9, 0.95))
    g = torch.Generator().manual_seed(0)
    losses = []
    for step in range(150):
        g.manual_seed(4 * seed + step % 4)  # a few fixed (t, noise) draws: a batch that can be memorised
        loss, _ = flow_loss(m, x1, y, cosine_weight=1.0, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    # last/first: 0.025–0.046 over seeds 0–4 × 1 and 2 threads (bench/learning_margins.py); bound 0.25
    margin("dit_overfits_a_batch", "last / first loss", last / first, "< 0.25")
    assert last < first / 4
