"""The split manifest: one row per image (path, person, label, sha256, split) plus how it was made."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mdaug.storage import is_uri, join, read_text, write_text

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

    def file(self, row: Row) -> str:
        """Where the row's image is: under the manifest's root, a local folder or a storage URI."""
        return join(self.root, row.path)

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

    def save(self, path: Path | str) -> None:
        """Write the manifest (a local file or a storage URI), whole or not at all."""
        d = asdict(self)
        d["labels"] = {str(k): v for k, v in self.labels.items()}
        d["rows"] = [asdict(r) for r in self.rows]
        write_text(path, json.dumps({"format": "mdaug-manifest/1", **d}, indent=1))

    @classmethod
    def load(cls, path: Path | str) -> Manifest:
        path = path if is_uri(path) else Path(path)
        try:
            text = read_text(path)
        except (FileNotFoundError, IsADirectoryError):
            raise FileNotFoundError(f"manifest {path} not found; make one with `mdaug split ROOT --out {path}`") \
                from None
        try:
            d = json.loads(text)
            if d.pop("format") != "mdaug-manifest/1":
                raise ValueError("unknown format")
            d["labels"] = {int(k): v for k, v in d["labels"].items()}
            d["rows"] = [Row(**r) for r in d["rows"]]
            return cls(**d)
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{path} is not an mdaug manifest ({err}); remake it with `mdaug split`") from err
