"""Fidelity metrics: Fréchet distance against closed forms, accuracy and diversity on controlled inputs; train on
synthetic, test on real on images whose class is known."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from mdaug.augment import AugmentConfig, augment
from mdaug.metrics import fidelity, frechet_distance, mean_pairwise_distance, synthetic_to_real_accuracy


def test_frechet_distance_closed_forms():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 3))
    assert frechet_distance(a, a) < 1e-6
    shifted = a + np.array([1.0, 2.0, 0.0])
    assert abs(frechet_distance(a, shifted) - 5.0) < 1e-6  # same covariance: ‖Δμ‖²
    b = rng.normal(size=(4000, 3)) * 2.0  # N(0, I) vs N(0, 4I): 3 · (1 + 4 − 2·2) = 3
    assert abs(frechet_distance(a, b) - 3.0) < 0.25


def test_pairwise_distance():
    assert mean_pairwise_distance(np.array([[0.0, 0.0], [3.0, 4.0]])) == 5.0
    assert mean_pairwise_distance(np.zeros((1, 2))) == 0.0


class _Oracle(torch.nn.Module):
    """features = the mean of each image's two halves; class = which half is brighter."""

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = x.shape[-1] // 2
        return torch.stack([x[..., :h].mean((1, 2, 3)), x[..., h:].mean((1, 2, 3))], dim=1)

    def head(self, f: torch.Tensor) -> torch.Tensor:
        return f


def test_fidelity_on_controlled_images():
    g = torch.Generator().manual_seed(0)

    def images(label: int, n: int, spread: float) -> torch.Tensor:
        x = torch.full((n, 1, 4, 4), -0.5)
        x[..., 2:] += 0.0 if label == 0 else 1.0
        x[..., :2] += 0.0 if label == 1 else 1.0
        return x + spread * torch.randn(x.shape, generator=g)

    real = torch.cat([images(0, 50, 0.2), images(1, 50, 0.2)])
    labels = np.array([0] * 50 + [1] * 50)
    good = fidelity(_Oracle(), real, labels, torch.cat([images(0, 50, 0.2), images(1, 50, 0.2)]), labels)
    swapped = fidelity(_Oracle(), real, labels, torch.cat([images(1, 50, 0.2), images(0, 50, 0.2)]), labels)
    collapsed = fidelity(_Oracle(), real, labels, torch.cat([images(0, 50, 0.0), images(1, 50, 0.0)]), labels)
    assert good.conditional_accuracy == 1.0 and swapped.conditional_accuracy == 0.0
    assert good.frechet < 0.05 and abs(good.diversity_ratio - 1) < 0.3
    assert collapsed.diversity_ratio < 0.05  # mode collapse shows up


def test_train_on_synthetic_test_on_real_needs_the_right_persons():
    """Images whose class is the row of a bright band (a Doppler line): generated images with the right labels
    teach a classifier that recognises real ones; the same images under other persons' labels teach it nothing."""
    g = torch.Generator().manual_seed(0)

    def bands(n_per: int) -> tuple[torch.Tensor, np.ndarray]:
        labels = np.repeat(np.arange(4), n_per)
        x = -0.8 + 0.1 * torch.randn((len(labels), 1, 16, 16), generator=g)
        for i, c in enumerate(labels):
            x[i, 0, 2 + 4 * c + int(torch.randint(0, 2, (1,), generator=g))] += 1.5
        return x, labels

    fake, fake_labels = bands(8)
    real, real_labels = bands(20)
    right = synthetic_to_real_accuracy(fake, fake_labels, real, real_labels, 4, steps=60, width=16)
    wrong = synthetic_to_real_accuracy(fake, (fake_labels + 1) % 4, real, real_labels, 4, steps=60, width=16)
    print(f"right labels {right:.2f}, shifted labels {wrong:.2f}")
    assert right >= 0.9 and wrong <= 0.1


NONE = AugmentConfig(p_time_shift=0, p_time_mask=0, p_freq_mask=0, p_gain=0, p_noise=0)


def test_augmentations_never_flip_spare_the_torso_band_and_keep_range():
    x = torch.linspace(-1, 1, 32).repeat(2, 1, 16, 1)  # a ramp along time
    assert torch.equal(augment(x, NONE), x)
    shifted = augment(x, replace(NONE, p_time_shift=1.0), torch.Generator().manual_seed(3))
    # a circular shift keeps the ramp's direction (no time reversal): differences stay positive but one wrap
    assert ((shifted[..., 1:] - shifted[..., :-1]) < 0).sum(-1).max() <= 1
    full = augment(x, AugmentConfig(), torch.Generator().manual_seed(1))
    assert full.min() >= -1 and full.max() <= 1 and full.shape == x.shape
    # frequency masks, wide and always on, never touch the strongest Doppler row or its neighbours
    g = torch.Generator().manual_seed(0)
    img = torch.rand((64, 1, 32, 32), generator=g) - 0.8
    torso = torch.randint(0, 32, (64,), generator=g)
    img[torch.arange(64), 0, torso] = 0.9
    masked = augment(img, replace(NONE, p_freq_mask=1.0, freq_mask_width=0.5), torch.Generator().manual_seed(2))
    assert torch.equal(masked[torch.arange(64), 0, torso], img[torch.arange(64), 0, torso])
    assert (masked != img).any(dim=(1, 2, 3)).float().mean() > 0.9  # and they do mask elsewhere
    half = augment(img, replace(NONE, p_freq_mask=0.5, freq_mask_width=0.5), torch.Generator().manual_seed(2))
    assert 0.25 < (half != img).any(dim=(1, 2, 3)).float().mean() < 0.75  # each transform has its probability
