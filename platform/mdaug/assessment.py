"""How a generated set measures up before anyone trains on it: its identity ratio (the person classifier's
accuracy on the generated images of each person ÷ its accuracy on real validation images) and its
memorisation figures (mdaug.memorisation). Written as quality.json beside the set; the evaluation reports it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from mdaug.data.images import load_image, load_rows
from mdaug.data.manifest import Manifest, Row
from mdaug.data.paths import inside
from mdaug.memorisation import memorisation
from mdaug.models.classifier import load_classifier
from mdaug.training.identity import generator_identity

QUALITY = "quality.json"


def assess(folder: Path, manifest: Manifest, seen: list[Row], classifier: Path | str) -> dict:
    """Identity and memorisation of the generated set in `folder` (its manifest.json lists the images);
    `seen`: the real rows its generator trained on."""
    net, info = load_classifier(classifier)
    size, channels = info["size"], info["channels"]
    listed = json.loads((Path(folder) / "manifest.json").read_text())["images"]
    generated = torch.from_numpy(np.stack([load_image(inside(folder, i["path"]), channels, size) for i in listed]))
    labels = torch.tensor([i["label"] for i in listed])
    vx, _ = load_rows(manifest, manifest.split("val"), size, channels)
    tx, _ = load_rows(manifest, seen, size, channels)
    identity = generator_identity(generated, labels, net, info["val_accuracy"])
    copies = memorisation(net, tx, vx, generated)
    return {**identity, "real_accuracy": info["val_accuracy"], "memorisation": copies.to_dict(),
            "summary": f"identity ratio {identity['identity_ratio']:.2f} (the classifier recognises "
                       f"{identity['identity_accuracy']:.0%} of the generated images' persons, "
                       f"{info['val_accuracy']:.0%} of real ones); " + copies.summary()}


def read_quality(folder: Path) -> dict | None:
    """The set's quality.json; None when it is missing or unreadable (truncated, not JSON): a rerun measures again."""
    try:
        quality = json.loads((Path(folder) / QUALITY).read_bytes())
    except (OSError, ValueError):  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None
    return quality if isinstance(quality, dict) else None
