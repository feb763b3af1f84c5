"""No leakage: before any test image is scored, the real test split is checked against everything the
generator or the classifier trains on —
- by content hash: the generator's training data (its provenance and its training manifest's train and val
  splits), the real train and val splits, the generated and the oracle images;
- by pixel fingerprint (robust to re-encoding, resizing and metadata) under the threshold the split calibrated
  on this data set (the manifest's `leakage` record, mdaug.data.duplicates; calibrated here on train+val by
  person when the manifest has none);
- by nearest neighbour in the classifier's feature space: a test image much closer to an image of a set than
  the validation images are (validation and test are exchangeable held-out samples; see `_near_features`);
- by recording group: no group of the manifest (`mdaug split --group`) spans two splits.
A copy of a test image in a generated set is leakage whoever it is labelled as; a test image near a train or val
image of *another* person is a data-quality finding (a possible mislabel), and near an oracle image of another
person two persons' recordings alike (the oracle is recorded afresh by the simulator from each person's own
parameters; a seed collision would repeat the same person): both reported, not refused.
Any other finding stops the job, naming both files. `check_generated` runs the hash and pixel checks of one
generated folder right after generation."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from mdaug.data.duplicates import calibrate, near_duplicates
from mdaug.data.fingerprint import VERSION, file_fingerprints, nearest
from mdaug.data.manifest import Manifest
from mdaug.data.paths import inside
from mdaug.data.validate import validate
from mdaug.evaluation.budget import generator_images
from mdaug.evaluation.sets import EvalData, ImageSet
from mdaug.storage import exists

NEAR = 0.5  # fraction of the held-out reference distance below which a pair of feature vectors is a copy
FEATURE_QUANTILE = 0.01  # of the validation images' nearest distances to a set (not the minimum of one image)
MIN_REFERENCE = 30  # validation images needed to calibrate the feature threshold


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
    pixel_calibration: str = ""  # where the pixel threshold came from
    findings: list[dict] = field(default_factory=list)
    data_quality: list[dict] = field(default_factory=list)  # test images near another person's train/val/oracle image

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
        quality = (f"; {len(self.data_quality)} test image(s) near another person's train/val/oracle image "
                   "(possible mislabels or alike persons, listed in data_quality)" if self.data_quality else "")
        return (f"leakage check passed: {self.test_images} test images share no content (hash) and are no "
                f"near-duplicates (pixel fingerprint, {self.pixel_calibration}; {features}) of the "
                f"{self.compared_images} train/val/generated/oracle images, nor share content with the "
                f"{self.generator_images} images its generator's training manifests offered it{groups}{quality}")


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
        raise LeakageError(findings_message(findings, manifest.root))


def findings_message(findings: list[dict], root: str) -> str:
    """The refusal: every finding (the first 20 listed) and the remedy."""
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


def _prints(s: ImageSet) -> torch.Tensor:
    """Pixel fingerprints of a set, from its files (luma; see mdaug.data.fingerprint)."""
    return file_fingerprints([inside(s.root, p) for p in s.paths])


def pixel_threshold(manifest: Manifest, train_val: tuple[torch.Tensor, list[int], list[str]] | None = None
                    ) -> tuple[float, str]:
    """(threshold, where it came from): the split's calibration recorded in the manifest, else one calibrated
    now on the train+val fingerprints by person (`train_val`: prints, persons, groups; loaded when None)."""
    record = manifest.leakage or {}
    if record.get("fingerprint") == VERSION and "threshold" in record:
        return float(record["threshold"]), f"threshold {record['threshold']:.4f} calibrated at the split"
    if train_val is None:
        rows = manifest.split("train") + manifest.split("val")
        train_val = (file_fingerprints([manifest.file(r) for r in rows]), [r.person for r in rows],
                     [r.group for r in rows])
    cal = calibrate(*train_val)
    return cal.threshold, f"{cal.describe()}, calibrated now: the manifest records none"


def _classify(finding: dict, same_person: bool, name: str, findings: list[dict], quality: list[dict]) -> None:
    """A near pair to a train/val/oracle image of another person is a data-quality finding; any other is
    leakage."""
    (quality if name in ("train", "val", "oracle") and not same_person else findings).append(finding)


def _near_pixels(test: torch.Tensor, data: EvalData, sources: list[tuple[str, ImageSet, torch.Tensor]],
                 threshold: float) -> tuple[list[dict], list[dict]]:
    """(leakage findings, data-quality findings) of test fingerprints closer than `threshold` to a source's."""
    findings: list[dict] = []
    quality: list[dict] = []
    for name, s, prints in sources:
        for t, j, d in near_duplicates(test, prints, threshold):
            finding = {"test": data.test.paths[t], "source": name, "path": s.paths[j],
                       "kind": f"near-duplicate (pixel fingerprint distance {d:.4f} < {threshold:.4f})"}
            _classify(finding, int(data.test.labels[t]) == int(s.labels[j]), name, findings, quality)
    return findings, quality


