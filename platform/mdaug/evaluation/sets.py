"""The image sets of an evaluation, in memory: real train and test (from the manifest), synthetic and oracle
(ID_k folders), all resized to the classifier's input size and labelled with the manifest's label map."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from mdaug.data.images import load_image
from mdaug.data.manifest import Manifest
from mdaug.data.paths import inside
from mdaug.data.validate import validate
from mdaug.storage import io_map, is_uri


@dataclass
class ImageSet:
    """Images (N, C, S, S) in [-1, 1] with labels, paths (relative to root) and content hashes."""

    root: str
    images: torch.Tensor
    labels: np.ndarray
    paths: list[str]
    hashes: list[str]
    skipped: int = 0  # unusable files (listed by `mdaug validate ROOT`)

    def __reduce__(self):
        """Pickled (as Ray's object store does) with the images as a NumPy array: every evaluation task then maps
        the one copy in shared memory instead of unpickling its own (a tensor would be copied per task)."""
        return _image_set, (self.root, self.images.numpy(), self.labels, self.paths, self.hashes, self.skipped)

    def indices_of(self, label: int) -> np.ndarray:
        return np.flatnonzero(self.labels == label)

    def counts(self, num_classes: int) -> np.ndarray:
        return np.bincount(self.labels, minlength=num_classes)


def _image_set(root: str, images: np.ndarray, labels: np.ndarray, paths: list[str], hashes: list[str],
               skipped: int) -> ImageSet:
    """An ImageSet over `images` without copying them (read-only in Ray's object store: the evaluation only reads
    them, indexing copies out what it trains on)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return ImageSet(root, torch.from_numpy(images), labels, paths, hashes, skipped)


def _load(root: Path | str, items: list[tuple[str, int, str]], size: int, channels: str,
          skipped: int = 0) -> ImageSet:
    """`root`: a local folder or a storage URI; a path that leaves it is refused (UnsafePathError). IO_THREADS
    remote files are read at a time."""
    def decode(item: tuple[str, int, str]) -> np.ndarray:
        return load_image(inside(root, item[0]), channels, size)

    images = np.stack(list(io_map(decode, items, is_uri(root))))
    return ImageSet(str(root), torch.from_numpy(images), np.array([lab for _, lab, _ in items]),
                    [p for p, _, _ in items], [h for _, _, h in items], skipped)


def manifest_set(manifest: Manifest, split: str, size: int) -> ImageSet:
    rows = manifest.split(split)
    if not rows:
        raise ValueError(f"the manifest has no {split} images; remake it with `mdaug split` (val/test fractions > 0)")
    return _load(manifest.root, [(r.path, r.label, r.sha256) for r in rows], size, manifest.channels)


def folder_set(root: Path, manifest: Manifest, size: int, what: str) -> ImageSet:
    """An ID_k folder labelled with the manifest's persons; a person the manifest lacks is an error."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"{what} folder {root} not found")
    report = validate(root, progress=False)
    unknown = sorted(set(report.labels) - set(manifest.labels))
    if unknown:
        raise ValueError(f"{what} folder {root} holds persons {unknown} that the real data set does not have")
    usable = report.usable
    items = [(r.path, manifest.labels[r.person], r.sha256) for r in usable]
    return _load(root, items, size, manifest.channels, skipped=len(report.excluded))


def synthetic_info(folder: Path) -> dict:
    """The generation's manifest.json (which generator, trained on which manifest)."""
    path = Path(folder) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: --synthetic must be a folder written by jobs/generate.py")
    info = json.loads(path.read_text())
    if info.get("format") != "mdaug-synthetic/1":
        raise ValueError(f"{path} is not an mdaug generation manifest (format {info.get('format')!r})")
    return info


def subset_seed(info: dict) -> int:
    """The k-subset seed of the generator behind a generated set (0 for sets made before replicates)."""
    return int(((info.get("provenance") or {}).get("dit") or {}).get("subset_seed", 0))


AddedKey = str | tuple[int, int] | None  # 'oracle', a generated set's (k, replicate), or no added set


@dataclass
class EvalData:
    """The real sets, the generated sets serving each k — one per generator replicate (a folder may serve several
    k) — and the oracle."""

    manifest: Manifest
    train: ImageSet
    val: ImageSet
    test: ImageSet
    synthetic: dict[tuple[int, int], ImageSet]  # (k, replicate) → the generated set its arms draw from
    synthetic_info: dict[tuple[int, int], dict]  # (k, replicate) → that set's manifest.json
    oracle: ImageSet | None

    @property
    def num_classes(self) -> int:
        return self.manifest.num_classes

    @property
    def person_of(self) -> dict[int, int]:
        """label → person id."""
        return {lab: pid for pid, lab in self.manifest.labels.items()}

    @property
    def subset_seeds(self) -> dict[int, list[int]]:
        """k → the k-subset seed of each replicate's generator (the real images that replicate's arms train on)."""
        out: dict[int, list[int]] = {}
        for (k, _), info in sorted(self.synthetic_info.items()):
            out.setdefault(k, []).append(subset_seed(info))
        return out

    @property
    def replicates(self) -> dict[int, int]:
        return {k: len(v) for k, v in self.subset_seeds.items()}

    def real_only(self) -> EvalData:
        """The real sets and every generated set's manifest, without a generated or oracle image."""
        return replace(self, synthetic={}, oracle=None)

    def with_added(self, key: AddedKey, added: ImageSet | None) -> EvalData:
        """This real-only EvalData given the one added set a run draws from: key 'oracle', a generated set's
        (k, replicate), or None (a run that adds nothing, or copies of its real images)."""
        if key == "oracle":
            return replace(self, oracle=added)
        return replace(self, synthetic={key: added}) if key is not None else self

    def added_sets(self) -> dict[AddedKey, ImageSet]:
        """Every added set by its key (a folder serving several k appears under each, as one object)."""
        return dict(self.synthetic) | ({"oracle": self.oracle} if self.oracle is not None else {})


def load_eval_data(data: str, synthetic: dict[int, list[str]], oracle: str | None, size: int | None) -> EvalData:
    """Load every set once; `synthetic` maps each k to its generator replicates' folders (budget.assign_generators)."""
    manifest = Manifest.load(data)
    if size is None:
        size = load_image(manifest.file(manifest.split("train")[0]), manifest.channels).shape[-1]
    names = dict.fromkeys(f for fs in synthetic.values() for f in fs)
    folders = {f: folder_set(Path(f), manifest, size, "synthetic") for f in names}
    infos = {f: synthetic_info(Path(f)) for f in names}
    keys = {(k, r): f for k, fs in synthetic.items() for r, f in enumerate(fs)}
    return EvalData(manifest, manifest_set(manifest, "train", size), manifest_set(manifest, "val", size),
                    manifest_set(manifest, "test", size), {key: folders[f] for key, f in keys.items()},
                    {key: infos[f] for key, f in keys.items()},
                    folder_set(Path(oracle), manifest, size, "oracle") if oracle else None)
