"""No leakage: before any test image is scored, the real test split is checked against everything the
generator or the classifier trains on —
- by content hash: the generator's training data (its provenance and its training manifest's train and val
  splits), the real train and val splits, the generated and the oracle images;
- by pixel fingerprint (robust to re-encoding, resizing and metadata) and by nearest neighbour in the
  classifier's feature space: a test image much closer to an image of a set than the validation images are
  (validation and test are exchangeable held-out samples; see `_near`) is a near-duplicate; fingerprints
  closer than PIXEL_FLOOR always are;
- by recording group: no group of the manifest (`mdaug split --group`) spans two splits.
Any finding stops the job, naming both files."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from mdaug.data.fingerprint import fingerprints, nearest
from mdaug.data.manifest import Manifest
from mdaug.evaluation.budget import generator_images
from mdaug.evaluation.sets import EvalData, ImageSet
from mdaug.storage import exists

NEAR = 0.5  # fraction of the smallest legitimate distance below which a pair is a copy
PIXEL_FLOOR = 0.03  # a copy whatever the data: same pixels 0, resized + JPEG ≤ 0.025 at 32²; distinct ≥ 0.07
MIN_REFERENCE = 30  # validation images needed to calibrate a relative threshold


class LeakageError(ValueError):
    """The test split overlaps the generator's training data or an image set the classifier trains on."""


@dataclass
class LeakageCheck:
    test_images: int
    generator_manifests: list[str]
    generator_images: int  # images the generator trained on (provenance) or could have (its manifest's train+val)
    compared_images: int  # train, val, generated and oracle images compared with the test split
    pixel_thresholds: dict[str, float]  # per compared set
    feature_thresholds: dict[str, float]
    groups_checked: bool
    findings: list[dict] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.findings

    def to_dict(self) -> dict:
        return asdict(self) | {"passed": self.passed}

    def summary(self) -> str:
        groups = ("; recording groups disjoint across splits" if self.groups_checked
                  else "; no recording groups declared (mdaug split --group): each image counts as its own recording")
        features = "classifier features" if any(self.feature_thresholds.values()) else \
            f"classifier features not calibrated: fewer than {MIN_REFERENCE} validation images"
        return (f"leakage check passed: {self.test_images} test images share no content (hash) and are no "
                f"near-duplicates (pixel fingerprint, {features}) of the {self.compared_images} train/val/generated/"
                f"oracle images, nor share content with the {self.generator_images} images its generator's "
                f"training manifests offered it{groups}")


def _generator_hashes(info: dict) -> tuple[str, set[str]]:
    """What the generator trained on: its provenance, plus its training manifest's train and val splits."""
    path = info.get("training_manifest")
    if not path or not exists(path):
        raise LeakageError(f"cannot verify that the generator never saw a test image: its training manifest "
                           f"{path!r} (named in the synthetic manifest.json) is not found; restore that file or "
                           "regenerate with a DiT trained on a manifest you still have")
    gen = Manifest.load(path)
    if info.get("training_manifest_hash") != gen.content_hash():
        raise LeakageError(f"the generator's training manifest {path} changed after the generator was trained "
                           "(content hash differs); cannot verify what the generator saw")
    return path, set(gen.hashes(("train", "val"))) | (generator_images(info) or set())


def generator_findings(test: dict[str, str], infos: list[dict]) -> tuple[list[tuple[str, set[str]]], list[dict]]:
    """(per generator: its training manifest and every hash it trained on, test images among them);
    `test`: test hash → path."""
    generators = [_generator_hashes(i) for i in {i.get("dit_sha256"): i for i in infos}.values()]
    return generators, [{"test": test[h], "source": "generator training data", "path": path, "kind": "same content"}
                        for path, hashes in generators for h in sorted(hashes & test.keys())]


def check_generators(manifest: Manifest, infos: list[dict]) -> None:
    """Refuse at once a generator whose training data holds a test image (before budgets, before loading)."""
    _, findings = generator_findings({r.sha256: r.path for r in manifest.split("test")}, infos)
    if findings:
        raise LeakageError(_message(findings, manifest.root))


