"""DDP scaling: VA-VAE training img/s with 1 vs 2 Ray Train workers on the same data, same run.

Throughput is the rank-0 figure of the last epoch (images of all workers / epoch time), read back from MLflow."""

from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from mlflow.tracking import MlflowClient  # noqa: E402

from mdaug.config import load_config  # noqa: E402
from mdaug.cpus import available_cpus  # noqa: E402
from mdaug.data.split import make_split  # noqa: E402
from mdaug.ray_mlflow.train_job import run_train_job  # noqa: E402
from mdaug.sim import SimConfig, simulate_dataset  # noqa: E402


def throughput(out: Path) -> float:
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    run = client.search_runs([client.get_experiment_by_name("mdaug").experiment_id])[0]
    history = sorted(client.get_metric_history(run.info.run_id, "throughput_img_s"), key=lambda m: m.step)
    return history[-1].value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--per-person", type=int, default=20)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        simulate_dataset(root, SimConfig(per_person=a.per_person, size=64), progress=False)
        m, _ = make_split(root, progress=False)
        m.save(Path(tmp) / "manifest.json")
        rates = {}
        for workers in (1, 2):
            out = Path(tmp) / f"w{workers}"
            cfg = load_config("tiny", [f"vae.epochs={a.epochs}", f"workers={workers}",
                                       f"cpus_per_worker={1.0 / workers}"], "train")
            cfg = replace(cfg, stage="vae", data=str(Path(tmp) / "manifest.json"), out=str(out))
            run_train_job(cfg)
            rates[workers] = throughput(out)
    print(f"VA-VAE tiny, {len(m.split('train'))} train images at 64², {available_cpus()} CPUs:")
    print(f"  1 worker: {rates[1]:.1f} img/s   2 workers: {rates[2]:.1f} img/s   ratio ×{rates[2] / rates[1]:.2f}")


if __name__ == "__main__":
    main()
