"""Deterministic per-person split with duplicates kept together, nested train subsets, and overlap checks."""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from mdaug.data.duplicates import Calibration, calibrate, near_duplicates
from mdaug.data.fingerprint import file_fingerprints
from mdaug.data.manifest import SPLITS, Manifest, Row
from mdaug.data.paths import inside
from mdaug.data.validate import EXCLUDING, ValidationError, ValidationReport, person_of, validate


def _order_key(seed: int, sha: str) -> str:
    return hashlib.sha256(f"{seed}:{sha}".encode()).hexdigest()


def group_key(path: str, sha256: str, pattern: re.Pattern | None) -> tuple[str, str]:
    """(ordering key, recording group) of an image: its --group match, else its content."""
    m = pattern.search(path) if pattern is not None else None
    if m is None:
        return f"sha:{sha256}", ""
    group = m.group(1) if pattern.groups else m.group(0)
    return f"group:{group}", group


def split_report(report: ValidationReport, val: float = 0.15, test: float = 0.15,
                 train_per_person: int | None = None, seed: int = 0, group: str | None = None,
                 on_duplicates: str = "move") -> Manifest:
    """Split the usable images of a validation report.

    Per person, groups are ordered by sha256(seed:key); the first groups fill test, the next val, the rest
    train. A group is the images of identical content, or with `group` (a regex searched in each relative
    path; its first capture group, else the whole match, names the recording) every image of one recording:
    overlapping windows cut from one recording never land on both sides. Then near-duplicates (pixel
    fingerprints closer than a threshold calibrated on this data set, mdaug.data.duplicates) of one person that
    landed in two splits are moved wholly into one (`on_duplicates="move"`: train if any of them is in train,
    else val; listed in the manifest's `leakage`) or refused (`"refuse"`, naming the pairs); near-duplicates of
    two persons (possible mislabels) are listed, not moved. The order depends on content (or group name) and
    seed only, and train_per_person applies last, so val/test do not change with train_per_person, and the
    first K train images nest (K=5 ⊂ K=10 ⊂ all).

    A person folder without a usable image gets no label: it is listed in `excluded` (kind no_usable_image) and
    the labels number the persons that have images, so the label space counts only classes that can be
    learned and tested. No usable image at all, or a split left empty although its fraction is above 0, is a
    ValidationError."""
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise ValueError(f"val ({val}) and test ({test}) must be fractions in [0, 1) summing to below 1")
    if train_per_person is not None and train_per_person < 1:
        raise ValueError(f"--train-per-person must be ≥ 1, got {train_per_person}")
    if on_duplicates not in ON_DUPLICATES:
        raise ValueError(f"on_duplicates must be one of {ON_DUPLICATES}, got {on_duplicates!r}")
    try:
        pattern = re.compile(group) if group else None
    except re.error as err:
        raise ValueError(f"--group {group!r} is not a valid regular expression: {err}") from None
    by_person: dict[int, dict[str, list[tuple[str, str, str]]]] = defaultdict(lambda: defaultdict(list))
    for r in report.usable:
        key, name = group_key(r.path, r.sha256, pattern)
        by_person[r.person][key].append((r.path, r.sha256, name))
    if not by_person:
        raise ValidationError(f"no usable image in {report.root} ({len(report.excluded)} files excluded, listed by "
                              f"`mdaug validate {report.root}`); nothing to split, no manifest written")
    labels = {pid: i for i, pid in enumerate(sorted(by_person))}
    orders = {pid: sorted(groups, key=lambda key: _order_key(seed, key.removeprefix("sha:")))
              for pid, groups in by_person.items()}
    assigned = _assign(by_person, orders, val, test)
    leakage = resolve_duplicates(report.root, by_person, assigned, on_duplicates)
    rows: list[Row] = []
    for pid, groups in sorted(by_person.items()):
        train_taken = 0
        for key in orders[pid]:
            split = assigned[(pid, key)]
            if split == "train":
                if train_per_person is not None and train_taken >= train_per_person:
                    continue
                train_taken += len(groups[key])
            rows += [Row(p, pid, labels[pid], sha, split, name) for p, sha, name in sorted(groups[key])]
    excluded = [vars(p) for p in report.problems if p.kind in EXCLUDING] + _empty_persons(report, labels)
    for name, fraction in (("train", 1 - val - test), ("val", val), ("test", test)):
        if fraction > 0 and not any(r.split == name for r in rows):
            fewest = min(sum(map(len, g.values())) for g in by_person.values())
            raise ValidationError(f"the {name} split would be empty: a fraction of {fraction:g} of each person's "
                                  f"usable images rounds to none (the smallest person has {fewest}), or its images "
                                  f"were near-duplicates moved into train ({leakage['moved_count']} moved); add "
                                  "images or change the val/test fractions; no manifest written")
    return Manifest(report.root, report.channels, labels, seed, val, test, train_per_person,
                    rows, group_pattern=group, excluded=excluded, leakage=leakage)


def _assign(by_person: dict[int, dict[str, list]], orders: dict[int, list[str]], val: float,
            test: float) -> dict[tuple[int, str], str]:
    """(person, group key) → split: per person, the first groups in order fill test, the next val, the rest train."""
    assigned = {}
    for pid, groups in by_person.items():
        n = sum(len(g) for g in groups.values())
        quota = {"test": round(test * n), "val": round(val * n)}
        filled = {"test": 0, "val": 0}
        for key in orders[pid]:
            split = next((s for s in ("test", "val") if filled[s] < quota[s]), "train")
            if split != "train":
                filled[split] += len(groups[key])
            assigned[(pid, key)] = split
    return assigned


