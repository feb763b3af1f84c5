"""How a generated set measures up before anyone trains on it: its identity ratio (a person classifier's
accuracy on the generated images of each person ÷ its accuracy on real validation images) and its memorisation
figures (mdaug.memorisation). Written as quality.json beside the set; the evaluation reports it.

Identity is measured by two judges: the identity classifier (`identity_ratio`: the one the sampling sweep
scores with, and optimises with `objective: frechet`: then a number it was tuned for) and the independent judge
beside it, judge.pt (`independent_*`: another architecture and seed, never used by the sweep or the generator).
Memorisation uses the identity classifier's features."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from mdaug.data.images import load_image, load_rows
from mdaug.data.manifest import Manifest, Row
from mdaug.data.paths import inside
from mdaug.memorisation import memorisation
from mdaug.models.classifier import ARCHITECTURES, load_classifier
from mdaug.storage import exists, is_uri
from mdaug.training.identity import generator_identity

QUALITY = "quality.json"
JUDGE = "judge.pt"
INDEPENDENT = "independent_identity_ratio"  # the key a quality.json written before the judge existed lacks


def judge_beside(classifier: Path | str) -> str:
    """The independent judge's location: judge.pt in the identity classifier's folder (path or URI)."""
    if is_uri(classifier):
        return f"{str(classifier).rsplit('/', 1)[0]}/{JUDGE}"
    return str(Path(classifier).with_name(JUDGE))


def require_judge(classifier: Path | str, judge: Path | str | None = None) -> str:
    """The judge's location (default: beside the classifier); a missing one is a FileNotFoundError naming it."""
    judge = str(judge) if judge is not None else judge_beside(classifier)
    if not exists(judge):
        raise FileNotFoundError(
            f"independent judge {judge} not found (expected beside the identity classifier {classifier}); the "
            "classifier stage trains both: run `jobs/train.py --stage classifier` (the pipeline's classifier stage) "
            "again on the same manifest, then generate")
    return judge


def _generated(folder: Path, listed: list[dict], size: int, channels: str) -> torch.Tensor:
    return torch.from_numpy(np.stack([load_image(inside(folder, i["path"]), channels, size) for i in listed]))


def assess(folder: Path, manifest: Manifest, seen: list[Row], classifier: Path | str,
           judge: Path | str | None = None) -> dict:
    """Identity (by both judges) and memorisation of the generated set in `folder` (its manifest.json lists the
    images); `seen`: the real rows its generator trained on; `judge`: the independent judge (default: judge.pt
    beside the classifier)."""
    net, info = load_classifier(classifier)
    judge_net, judge_info = load_classifier(require_judge(classifier, judge))
    if judge_info.get("manifest_hash") != info.get("manifest_hash"):
        raise ValueError(f"the independent judge {judge or judge_beside(classifier)} and the identity classifier "
                         f"{classifier} were trained on different manifests; run `jobs/train.py --stage classifier` "
                         "again to train both on one")
    listed = json.loads((Path(folder) / "manifest.json").read_text())["images"]
    labels = torch.tensor([i["label"] for i in listed])
    size, channels = info["size"], info["channels"]
    generated = _generated(folder, listed, size, channels)
    if (judge_info["size"], judge_info["channels"]) != (size, channels):
        judged = _generated(folder, listed, judge_info["size"], judge_info["channels"])
    else:
        judged = generated
    vx, _ = load_rows(manifest, manifest.split("val"), size, channels)
    tx, _ = load_rows(manifest, seen, size, channels)
    identity = generator_identity(generated, labels, net, info["val_accuracy"])
    independent = generator_identity(judged, labels, judge_net, judge_info["val_accuracy"])
    copies = memorisation(net, tx, vx, generated)
    judge_arch = ARCHITECTURES[judge_net.config.arch]
    caveat = "".join(_near_chance(name, acc, manifest.num_classes) for name, acc in
                     (("independent judge", judge_info["val_accuracy"]), ("sweep's judge", info["val_accuracy"])))
    return {**identity, "real_accuracy": info["val_accuracy"],
            INDEPENDENT: independent["identity_ratio"],
            "independent_identity_accuracy": independent["identity_accuracy"],
            "independent_real_accuracy": judge_info["val_accuracy"], "independent_judge": judge_arch,
            "memorisation": copies.to_dict(),
            "summary": f"identity ratio {independent['identity_ratio']:.2f} by an independent judge ({judge_arch}, "
                       f"never used by the sweep or the generator; it recognises "
                       f"{independent['identity_accuracy']:.0%} of the generated images' persons, "
                       f"{judge_info['val_accuracy']:.0%} of real ones) and {identity['identity_ratio']:.2f} by the "
                       f"sweep's judge ({ARCHITECTURES[net.config.arch]}: {identity['identity_accuracy']:.0%}, "
                       f"{info['val_accuracy']:.0%} of real ones){caveat}; " + copies.summary()}


def _near_chance(name: str, real_accuracy: float, persons: int) -> str:
    """A caveat when a judge recognises real images at less than twice chance: its ratio is no evidence."""
    if real_accuracy >= 2 / persons:
        return ""
    return (f" (the {name} recognises {real_accuracy:.0%} of real images, chance {1 / persons:.0%}: its ratio is no "
            "evidence of identity; train it longer)")


def read_quality(folder: Path) -> dict | None:
    """The set's quality.json; None when it is missing or unreadable (truncated, not JSON): a rerun measures again."""
    try:
        quality = json.loads((Path(folder) / QUALITY).read_bytes())
    except (OSError, ValueError):  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None
    return quality if isinstance(quality, dict) else None
