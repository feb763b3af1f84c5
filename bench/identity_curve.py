"""Identity vs training: the VA-VAE's reconstruction identity ratio and the DiT's identity ratio per epoch,
against optimizer steps and wall time, read back from a pipeline's MLflow store (no training here).

    .venv/bin/python bench/identity_curve.py --out runs/pipeline        # after jobs/pipeline.py

Prints one table per stage and draws identity_curve.png beside the pipeline's report: where a target
(reconstruction ≥ 0.9, generator ≥ 0.7) is not reached, the curve shows how far more steps would go."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

CURVES = {"vae": ("recon_identity_ratio", 0.9), "dit": ("identity_ratio", 0.7)}


def history(client: MlflowClient, run_id: str, key: str) -> list[float]:
    return [m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]


def curves(client: MlflowClient) -> dict[str, dict[str, list[float]]]:
    """stage → {steps, seconds, ratio}, from the latest FINISHED run of each training stage."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    out = {}
    for stage, (key, _) in CURVES.items():
        runs = client.search_runs(experiments, f"tags.stage = '{stage}' and attributes.status = 'FINISHED'",
                                  order_by=["attributes.start_time DESC"], max_results=1)
        if not runs:
            continue
        rid = runs[0].info.run_id
        seconds = history(client, rid, "epoch_time_s")
        per_step = 2 if stage == "vae" else 1  # Lightning counts the VA-VAE's generator and discriminator steps
        out[stage] = {"steps": [s / per_step for s in history(client, rid, "global_step")],
                      "ratio": history(client, rid, key),
                      "seconds": [sum(seconds[: i + 1]) for i in range(len(seconds))]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/pipeline"), help="the pipeline's output folder")
    a = ap.parse_args()
    uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{a.out.resolve() / 'mlflow.db'}"
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise SystemExit(f"no MLflow store at {uri}: run jobs/pipeline.py --out {a.out} first")
    found = curves(MlflowClient(uri))
    if not found:
        raise SystemExit(f"no finished vae or dit training run in {uri}")
    fig, axes = plt.subplots(1, len(found), figsize=(5 * len(found), 3.5), squeeze=False)
    for ax, (stage, c) in zip(axes[0], found.items(), strict=True):
        key, target = CURVES[stage]
        print(f"{stage}: {key} per epoch (target ≥ {target})")
        for steps, secs, ratio in zip(c["steps"], c["seconds"], c["ratio"], strict=False):
            print(f"  after {steps:6.0f} optimizer steps, {secs:6.0f} s: {ratio:.2f}")
        ax.plot(c["steps"][: len(c["ratio"])], c["ratio"], "o-")
        ax.axhline(target, ls="--", c="gray", label=f"target {target}")
        ax.set(xlabel="optimizer steps", ylabel=key, title=stage, ylim=(0, 1))
        ax.legend()
    fig.tight_layout()
    fig.savefig(a.out / "identity_curve.png", dpi=100)
    print(f"figure: {a.out / 'identity_curve.png'}")


if __name__ == "__main__":
    main()
