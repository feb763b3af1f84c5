"""Memorisation check of a generated set: how close is each generated image to the generator's training
images, compared with how close real validation images (new recordings of the same persons) are to them?

Distances are nearest-neighbour distances in the person classifier's feature space and in pixels (RMS over
the image). A ratio (median generated→train ÷ median validation→train) well below 1, or many near-copies
(generated images closer to a training image than the closest validation image is), means the generator
copies its training images — a "gain" from such images would be duplication, not augmentation. Images exactly as
novel as new recordings still fall below the closest of V validation distances with probability 1 / (V + 1): the
summary prints that chance level beside the count."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from mdaug.data.fingerprint import nearest


@dataclass(frozen=True)
class Memorisation:
    generated: int
    train: int
    validation: int
    feature_ratio: float  # median NN distance generated→train ÷ validation→train, classifier features
    pixel_ratio: float  # the same in pixels
    feature_near_copies: int  # generated images closer (features) than the closest validation→train pair
    pixel_near_copies: int  # … in pixels

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def chance_near_copies(self) -> float:
        """Near-copies expected of images exactly as novel as new recordings (exchangeable with validation)."""
        return self.generated / (self.validation + 1)

    def summary(self) -> str:
        return (f"memorisation: nearest-training-image distance of generated ÷ real validation images: "
                f"{self.feature_ratio:.2f} in classifier features, {self.pixel_ratio:.2f} in pixels (1 = as "
                f"novel as new real recordings); near-copies: {self.feature_near_copies} (features), "
                f"{self.pixel_near_copies} (pixels) of {self.generated} (≈ {self.chance_near_copies:.1f} each by "
                "chance for images as novel as new recordings)")


def _pixels(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).float() / (x[0].numel() ** 0.5)  # Euclidean distance = RMS pixel difference


@torch.no_grad()
def memorisation(classifier: torch.nn.Module, train: torch.Tensor, val: torch.Tensor,
                 generated: torch.Tensor) -> Memorisation:
    """train: the real images the generator trained on; val: real images it never saw; all (N, C, H, W)."""
    classifier.eval()
    out = {}
    for space, embed in (("feature", classifier.features), ("pixel", _pixels)):
        t, v, g = embed(train), embed(val), embed(generated)
        val_d, _ = nearest(v, t)
        gen_d, _ = nearest(g, t)
        out[f"{space}_ratio"] = float(gen_d.median() / val_d.median())
        out[f"{space}_near_copies"] = int((gen_d < val_d.min()).sum())
    return Memorisation(len(generated), len(train), len(val), **out)
