"""`mdaug validate`: find person folders, decode every image, report every problem with its file."""

from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm import tqdm

from mdaug.data.images import IMAGE_EXTENSIONS, SINGLE_CHANNEL_MODES, ImageReadError, open_image, printable
from mdaug.data.paths import path_problem, within

DEFAULT_PATTERN = r"ID_(\d+)"

# Problem kinds. EXCLUDING kinds remove the file from the data set; the others are notices.
EXCLUDING = frozenset({"not_image", "unreadable", "corrupt", "too_large", "too_small", "label_conflict", "bad_name",
                       "outside_root"})
NOTICES = frozenset({"empty_person", "folder_mismatch", "duplicate", "missing_id"})


class ValidationError(ValueError):
    """The folder cannot be used as a data set, or --on-bad fail met a problem."""


@dataclass(frozen=True)
class Problem:
    kind: str
    path: str  # relative to ROOT
    reason: str


@dataclass(frozen=True)
class ImageRecord:
    path: str  # relative to ROOT, POSIX separators
    person: int
    sha256: str
    width: int
    height: int
    mode: str


@dataclass
class ValidationReport:
    """What `validate` found: usable images, the label map, and every problem."""

    root: str
    pattern: str
    channels: str
    labels: dict[int, int]  # person id → label index (sorted numeric ids)
    images: list[ImageRecord] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    colormap_fit: float | None = None  # colour data: mean distance of the pixels to the best colormap (0–255)

    @property
    def excluded(self) -> set[str]:
        return {p.path for p in self.problems if p.kind in EXCLUDING}

    @property
    def usable(self) -> list[ImageRecord]:
        bad = self.excluded
        return [r for r in self.images if r.path not in bad]

    def to_dict(self) -> dict:
        return {
            "root": self.root,
            "pattern": self.pattern,
            "channels": self.channels,
            "colormap_fit": self.colormap_fit,
            "labels": {str(k): v for k, v in self.labels.items()},
            "persons": self.person_summary(),
            "problems": [asdict(p) for p in self.problems],
            "counts": {"usable": len(self.usable), "excluded": len(self.excluded),
                       "problems": dict(Counter(p.kind for p in self.problems))},
        }

    def person_summary(self) -> list[dict]:
        rows = []
        by_person: dict[int, list[ImageRecord]] = defaultdict(list)
        for r in self.usable:
            by_person[r.person].append(r)
        bad = self.excluded
        for pid, label in self.labels.items():
            recs = by_person.get(pid, [])
            rows.append({
                "person": pid,
                "label": label,
                "images": len(recs),
                "excluded": sum(1 for p in bad if person_of(p, self.pattern) == pid),
                "sizes": dict(Counter(f"{r.width}x{r.height}" for r in recs)),
                "modes": dict(Counter(r.mode for r in recs)),
            })
        return rows

    def table(self, per_person: bool = True) -> str:
        """Human-readable report: one line per person (unless not `per_person`), then every problem."""
        lines = []
        if per_person:
            lines.append(f"{'person':>7} {'label':>5} {'images':>6} {'excluded':>8}  sizes / modes")
            for row in self.person_summary():
                sizes = ", ".join(f"{k}:{v}" for k, v in row["sizes"].items())
                modes = ", ".join(f"{k}:{v}" for k, v in row["modes"].items())
                lines.append(f"ID_{row['person']:<4} {row['label']:>5} {row['images']:>6} {row['excluded']:>8}  "
                             f"{sizes or '-'} / {modes or '-'}")
        lines.append(f"{len(self.labels)} persons, {len(self.usable)} usable images, channels: {self.channels}"
                     + ("" if self.problems else "; no problems found"))
        if self.channels == "jet":
            lines.append(f"pseudo-colour: the pixels fit the jet colormap (mean error {self.colormap_fit:.1f} of 255); "
                         "they are read as the one value each colour encodes")
        elif self.colormap_fit is not None:
            lines.append(f"colour images fit no known colormap (best mean error {self.colormap_fit:.1f} of 255); "
                         "read as RGB")
        if self.problems:
            lines.append(f"{len(self.problems)} problems ({len(self.excluded)} files excluded):")
            lines += [f"  [{p.kind}] {printable(p.path)}: {printable(p.reason)}" for p in self.problems]
        return "\n".join(lines)


def person_of(rel: str, pattern: str) -> int | None:
    m = re.fullmatch(pattern, rel.split("/")[0], flags=re.IGNORECASE)
    return int(m.group(1)) if m else None


def find_person_folders(root: Path, pattern: str) -> tuple[dict[int, Path], list[Problem]]:
    """Map person id → folder for every child folder of root matching the pattern (case-insensitive)."""
    if not root.is_dir():
        raise ValidationError(f"data root {root} does not exist or is not a folder")
    rx = re.compile(pattern, flags=re.IGNORECASE)
    if rx.groups != 1:
        raise ValidationError(f"--pattern {pattern!r} must have exactly one group capturing the person number")
    folders: dict[int, Path] = {}
    problems: list[Problem] = []
    children = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    for d in children:
        m = rx.fullmatch(d.name)
        if not m:
            problems.append(Problem("folder_mismatch", d.name, f"folder name does not match `{pattern}`; ignored"))
            continue
        pid = int(m.group(1))
        if pid in folders:
            raise ValidationError(
                f"folders {folders[pid].name!r} and {d.name!r} both name person {pid}; merge or rename one"
            )
        folders[pid] = d
    if not folders:
        found = ", ".join(c.name for c in children[:10]) or "no sub-folders"
        raise ValidationError(
            f"no person folders in {root}: expected sub-folders matching `{pattern}` "
            f"(e.g. ID_1 … ID_31, case-insensitive, zero padding allowed); found: {found}"
        )
    return folders, problems


