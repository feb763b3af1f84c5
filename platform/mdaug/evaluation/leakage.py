"""No leakage: the real test split shares no image (by content hash) with what the generator was trained on,
nor with the synthetic or oracle images added to training. Checked before any training."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from mdaug.data.manifest import Manifest
from mdaug.evaluation.sets import EvalData, ImageSet


class LeakageError(ValueError):
    """The test split overlaps the generator's training data or an added image set."""


@dataclass
class LeakageCheck:
    test_images: int
    generator_manifest: str
    generator_images: int  # train + val images of the generator's manifest (what it could have seen)
    synthetic_images: int
    oracle_images: int
    overlaps: list[dict] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.overlaps

    def to_dict(self) -> dict:
        return asdict(self) | {"passed": self.passed}

    def summary(self) -> str:
        return (f"leakage check passed: {self.test_images} test images share no content with the "
                f"{self.generator_images} images the generator trained on ({self.generator_manifest}), the "
                f"{self.synthetic_images} synthetic images or the {self.oracle_images} oracle images")


def _generator_hashes(info: dict) -> tuple[str, dict[str, list[str]]]:
    path = info.get("training_manifest")
    if not path or not Path(path).is_file():
        raise LeakageError(f"cannot verify that the generator never saw a test image: its training manifest "
                           f"{path!r} (named in the synthetic manifest.json) is not found; restore that file or "
                           "regenerate with a DiT trained on a manifest you still have")
    gen = Manifest.load(Path(path))
    if info.get("training_manifest_hash") != gen.content_hash():
        raise LeakageError(f"the generator's training manifest {path} changed after the generator was trained "
                           "(content hash differs); cannot verify what the generator saw")
    return path, gen.hashes(("train", "val"))


def _set_hashes(s: ImageSet | None) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for h, p in zip(s.hashes, s.paths, strict=True) if s is not None else ():
        out.setdefault(h, []).append(p)
    return out


def check_leakage(data: EvalData) -> LeakageCheck:
    """Raise LeakageError naming every overlapping file; return the (passed) check for the record."""
    gen_path, gen_hashes = _generator_hashes(data.synthetic_info)
    test = _set_hashes(data.test)
    check = LeakageCheck(len(data.test.paths), gen_path, sum(len(v) for v in gen_hashes.values()),
                         len(data.synthetic.paths), len(data.oracle.paths) if data.oracle else 0)
    for source, hashes in (("generator training manifest", gen_hashes), ("synthetic", _set_hashes(data.synthetic)),
                           ("oracle", _set_hashes(data.oracle))):
        for sha in sorted(test.keys() & hashes.keys()):
            check.overlaps.append({"test": test[sha], "source": source, "paths": hashes[sha], "sha256": sha})
    if check.overlaps:
        lines = [f"  test {', '.join(o['test'])} = {o['source']} {', '.join(o['paths'])}" for o in check.overlaps[:20]]
        more = f"\n  … and {len(check.overlaps) - 20} more" if len(check.overlaps) > 20 else ""
        raise LeakageError(f"{len(check.overlaps)} test image(s) also appear in data the classifier or generator "
                           f"trains on (test root {data.test.root}):\n" + "\n".join(lines) + more
                           + "\nRemove them, or re-split and retrain the generator on the new train split.")
    return check
