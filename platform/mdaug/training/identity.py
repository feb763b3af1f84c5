"""Identity measurements: does the autoencoder keep who is walking, does the generator produce them?

Both divide the person classifier's accuracy on reconstructed / generated images of each person by its
accuracy on real validation images, so 1 means "as recognisable as real recordings". The classifier is
trained on the real train split only and is never a training signal for the generator."""

from __future__ import annotations

import torch

from mdaug.training.classifier import accuracy


@torch.no_grad()
def reconstruct(vae: torch.nn.Module, images: torch.Tensor, batch: int = 128) -> torch.Tensor:
    """Deterministic reconstructions (posterior mode) in [-1, 1]."""
    device = next(vae.parameters()).device
    return torch.cat([vae.decode(vae.encode(images[i:i + batch].to(device)).mode()).float().clamp(-1, 1).cpu()
                      for i in range(0, len(images), batch)])


def reconstruction_identity(vae: torch.nn.Module, classifier: torch.nn.Module, images: torch.Tensor,
                            labels: torch.Tensor, real_accuracy: float) -> dict[str, float]:
    acc = accuracy(classifier, reconstruct(vae, images), labels)
    return {"recon_identity_accuracy": acc, "recon_identity_ratio": acc / max(real_accuracy, 1e-9)}


def identity_seeds(num_classes: int, per_person: int) -> tuple[list[int], list[int]]:
    """(labels, seeds) of the identity check's samples: per_person per person, fixed across epochs."""
    labels = [c for c in range(num_classes) for _ in range(per_person)]
    return labels, [10_000 + i for i in range(len(labels))]


def generator_identity(images: torch.Tensor, labels: list[int] | torch.Tensor, classifier: torch.nn.Module,
                       real_accuracy: float) -> dict[str, float]:
    acc = accuracy(classifier, images, torch.as_tensor(labels))
    return {"identity_accuracy": acc, "identity_ratio": acc / max(real_accuracy, 1e-9)}
