"""The split manifest: one row per image (path, person, label, sha256, split) plus how it was made."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Row:
    path: str  # relative to the manifest's root
    person: int
    label: int
    sha256: str
    split: str
    group: str = ""  # recording group (mdaug split --group); all of a group's images share one split


@dataclass
class Manifest:
    root: str
    channels: str
    labels: dict[int, int]
    seed: int
    val: float
    test: float
    train_per_person: int | None
    rows: list[Row] = field(default_factory=list)
    group_pattern: str | None = None  # the --group regex the split kept recordings together by
    excluded: list[dict] = field(default_factory=list)  # validation problems that removed files

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def split(self, name: str) -> list[Row]:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; use one of {SPLITS}")
        return [r for r in self.rows if r.split == name]

    def first_per_person(self, k: int) -> list[Row]:
        """The first k train rows of each person in the split's order (all for k = 0): the nested subsets an
        evaluation at k trains on, and all a generator for that k may see."""
        taken: dict[int, int] = {}
        out = []
        for r in self.split("train"):
            if not k or taken.get(r.person, 0) < k:
                taken[r.person] = taken.get(r.person, 0) + 1
                out.append(r)
        return out

    def hashes(self, splits: tuple[str, ...] = SPLITS) -> dict[str, list[str]]:
        """sha256 → paths, over the given splits."""
        out: dict[str, list[str]] = {}
        for r in self.rows:
            if r.split in splits:
                out.setdefault(r.sha256, []).append(r.path)
        return out

    def content_hash(self) -> str:
        """Identity of what the manifest selects (rows only), for provenance tags."""
        blob = json.dumps([asdict(r) for r in self.rows], sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()

    def save(self, path: Path) -> None:
        d = asdict(self)
        d["labels"] = {str(k): v for k, v in self.labels.items()}
        d["rows"] = [asdict(r) for r in self.rows]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({"format": "mdaug-manifest/1", **d}, indent=1))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Manifest:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"manifest {path} not found; make one with `mdaug split ROOT --out {path}`")
        try:
            d = json.loads(path.read_text())
            if d.pop("format") != "mdaug-manifest/1":
                raise ValueError("unknown format")
            d["labels"] = {int(k): v for k, v in d["labels"].items()}
            d["rows"] = [Row(**r) for r in d["rows"]]
            return cls(**d)
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{path} is not an mdaug manifest ({err}); remake it with `mdaug split`") from err
