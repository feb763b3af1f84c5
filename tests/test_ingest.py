"""Ray Data reads exactly a manifest split, decoded and scaled like the library loader."""

from __future__ import annotations

import numpy as np
import torch

from mdaug.data.images import load_image
from mdaug.data.ray_ingest import manifest_dataset
from mdaug.data.split import make_split


def test_manifest_split_as_torch_batches(small_sim, ray_local):
    m, _ = make_split(small_sim, progress=False)
    ds = manifest_dataset(m, "val", size=24, batch_size=16)
    labels, n = [], 0
    for batch in ds.iter_torch_batches(batch_size=20):
        img = batch["image"]
        assert isinstance(img, torch.Tensor) and img.dtype == torch.float32
        assert img.shape[1:] == (1, 24, 24)
        assert img.min() >= -1 and img.max() <= 1
        labels += batch["label"].tolist()
        n += len(img)
    assert n == len(m.split("val"))
    assert sorted(labels) == sorted(r.label for r in m.split("val"))
    first = m.split("val")[0]
    rows = ds.take_all()
    match = [r for r in rows if r["label"] == first.label]
    expected = load_image(small_sim / first.path, "gray", 24)
    assert any(np.allclose(r["image"], expected) for r in match)


def test_rgb_conversion_on_request(small_sim, ray_local):
    m, _ = make_split(small_sim, progress=False)
    row = manifest_dataset(m, "test", size=32, channels="rgb").take(1)[0]
    assert row["image"].shape == (3, 32, 32)
    assert np.array_equal(row["image"][0], row["image"][2])
