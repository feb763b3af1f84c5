"""Ray Data dataset of one manifest split: decode → convert mode → resize → [-1, 1] CHW float32 + label.

Built from the manifest rows (not a re-scan of the folder), so exactly the split's images are read."""

from __future__ import annotations

from functools import partial

import numpy as np
import ray

from mdaug.cpus import available_cpus
from mdaug.data.images import load_image
from mdaug.data.manifest import Manifest, Row


def _decode_batch(batch: dict[str, np.ndarray], size: int, channels: str, with_hash: bool) -> dict[str, np.ndarray]:
    images = np.stack([load_image(str(p), channels, size) for p in batch["path"]])
    out = {"image": images, "label": batch["label"].astype(np.int64), "index": batch["index"].astype(np.int64)}
    return out | {"sha256": batch["sha256"]} if with_hash else out


def manifest_dataset(manifest: Manifest, split: str, size: int, channels: str | None = None,
                     batch_size: int = 64, blocks: int | None = None, with_hash: bool = False) -> ray.data.Dataset:
    """Lazy Ray dataset of `split`: columns image (C, size, size) float32 in [-1, 1], label int64 and index
    (the row's position in the split, a canonical order), and the content sha256 with `with_hash`."""
    rows = manifest.split(split)
    if not rows:
        raise ValueError(f"split {split!r} of the manifest is empty; nothing to read")
    return rows_dataset(manifest, rows, size, channels, batch_size, blocks, with_hash)


def rows_dataset(manifest: Manifest, rows: list[Row], size: int, channels: str | None = None,
                 batch_size: int = 64, blocks: int | None = None, with_hash: bool = False) -> ray.data.Dataset:
    """The same for chosen rows of the manifest. `blocks` defaults to twice the CPUs Ray sees, so decoding
    runs in parallel without flooding a small machine with tiny tasks."""
    items = [{"path": manifest.file(r), "label": r.label, "sha256": r.sha256, "index": i} for i, r in enumerate(rows)]
    if blocks is None:
        cpus = int(ray.cluster_resources().get("CPU", available_cpus())) if ray.is_initialized() else 2
        blocks = max(1, min(len(items) // batch_size + 1, 2 * cpus))
    ds = ray.data.from_items(items, override_num_blocks=blocks)
    fn = partial(_decode_batch, size=size, channels=channels or manifest.channels, with_hash=with_hash)
    return ds.map_batches(fn, batch_size=batch_size, batch_format="numpy")


def shift_index(batch: dict[str, np.ndarray], by: int) -> dict[str, np.ndarray]:
    """Back to the row's position in its own split (the encoded rows were train + val in one list)."""
    return batch | {"index": batch["index"] - by}