ON_DUPLICATES = ("move", "refuse")
LISTED = 200  # pairs and moves listed in the manifest (all are counted)


def resolve_duplicates(root: str, by_person: dict[int, dict[str, list[tuple[str, str, str]]]],
                       assigned: dict[tuple[int, str], str], on_duplicates: str) -> dict:
    """Find near-duplicates among all usable images; move (in `assigned`) or refuse one person's clusters that
    span splits; return the record for the manifest's `leakage` field."""
    images = [(pid, key, path, name) for pid, groups in sorted(by_person.items()) for key in sorted(groups)
              for path, _, name in groups[key]]
    prints = file_fingerprints([inside(root, path) for _, _, path, _ in images])
    cal = calibrate(prints, [pid for pid, _, _, _ in images], [name for _, _, _, name in images])
    parent = {(pid, key): (pid, key) for pid, key, _, _ in images}

    def find(unit: tuple[int, str]) -> tuple[int, str]:
        while parent[unit] != unit:
            parent[unit] = parent[parent[unit]]
            unit = parent[unit]
        return unit

    same, cross = [], []
    for i, j, d in near_duplicates(prints, prints, cal.threshold):
        (pa, ka, a, _), (pb, kb, b, _) = images[i], images[j]
        if i >= j or (pa, ka) == (pb, kb):
            continue
        if pa != pb:
            cross.append({"a": a, "b": b, "distance": round(d, 4)})
            continue
        same.append({"a": a, "b": b, "distance": round(d, 4), "splits": f"{assigned[(pa, ka)]}/{assigned[(pb, kb)]}"})
        ra, rb = find((pa, ka)), find((pb, kb))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    clusters: dict[tuple[int, str], list[tuple[int, str]]] = defaultdict(list)
    for unit in parent:
        clusters[find(unit)].append(unit)
    spanning = [units for units in clusters.values() if len({assigned[u] for u in units}) > 1]
    crossing = [p for p in same if p["splits"].split("/")[0] != p["splits"].split("/")[1]]
    if spanning and on_duplicates == "refuse":
        lines = "\n".join(f"  {p['a']} ({p['splits'].split('/')[0]}) ~ {p['b']} ({p['splits'].split('/')[1]}): "
                          f"distance {p['distance']}" for p in crossing[:20])
        raise ValidationError(f"{len(crossing)} near-duplicate pair(s) of one person would land in two splits "
                              f"({cal.describe()}):\n{lines}\nRemove the copies, declare recordings with --group, or "
                              "split with --on-duplicates move to keep each cluster in one split; no manifest written")
    moved = []
    for units in spanning:
        splits = {assigned[u] for u in units}
        target = "train" if "train" in splits else "val"
        for unit in sorted(units):
            if assigned[unit] != target:
                moved += [{"path": path, "from": assigned[unit], "to": target}
                          for path, _, _ in sorted(by_person[unit[0]][unit[1]])]
                assigned[unit] = target
    return cal.to_dict() | {"on_duplicates": on_duplicates, "alike_warning": cal.alike_warning(),
                            "moved_count": len(moved), "moved": moved[:LISTED],
                            "same_person_pairs": len(same), "crossing_pairs": crossing[:LISTED],
                            "cross_person_count": len(cross), "cross_person": cross[:LISTED]}


def duplicate_lines(record: dict, named: int = 3) -> list[str]:
    """The split's near-duplicate threshold, then its moves and cross-person findings in one line (the first
    `named` of each named; all of them are in the manifest's leakage record)."""
    fields = Calibration.__dataclass_fields__
    lines = [Calibration(**{k: v for k, v in record.items() if k in fields}).describe()]
    if record.get("alike_warning"):
        lines.append(f"note: {record['alike_warning']}")
    moved, cross = record.get("moved", []), record.get("cross_person", [])
    moved_count, cross_count = record.get("moved_count", len(moved)), record.get("cross_person_count", len(cross))

    def first(items: list[str], count: int) -> str:
        return ", ".join(items[:named]) + (", …" if count > named else "")

    words = f"near-duplicates: {moved_count} image(s) moved to keep clusters in one split"
    if moved:
        shown = [f"{m['path']} {m['from']} → {m['to']}" for m in moved]
        words += f" (near-duplicate moved: {first(shown, moved_count)})"
    words += f"; {cross_count} cross-person pair(s)"
    if cross:
        shown = [f"{c['a']} ~ {c['b']}" for c in cross]
        words += f" labelled as two persons, check for a mislabel: {first(shown, cross_count)}"
    return lines + [words + "; all listed in the manifest's leakage"]


def _empty_persons(report: ValidationReport, labels: dict[int, int]) -> list[dict]:
    """An exclusion entry for each person folder of the report without a usable image."""
    out = []
    for pid in sorted(set(report.labels) - set(labels)):
        paths = [p.path for p in report.problems if person_of(p.path, report.pattern) == pid]
        folder = paths[0].split("/")[0] if paths else f"person {pid}"
        bad = sum(1 for p in report.problems if p.kind in EXCLUDING and p.path in paths)
        out.append({"kind": "no_usable_image", "path": folder,
                    "reason": f"person {pid} has no usable image ({bad} files excluded); left out of the labels, "
                              f"which cover the {len(labels)} persons with images"})
    return out


def make_split(root: Path, val: float = 0.15, test: float = 0.15, train_per_person: int | None = None,
               seed: int = 0, group: str | None = None, on_duplicates: str = "move",
               **validate_kwargs) -> tuple[Manifest, ValidationReport]:
    """Validate root (bad files skipped and listed in the manifest), then split."""
    report = validate(root, **validate_kwargs)
    return split_report(report, val, test, train_per_person, seed, group, on_duplicates), report


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
