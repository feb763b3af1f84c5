"""The registered generator: the pipeline fixture (conftest) registers its swept DiT as models:/mdaug-generator@best;
generating from that name in an empty folder gives the bytes `jobs/generate.py --dit` gives."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import torch
import yaml
from conftest import file_digests
from mlflow.tracking import MlflowClient

from mdaug.ray_mlflow.generator_model import ALIAS, MODEL_NAME, download_generator
from mdaug.ray_mlflow.tracking import tracking_uri

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "RAY_ADDRESS": ""}  # each job starts its own local Ray (as a user's would)


def _generate(cwd: Path, *args: str | Path) -> None:
    cwd.mkdir()
    run = subprocess.run([sys.executable, REPO / "jobs" / "generate.py", *args, "--per-person", "2", "--seed", "3",
                          "--workers", "1", "--out", "set"], cwd=cwd, capture_output=True, text=True, env=ENV)
    assert run.returncode == 0, run.stderr[-3000:]


@pytest.mark.slow
def test_registered_generator_generates_the_bytes_of_its_dit(pipeline_run, tmp_path, monkeypatch):
    t0 = time.perf_counter()
    uri, dit = tracking_uri(pipeline_run), pipeline_run / "train/dit_k2/dit.pt"
    best = pipeline_run / "sweep/best_sampling.yaml"
    client = MlflowClient(uri)
    mv = client.get_model_version_by_alias(MODEL_NAME, ALIAS)
    ckpt = torch.load(dit, map_location="cpu", weights_only=True)
    assert mv.tags["manifest_hash"] == ckpt["manifest_hash"] and mv.tags["manifest_uri"] == ckpt["manifest_uri"]
    assert mv.tags["dit_sha256"] == hashlib.sha256(dit.read_bytes()).hexdigest()
    assert yaml.safe_load(best.read_text()).items() <= json.loads(mv.tags["sampling"]).items()
    run = client.get_run(mv.run_id)
    assert run.info.run_name == "register-generator" and "mlflow.parentRunId" in run.data.tags

    _generate(tmp_path / "fresh", "--model", f"models:/{MODEL_NAME}@{ALIAS}", "--tracking-dir", pipeline_run)
    _generate(tmp_path / "ref", "--dit", dit, "--sampling-config", best, "--tracking-dir", tmp_path / "ref")
    fresh, ref = file_digests(tmp_path / "fresh/set"), file_digests(tmp_path / "ref/set")
    manifests = [json.loads((tmp_path / f / "set/manifest.json").read_text()) for f in ("fresh", "ref")]
    vae_files = [m.pop("vae_uri") for m in manifests]  # the only difference: the downloaded VA-VAE's path
    assert vae_files[0].startswith(str(tmp_path / "fresh/.set.model")) and manifests[0] == manifests[1]
    fresh.pop("manifest.json"), ref.pop("manifest.json")
    assert len(fresh) == 4 * 2 + 1 and fresh == ref  # 8 images and quality.json, byte for byte

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path / "fresh")
    model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@{ALIAS}")
    frame = model.predict(pd.DataFrame({"person": [1, 2, 3, 4], "count": [2] * 4, "seed": [3] * 4}))
    assert [(r.person, r.index, r.seed) for r in frame.itertuples()] == [(p, i, 3) for p in range(1, 5) for i in (0, 1)]
    assert all(r.image == (tmp_path / f"ref/set/ID_{r.person}/gen_{r.index:05d}.png").read_bytes()
               for r in frame.itertuples())
    with pytest.raises(ValueError, match="alias nope not found"):
        download_generator(f"models:/{MODEL_NAME}@nope", uri, tmp_path / "nope")
    with pytest.raises(ValueError, match="is not models:/NAME@ALIAS"):
        download_generator(MODEL_NAME, uri, tmp_path / "nope")
    print(f"registered-generator test: {time.perf_counter() - t0:.1f} s beyond the pipeline fixture")