def _inspect(path: Path, min_size: int) -> tuple[tuple[int, int, str] | None, str | None, str | None]:
    """(width, height, mode) or (None, kind, reason)."""
    try:
        im = open_image(path)
    except ImageReadError as err:
        return None, err.kind, err.reason
    w, h, mode = im.width, im.height, im.mode
    if min(w, h) < min_size:
        return None, "too_small", f"{w}x{h} is smaller than the minimum side {min_size}"
    return (w, h, mode), None, None


def validate(root: Path, pattern: str = DEFAULT_PATTERN, channels: str = "auto", min_size: int = 16,
             progress: bool = True) -> ValidationReport:
    """Scan root: every person folder, every file in it and its sub-folders; decode every image."""
    root = Path(root).resolve()
    folders, problems = find_person_folders(root, pattern)
    labels = {pid: i for i, pid in enumerate(sorted(folders))}
    ids = sorted(folders)
    gaps = missing_ranges(ids)
    if gaps:
        problems.append(Problem("missing_id", ".", f"person ids missing from 1..{ids[-1]}: {describe_ranges(gaps)}"))
    files: list[tuple[int, Path]] = []
    for pid in ids:
        # every entry but real folders: links, pipes and the like are reported below, never silently dropped
        found = sorted(f for f in folders[pid].rglob("*") if f.is_symlink() or not f.is_dir())
        if not found:
            problems.append(Problem("empty_person", folders[pid].name, "person folder holds no files"))
        files += [(pid, f) for f in found]
    images: list[ImageRecord] = []
    for pid, f in tqdm(files, desc="validate", unit="file", disable=not progress):
        rel = f.relative_to(root).as_posix()
        bad_name = path_problem(rel)
        if bad_name:  # a manifest could not name it (a backslash, say): rename the file
            problems.append(Problem("bad_name", rel, f"the path {bad_name}; rename the file"))
            continue
        if not within(f, root):  # a link, or a linked person folder, that leaves ROOT
            problems.append(Problem("outside_root", rel, "resolves outside ROOT through a symbolic link; links that "
                                    "leave ROOT are not followed: copy the file under ROOT, or validate the folder "
                                    "that holds it"))
            continue
        if f.suffix.lower() not in IMAGE_EXTENSIONS:
            problems.append(Problem("not_image", rel, f"extension {f.suffix or '(none)'!r} is not an image type"))
            continue
        info, kind, reason = _inspect(f, min_size)
        if info is None:
            problems.append(Problem(kind, rel, reason))
            continue
        digest = hashlib.sha256(f.read_bytes()).hexdigest()
        images.append(ImageRecord(rel, pid, digest, *info))
    problems += _duplicates(images)
    fit = None
    if channels == "auto":
        ok = {r.path for r in images} - {p.path for p in problems if p.kind in EXCLUDING}
        colour = [r for r in images if r.path in ok and r.mode not in SINGLE_CHANNEL_MODES]
        channels, fit = _colour_mode(root, colour) if colour else ("gray", None)
    return ValidationReport(str(root), pattern, channels, labels, images, problems, fit)


def missing_ranges(ids: list[int]) -> list[tuple[int, int]]:
    """(first, last) of each run of person numbers 1 … max(ids) absent from the sorted `ids`: as many runs as
    folders at most, whatever the largest number."""
    gaps, expect = [], 1
    for i in ids:
        if i > expect:
            gaps.append((expect, i - 1))
        expect = max(expect, i + 1)
    return gaps


def describe_ranges(gaps: list[tuple[int, int]], shown: int = 20) -> str:
    """'ID_4, ID_6–ID_9 missing' (the first `shown` runs, then how many more)."""
    text = ", ".join(f"ID_{a}" if a == b else f"ID_{a}–ID_{b}" for a, b in gaps[:shown])
    if len(gaps) > shown:
        text += f" and {len(gaps) - shown} more runs ({sum(b - a + 1 for a, b in gaps)} ids in all)"
    return text + " missing"


def _colour_mode(root: Path, colour: list[ImageRecord], sample: int = 16) -> tuple[str, float]:
    """'jet' when evenly spaced sample images all fit the jet colormap, else 'rgb'; with the fit error."""
    import numpy as np

    from mdaug.data.colormap import detect

    picks = colour[:: max(1, len(colour) // sample)][:sample]
    arrays = []
    for r in picks:
        arrays.append(np.asarray(open_image(root / r.path).convert("RGB")))
    name, error = detect(arrays)
    return ("jet" if name == "jet" else "rgb"), error


def _duplicates(images: list[ImageRecord]) -> list[Problem]:
    """Same content twice: within one person a notice (kept, split together); across persons every
    copy is excluded, since its label is ambiguous."""
    groups: dict[str, list[ImageRecord]] = defaultdict(list)
    for r in images:
        groups[r.sha256].append(r)
    problems = []
    for recs in groups.values():
        if len(recs) < 2:
            continue
        persons = sorted({r.person for r in recs})
        for r in recs:
            others = ", ".join(o.path for o in recs if o is not r)
            if len(persons) > 1:
                problems.append(Problem("label_conflict", r.path,
                                        f"same content in persons {persons} ({others}); excluded"))
            else:
                problems.append(Problem("duplicate", r.path, f"same content as {others}; kept, split together"))
    return problems
