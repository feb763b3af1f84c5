"""A manifest's images where every node reads them: with a job storage (s3://…, NFS), the rows' files are copied
once under storage/data/<manifest hash>/ beside a manifest whose root is there. The manifest is written last, so
a copy that was interrupted is redone, and one that finished is found again by any driver. Every source and
target is checked to stay under its root (symbolic links resolved) before the first byte is copied."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from tqdm import tqdm

from mdaug.data.manifest import Manifest, ManifestError
from mdaug.data.paths import UnsafePathError, inside
from mdaug.storage import absolute, exists, io_map, is_uri, join, read_bytes, write_bytes

if TYPE_CHECKING:
    from mdaug.ray_mlflow.config import TrainJobConfig


def staged_location(manifest: Manifest, storage: str) -> str:
    """Where the manifest (and, for a local root, its images) goes in `storage`."""
    return join(storage, "data", manifest.content_hash()[:16], "manifest.json")


def publish_manifest(manifest: Manifest, location: str, storage: str) -> tuple[Manifest, str]:
    """(the manifest as workers read it, its location). Without storage both stay where they are."""
    if not storage:
        return manifest, absolute(location)
    manifest.check()  # again: its rows may have changed since it was built
    target = staged_location(manifest, storage)
    if exists(target):
        return Manifest.load(target), target
    root = manifest.root
    if not is_uri(root):
        root = target.rsplit("/", 1)[0]
        pairs = [(manifest.file(row), _target(root, row.path)) for row in manifest.rows]

        def copy(pair: tuple[str, str]) -> None:
            write_bytes(pair[1], read_bytes(pair[0]))

        list(tqdm(io_map(copy, pairs, remote=True), total=len(pairs), unit="img", desc=f"copy images to {root}",
                  disable=len(manifest.rows) < 500))
    staged = replace(manifest, root=root)
    staged.save(target)
    return staged, target


def _target(root: str, rel: str) -> str:
    """Where a row's copy goes: under the staging folder, or ManifestError."""
    try:
        return inside(root, rel)
    except UnsafePathError as err:
        raise ManifestError(f"not staging {rel!r} to {root}: {err}; nothing was copied") from None


def manifest_location(cfg: TrainJobConfig, manifest: Manifest) -> str:
    """Where the job's (published) manifest is."""
    return staged_location(manifest, cfg.storage) if cfg.storage else absolute(cfg.data)

