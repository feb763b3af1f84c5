"""The split manifest: one row per image (path, person, label, sha256, split) plus how it was made.

A manifest is checked whenever one is built, loaded or saved (`Manifest.check`): plain relative paths that stay
under the root, each once; known splits; every row labelled with its person's label; every labelled person
present; no empty split whose fraction is above 0. `Manifest.file` refuses a row whose file resolves outside
the root."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mdaug.data.paths import UnsafePathError, inside, path_problem
from mdaug.storage import is_uri, read_text, write_text

SPLITS = ("train", "val", "test")
REMAKE = "remake it with `mdaug split ROOT --out MANIFEST`"


class ManifestError(ValueError):
    """A manifest that could lose or expose data: bad paths, labels or splits. Names the row and the fix."""


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
    excluded: list[dict] = field(default_factory=list)  # validation problems that removed files or persons
    leakage: dict | None = None  # near-duplicate calibration and findings of the split (mdaug.data.split); None before

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Raise ManifestError at the first row or setting that a reader could not trust."""
        if sorted(self.labels.values()) != list(range(len(self.labels))):
            raise ManifestError(f"labels must number the persons 0 … {len(self.labels) - 1}, each once; got "
                                f"{dict(sorted(self.labels.items()))}; {REMAKE}")
        if not (0 <= self.val < 1 and 0 <= self.test < 1 and self.val + self.test < 1):
            raise ManifestError(f"val ({self.val}) and test ({self.test}) must be fractions in [0, 1) summing "
                                f"to below 1; {REMAKE}")
        seen: dict[str, int] = {}
        for i, r in enumerate(self.rows):
            where = f"row {i} (path {r.path!r})"
            reason = path_problem(r.path)
            if reason:
                raise ManifestError(f"{where}: the path {reason}; rows name files under the root "
                                    f"({self.root}) as relative paths with '/' separators; {REMAKE}")
            if r.path in seen:
                raise ManifestError(f"{where}: the same path as row {seen[r.path]}; each file is listed once; "
                                    f"{REMAKE}")
            seen[r.path] = i
            if r.split not in SPLITS:
                raise ManifestError(f"{where}: unknown split {r.split!r}; use one of {SPLITS}; {REMAKE}")
            if r.person not in self.labels:
                raise ManifestError(f"{where}: person {r.person!r} is not in the manifest's labels "
                                    f"{sorted(self.labels)}; {REMAKE}")
            if r.label != self.labels[r.person]:
                raise ManifestError(f"{where}: label {r.label!r} is not person {r.person}'s label "
                                    f"{self.labels[r.person]}; {REMAKE}")
        unlisted = sorted(set(self.labels) - {r.person for r in self.rows})
        if unlisted:
            raise ManifestError(f"persons {unlisted} have a label but no row (a class without images); {REMAKE}")
        fractions = {"train": 1.0, "val": self.val, "test": self.test}
        empty = [s for s in SPLITS if fractions[s] > 0 and not any(r.split == s for r in self.rows)]
        if empty:
            raise ManifestError(f"split {empty[0]!r} is empty although its fraction is {fractions[empty[0]]}; "
                                f"{REMAKE} with more images per person or a larger fraction")

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def split(self, name: str) -> list[Row]:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; use one of {SPLITS}")
        return [r for r in self.rows if r.split == name]

    def file(self, row: Row) -> str:
        """Where the row's image is: under the manifest's root, a local folder or a storage URI; ManifestError
        for a row whose file would be outside the root (a bad path, or a symbolic link leaving the root)."""
        try:
            return inside(self.root, row.path)
        except UnsafePathError as err:
            raise ManifestError(f"manifest row refused (root {self.root}): {err}; a manifest only reads files "
                                "under its root: copy the file under the root and run `mdaug split` again") from None

    def hashes(self, splits: tuple[str, ...] = SPLITS) -> dict[str, list[str]]:
        """sha256 → paths, over the given splits."""
        out: dict[str, list[str]] = {}
        for r in self.rows:
            if r.split in splits:
                out.setdefault(r.sha256, []).append(r.path)
        return out

    def content_hash(self) -> str:
        """Identity of what the manifest selects, for provenance tags: the rows, and the near-duplicate record
        when there is one (its threshold decides what the evaluation calls leakage). A manifest written before
        that record existed keeps the hash of its rows."""
        rows = [asdict(r) for r in self.rows]
        blob = json.dumps(rows if self.leakage is None else {"rows": rows, "leakage": self.leakage},
                          sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()

    def save(self, path: Path | str) -> None:
        """Write the manifest (a local file or a storage URI), whole or not at all; a bad one never."""
        try:
            self.check()
        except ManifestError as err:
            raise ManifestError(f"manifest {path} not written: {err}") from None
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
        except ManifestError as err:
            raise ManifestError(f"manifest {path}: {err}") from None
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{path} is not an mdaug manifest ({err}); remake it with `mdaug split`") from err
