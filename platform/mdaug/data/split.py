"""Deterministic per-person split with duplicates kept together, nested train subsets, and overlap checks."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from mdaug.data.manifest import SPLITS, Manifest, Row
from mdaug.data.validate import EXCLUDING, ValidationReport, validate


def _order_key(seed: int, sha: str) -> str:
    return hashlib.sha256(f"{seed}:{sha}".encode()).hexdigest()


def split_report(report: ValidationReport, val: float = 0.15, test: float = 0.15,
                 train_per_person: int | None = None, seed: int = 0) -> Manifest:
    """Split the usable images of a validation report.

    Per person, groups of identical content are ordered by sha256(seed:content); the first groups fill
    test, the next val, the rest train. The order depends on content and seed only, so val/test do not
    change with train_per_person, and the first K train images nest (K=5 ⊂ K=10 ⊂ all)."""
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise ValueError(f"val ({val}) and test ({test}) must be fractions in [0, 1) summing to below 1")
    if train_per_person is not None and train_per_person < 1:
        raise ValueError(f"--train-per-person must be ≥ 1, got {train_per_person}")
    by_person: dict[int, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for r in report.usable:
        by_person[r.person][r.sha256].append(r.path)
    rows: list[Row] = []
    for pid, groups in sorted(by_person.items()):
        order = sorted(groups, key=lambda sha: _order_key(seed, sha))
        n = sum(len(groups[s]) for s in order)
        quota = {"test": round(test * n), "val": round(val * n)}
        filled = {"test": 0, "val": 0}
        train_taken = 0
        for sha in order:
            split = next((s for s in ("test", "val") if filled[s] < quota[s]), "train")
            if split == "train":
                if train_per_person is not None and train_taken >= train_per_person:
                    continue
                train_taken += len(groups[sha])
            else:
                filled[split] += len(groups[sha])
            rows += [Row(p, pid, report.labels[pid], sha, split) for p in sorted(groups[sha])]
    excluded = [vars(p) for p in report.problems if p.kind in EXCLUDING]
    return Manifest(report.root, report.channels, report.labels, seed, val, test, train_per_person,
                    rows, excluded)


def make_split(root: Path, val: float = 0.15, test: float = 0.15, train_per_person: int | None = None,
               seed: int = 0, **validate_kwargs) -> tuple[Manifest, ValidationReport]:
    """Validate root (bad files skipped and listed in the manifest), then split."""
    report = validate(root, **validate_kwargs)
    return split_report(report, val, test, train_per_person, seed), report


@dataclass(frozen=True)
class Overlap:
    sha256: str
    paths_a: list[str]
    paths_b: list[str]


def _hashes_of(src: Manifest | Path, splits: tuple[str, ...]) -> dict[str, list[str]]:
    if isinstance(src, Manifest):
        return src.hashes(splits)
    report = validate(Path(src), progress=False)
    out: dict[str, list[str]] = {}
    for r in report.images:
        out.setdefault(r.sha256, []).append(r.path)
    return out


def find_overlap(a: Manifest | Path, b: Manifest | Path, splits_a: tuple[str, ...] = SPLITS,
                 splits_b: tuple[str, ...] = SPLITS) -> list[Overlap]:
    """Images (by content hash) present in both a and b; a or b may be a manifest or an ID_k folder."""
    ha, hb = _hashes_of(a, splits_a), _hashes_of(b, splits_b)
    return [Overlap(s, ha[s], hb[s]) for s in sorted(ha.keys() & hb.keys())]
