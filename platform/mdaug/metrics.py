"""Fidelity of generated spectrograms, measured with the person classifier's penultimate features:
Fréchet distance, conditional accuracy, and per-person diversity relative to real images; and usefulness:
the accuracy on real images of a classifier trained on generated ones alone (train on synthetic, test on real)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from scipy import linalg

from mdaug.training.classifier import accuracy, train_classifier


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """‖μa − μb‖² + Tr(Σa + Σb − 2(Σa Σb)^½) between feature sets (N, D)."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)  # near-singular: handled below
        covmean = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(covmean).all():  # near-singular product: regularise
        eps = 1e-6 * np.eye(len(cov_a))
        covmean = linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    covmean = covmean.real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * covmean))


def mean_pairwise_distance(f: np.ndarray) -> float:
    if len(f) < 2:
        return 0.0
    d = np.sqrt(((f[:, None] - f[None]) ** 2).sum(-1))
    return float(d[np.triu_indices(len(f), 1)].mean())


@dataclass(frozen=True)
class Fidelity:
    frechet: float  # lower is better
    conditional_accuracy: float  # the classifier recognises the intended person
    diversity_ratio: float  # mean pairwise distance within a person, generated / real (1 = as diverse as real)

    def to_dict(self) -> dict[str, float]:
        return {"frechet": self.frechet, "conditional_accuracy": self.conditional_accuracy,
                "diversity_ratio": self.diversity_ratio}


@torch.no_grad()
def embed(classifier: torch.nn.Module, images: torch.Tensor, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(features, predicted labels) for images (N, C, H, W) in [-1, 1]."""
    classifier.eval()
    feats, preds = [], []
    for i in range(0, len(images), batch):
        f = classifier.features(images[i:i + batch])
        feats.append(f.cpu())
        preds.append(classifier.head(f).argmax(1).cpu())
    return torch.cat(feats).numpy().astype(np.float64), torch.cat(preds).numpy()


def fidelity(classifier: torch.nn.Module, real: torch.Tensor, real_labels: np.ndarray, fake: torch.Tensor,
             fake_labels: np.ndarray) -> Fidelity:
    """Compare generated images with real validation images of the same persons."""
    fr, _ = embed(classifier, real)
    ff, pred = embed(classifier, fake)
    ratios = []
    for p in np.unique(fake_labels):
        real_d = mean_pairwise_distance(fr[real_labels == p])
        if real_d > 0:
            ratios.append(mean_pairwise_distance(ff[fake_labels == p]) / real_d)
    return Fidelity(frechet_distance(fr, ff), float((pred == fake_labels).mean()),
                    float(np.mean(ratios)) if ratios else float("nan"))


def synthetic_to_real_accuracy(fake: torch.Tensor, fake_labels: np.ndarray, real: torch.Tensor,
                               real_labels: np.ndarray, num_classes: int, steps: int, seed: int = 0,
                               width: int = 64) -> float:
    """Train on synthetic, test on real: the accuracy on `real` of a person classifier (temporal, `width`) trained
    for `steps` on the generated images alone. It needs identity (a wrong person teaches the wrong label) and
    diversity (a person's one mean image teaches one point), so no classifier's features are graded."""
    net = train_classifier(fake, torch.as_tensor(fake_labels), num_classes, steps, seed=seed, width=width,
                           device=str(fake.device))
    return accuracy(net, real, real_labels)
