"""The memorisation check: copies of training images are flagged, images as novel as new recordings are not
(beyond the chance level the summary prints)."""

from __future__ import annotations

import torch

from mdaug.memorisation import memorisation


class _Pixels(torch.nn.Module):
    """A 'classifier' whose features are the pixels."""

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


def test_copies_are_flagged_and_new_draws_sit_at_chance():
    g = torch.Generator().manual_seed(0)
    draw = lambda n: torch.randn((n, 1, 4, 4), generator=g)  # noqa: E731
    train, val = draw(60), draw(99)
    novel = memorisation(_Pixels(), train, val, draw(1000))
    copies = memorisation(_Pixels(), train, val, train[torch.arange(1000) % 60] + 0.01 * draw(1000))
    print(novel.summary())
    assert novel.chance_near_copies == 10.0
    assert 0.8 < novel.pixel_ratio < 1.25 and novel.pixel_near_copies <= 100  # 10 expected; > 100: p ≈ 3e-5
    assert "≈ 10.0 each by chance" in novel.summary()
    assert copies.pixel_near_copies == copies.feature_near_copies == 1000 and copies.pixel_ratio < 0.05