def _near_features(test: torch.Tensor, val: torch.Tensor, train: torch.Tensor,
                   sources: list[tuple[str, ImageSet, torch.Tensor]], data: EvalData,
                   pixel: dict[str, torch.Tensor], pixel_t: float) -> tuple[dict[str, float], list[dict], list[dict]]:
    """Test feature vectors closer to a source's than that source's threshold: NEAR × the FEATURE_QUANTILE
    quantile of the validation images' nearest distances to the same source (for the validation split itself,
    the train images' distances to it). Validation and test are exchangeable held-out samples, so without
    leakage both sit equally far from any source; reference images that are pixel near-duplicates of the
    source (known copies) are left out, so one leaky validation image cannot pull the threshold to 0. Not
    cross-person distances: an identity classifier puts persons far apart, so half of those would flag every
    distinct recording of the same person. Calibrated only with ≥ MIN_REFERENCE validation images."""
    thresholds, findings, quality = {}, [], []
    for name, s, vectors in sources:
        reference, _ = nearest(train, vectors) if s is data.val else nearest(val, vectors)
        ref_pixels = pixel["train"] if s is data.val else pixel["val"]
        copies, _ = nearest(ref_pixels, pixel[name])
        reference = reference[copies >= pixel_t]
        calibrated = len(val) >= MIN_REFERENCE and len(reference)
        threshold = NEAR * float(torch.quantile(reference, FEATURE_QUANTILE)) if calibrated else 0.0
        thresholds[name] = threshold
        dist, idx = nearest(test, vectors)
        for t in torch.nonzero(dist < threshold).flatten().tolist():
            j = int(idx[t])
            finding = {"test": data.test.paths[t], "source": name, "path": s.paths[j],
                       "kind": f"near-duplicate (classifier feature distance {float(dist[t]):.4f} < {threshold:.4f})"}
            _classify(finding, int(data.test.labels[t]) == int(s.labels[j]), name, findings, quality)
    return thresholds, findings, quality


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
    prints = {name: _prints(s) for name, s in sources}
    groups = {r.path: r.group for r in data.manifest.rows}
    train_val = (torch.cat([prints["train"], prints["val"]]),
                 [int(x) for x in [*data.train.labels, *data.val.labels]],
                 [groups.get(p, "") for p in [*data.train.paths, *data.val.paths]])
    pixel_t, calibration = pixel_threshold(data.manifest, train_val)
    near_pixels, quality = _near_pixels(_prints(data.test), data, [(n, s, prints[n]) for n, s in sources], pixel_t)
    feature_t, near_feats, quality_feats = _near_features(
        test_feats, feats[id(data.val)], feats[id(data.train)], [(n, s, feats[id(s)]) for n, s in sources],
        data, prints, pixel_t)
    findings += near_pixels + near_feats + _group_findings(data.manifest)
    check = LeakageCheck(len(data.test.paths), [p for p, _ in generator], len(set().union(*(h for _, h in generator))),
                         sum(len(s.paths) for _, s in sources), {n: pixel_t for n, _ in sources}, feature_t,
                         any(r.group for r in data.manifest.rows), calibration, findings, quality + quality_feats)
    if findings:
        raise LeakageError(findings_message(findings, data.test.root))
    return check


def check_generated(folder: Path | str, manifest: Manifest) -> list[dict]:
    """Findings (as check_leakage's) of a generated ID_k folder against the manifest's test split: same content,
    or a pixel near-duplicate under the split's threshold — whichever person either is labelled as (a copy of a
    test image is leakage into the generator). Empty when clean; refuse with
    `LeakageError(findings_message(findings, manifest.root))`."""
    test = manifest.split("test")
    usable = validate(Path(folder), progress=False).usable
    if not test or not usable:
        return []
    source = f"generated {folder}"
    by_hash = {r.sha256: r.path for r in test}
    findings = [{"test": by_hash[g.sha256], "source": source, "path": g.path, "kind": "same content"}
                for g in usable if g.sha256 in by_hash]
    threshold, _ = pixel_threshold(manifest)
    generated = file_fingerprints([inside(str(folder), g.path) for g in usable])
    test_prints = file_fingerprints([manifest.file(r) for r in test])
    findings += [{"test": test[t].path, "source": source, "path": usable[j].path,
                  "kind": f"near-duplicate (pixel fingerprint distance {d:.4f} < {threshold:.4f})"}
                 for t, j, d in near_duplicates(test_prints, generated, threshold)]
    return findings