def _message(findings: list[dict], root: str) -> str:
    lines = [f"  test {f['test']} ~ {f['source']} {f['path']}: {f['kind']}" for f in findings[:20]]
    more = f"\n  … and {len(findings) - 20} more" if len(findings) > 20 else ""
    return (f"{len(findings)} test image(s) also appear, or nearly, in data the classifier or generator trains on "
            f"(test root {root}):\n" + "\n".join(lines) + more
            + "\nRemove them, or re-split (mdaug split --group for windows of one recording) and retrain the "
              "generator on the new train split.")


def _sources(data: EvalData) -> list[tuple[str, ImageSet]]:
    sets = [("train", data.train), ("val", data.val)]
    sets += [(f"synthetic {s.root}", s) for s in {id(s): s for s in data.synthetic.values()}.values()]
    return sets + ([("oracle", data.oracle)] if data.oracle is not None else [])


def _near(test: torch.Tensor, val: torch.Tensor, train: torch.Tensor,
          sources: list[tuple[str, ImageSet, torch.Tensor]], space: str, data: EvalData,
          floor: float = 0.0) -> tuple[dict[str, float], list[dict]]:
    """Findings where a test vector is closer to a source's vector than that source's threshold: NEAR × the
    smallest of the validation split's nearest-neighbour distances to the same source (validation and test are
    exchangeable held-out samples, so without leakage both sit equally far from any source; for the validation
    split itself, the train split's distances to it). Calibrated only with ≥ MIN_REFERENCE validation images;
    `floor` always applies."""
    thresholds, findings = {}, []
    for name, s, vectors in sources:
        reference, _ = nearest(train, vectors) if s is data.val else nearest(val, vectors)
        calibrated = len(val) >= MIN_REFERENCE and len(reference)
        # the smallest, not a percentile: with hundreds of test images a percentile rule flags distinct recordings
        threshold = max(NEAR * float(reference.min()) if calibrated else 0.0, floor)
        thresholds[name] = threshold
        dist, idx = nearest(test, vectors)
        for t in torch.nonzero(dist < threshold).flatten().tolist():
            findings.append({"test": data.test.paths[t], "source": name, "path": s.paths[int(idx[t])],
                             "kind": f"near-duplicate ({space} distance {float(dist[t]):.4f} < {threshold:.4f})"})
    return thresholds, findings


def _group_findings(manifest: Manifest) -> list[dict]:
    groups: dict[tuple[int, str], set[str]] = {}
    for r in manifest.rows:
        if r.group:
            groups.setdefault((r.person, r.group), set()).add(r.split)
    return [{"test": f"group {g} of ID_{p}", "source": "/".join(sorted(splits)), "path": "the same recording group",
             "kind": "recording group spans splits"} for (p, g), splits in groups.items() if len(splits) > 1]


def check_leakage(data: EvalData, classifier: torch.nn.Module) -> LeakageCheck:
    """Raise LeakageError naming every finding; return the (passed) check for the record."""
    test_hash = {h: p for h, p in zip(data.test.hashes, data.test.paths, strict=True)}
    generator, findings = generator_findings(test_hash, list(data.synthetic_info.values()))
    sources = _sources(data)
    for name, s in sources:
        findings += [{"test": test_hash[h], "source": name, "path": p, "kind": "same content"}
                     for h, p in zip(s.hashes, s.paths, strict=True) if h in test_hash]
    with torch.no_grad():
        feats = {id(s): classifier.features(s.images) for _, s in sources}
        test_feats = classifier.features(data.test.images)
    prints = {id(s): fingerprints(s.images) for _, s in sources}
    pixel_t, near_pixels = _near(fingerprints(data.test.images), prints[id(data.val)], prints[id(data.train)],
                                 [(n, s, prints[id(s)]) for n, s in sources], "pixel fingerprint", data, PIXEL_FLOOR)
    feature_t, near_feats = _near(test_feats, feats[id(data.val)], feats[id(data.train)],
                                  [(n, s, feats[id(s)]) for n, s in sources], "classifier feature", data)
    findings += near_pixels + near_feats + _group_findings(data.manifest)
    check = LeakageCheck(len(data.test.paths), [p for p, _ in generator], len(set().union(*(h for _, h in generator))),
                         sum(len(s.paths) for _, s in sources), pixel_t, feature_t,
                         any(r.group for r in data.manifest.rows), findings)
    if findings:
        raise LeakageError(_message(findings, data.test.root))
    return check
