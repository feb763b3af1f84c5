"""Generation job and sampling sweep on the tiny DiT trained by the pipeline fixture (conftest)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
import torch
import yaml
from conftest import file_digests
from mlflow.tracking import MlflowClient

from mdaug.data.split import make_split
from mdaug.data.validate import validate
from mdaug.flow.sampler import SamplingConfig
from mdaug.generation import Generator, check_job
from mdaug.ray_mlflow.generate_job import run_generate_job

REPO = Path(__file__).resolve().parents[1]
QUICK = SamplingConfig(steps=6, cfg_scale=3.0, cfg_interval_start=0.1)


def test_generated_folder_reads_like_input_data(trained, tmp_path, ray_local):
    dit = str(trained / "dit_k2" / "dit.pt")
    out = run_generate_job(dit, tmp_path / "syn", 3, QUICK, workers=2, tracking_dir=trained.parent)
    report = validate(out, progress=False)
    assert report.labels == {1: 0, 2: 1, 3: 2, 4: 3} and len(report.usable) == 12
    assert {p.kind for p in report.problems} == set()
    m, _ = make_split(out, val=1 / 3, test=1 / 3, progress=False)  # 3 per person: one in each split
    assert len(m.rows) == 12 and {r.split for r in m.rows} == {"train", "val", "test"}
    manifest = json.loads((out / "manifest.json").read_text())
    gen = Generator.load(dit)
    assert manifest["dit_sha256"] == gen.info["dit_sha256"] and manifest["vae_identity"] == gen.stats.vae_identity
    assert manifest["training_manifest_hash"] and manifest["sampling"]["steps"] == 6
    assert Path(manifest["training_manifest"]).is_file()
    seeds = [i["seed"] for i in manifest["images"]]
    assert len(set(seeds)) == 12
    # rerunning the same generation is a no-op; a different one into the same folder is refused
    assert run_generate_job(dit, out, 3, QUICK, workers=1, tracking_dir=trained.parent) == out
    with pytest.raises(FileExistsError, match="holds something else"):
        run_generate_job(dit, out, 4, QUICK, workers=1, tracking_dir=trained.parent)
    client = MlflowClient(f"sqlite:///{trained.parent / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("mdaug").experiment_id], "tags.stage = 'generate'")
    assert runs and runs[0].info.status == "FINISHED"
    assert "syn_grid.png" in {a.path for a in client.list_artifacts(runs[0].info.run_id)}


def test_bad_requests_are_clear_errors(trained, tmp_path):
    gen = Generator.load(str(trained / "dit_k2" / "dit.pt"))
    with pytest.raises(ValueError, match=r"unknown person ids \[9\]"):
        check_job(gen, 2, [1, 9])
    with pytest.raises(ValueError, match="must be ≥ 1"):
        check_job(gen, 0, None)
    ckpt = torch.load(trained / "dit_k2" / "dit.pt", weights_only=True)
    del ckpt["latent_stats"]
    torch.save(ckpt, tmp_path / "nostats.pt")
    with pytest.raises(ValueError, match="no latent statistics"):
        Generator.load(tmp_path / "nostats.pt")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    run = subprocess.run([sys.executable, REPO / "jobs" / "generate.py", "--dit", trained / "dit_k2" / "dit.pt",
                          "--per-person", "1", "--out", tmp_path / "busy", "steps=2"],
                         capture_output=True, text=True, env={**os.environ, "RAY_ADDRESS": ""})
    assert run.returncode == 2 and "holds something else" in run.stderr


@pytest.mark.slow
def test_killed_generation_leaves_no_folder_and_resumes_identically(trained, tmp_path, ray_local):
    dit = trained / "dit_k2" / "dit.pt"
    args = [sys.executable, REPO / "jobs" / "generate.py", "--dit", dit, "--per-person", "12", "--workers", "1",
            "--batch", "8", "--out", tmp_path / "a", "--tracking-dir", tmp_path, "steps=20"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "RAY_ADDRESS": ""}, start_new_session=True)
    partial = tmp_path / ".a.partial"
    deadline = time.time() + 240
    while len(list(partial.rglob("*.png"))) < 8 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    written = len(list(partial.rglob("*.png")))
    assert not (tmp_path / "a").exists() and 0 < written < 48, written
    sampling = SamplingConfig(steps=20, cfg_scale=4.0, cfg_interval_start=0.1, timestep_shift=0.3)
    run_generate_job(str(dit), tmp_path / "a", 12, sampling, workers=2, tracking_dir=tmp_path, batch=8)
    run_generate_job(str(dit), tmp_path / "b", 12, sampling, workers=2, tracking_dir=tmp_path, batch=8)
    a, b = file_digests(tmp_path / "a"), file_digests(tmp_path / "b")
    assert len(a) == 50 and a == b  # 48 images, manifest.json and quality.json, byte for byte
    # a generator actor killed mid-run (a lost spot node) is restarted, its chunk made again: the same bytes
    def actor_pids() -> set[int]:  # Ray titles an actor's process ray::GeneratorActor[.run]
        return {p.pid for p in psutil.process_iter(["cmdline"])
                if "GeneratorActor" in " ".join(p.info["cmdline"] or [])}

    earlier = actor_pids()  # the finished jobs' actors, perhaps still exiting: not this job's
    with ThreadPoolExecutor(1) as pool:
        job = pool.submit(run_generate_job, str(dit), tmp_path / "c", 12, sampling, workers=2, tracking_dir=tmp_path,
                          batch=8)
        killed = None
        while killed is None and not job.done():
            if len(list((tmp_path / ".c.partial").rglob("*.png"))) >= 8:
                for pid in actor_pids() - earlier:
                    try:
                        os.kill(pid, signal.SIGKILL)
                        killed = pid
                        break
                    except ProcessLookupError:
                        pass
            time.sleep(0.05)
        job.result()
    assert killed is not None, "the generation finished before an actor could be killed"
    assert file_digests(tmp_path / "c") == b


def test_pipeline_sweep_logs_trials_and_its_best_settings_drive_generation(trained, tmp_path, ray_local):
    """The pipeline's 2-trial sweep (conftest): Tune trials as MLflow child runs, a usable best_sampling.yaml."""
    sweep = trained.parent / "sweep"
    loaded = yaml.safe_load((sweep / "best_sampling.yaml").read_text())
    assert 4 <= loaded["steps"] <= 16 and 1 <= loaded["cfg_scale"] <= 12
    SamplingConfig(**loaded)  # accepted as generator settings
    rows = (sweep / "trials.csv").read_text().strip().splitlines()
    assert len(rows) == 3 and rows[0].startswith("cfg_scale,steps")
    client = MlflowClient(f"sqlite:///{trained.parent / 'mlflow.db'}")
    exp = client.get_experiment_by_name("mdaug").experiment_id
    parent = client.search_runs([exp], "tags.stage = 'sweep'")[0]
    children = client.search_runs([exp], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert len(children) == 2 and all({"frechet", "identity_ratio", "memorisation_feature_ratio"} <= set(
        c.data.metrics) for c in children)
    assert all(c.data.tags["device"] == "cpu" and json.loads(c.data.tags["ray_resources"]) == {"CPU": 1.0}
               for c in children)  # the configuration's trial resources, as Ray gave them
    assert {"trials.csv", "trials.md", "trials.png", "best_sampling.yaml"} <= {
        a.path for a in client.list_artifacts(parent.info.run_id)}
    synthetic = json.loads((trained.parent / "synthetic" / "k2" / "manifest.json").read_text())
    assert synthetic["sampling"]["steps"] == loaded["steps"]  # the pipeline generated with the best settings
    assert len(synthetic["provenance"]["dit"]["images"]) == 4 * 2  # the DiT for k = 2 saw 2 per person
    quality = json.loads((trained.parent / "synthetic" / "k2" / "quality.json").read_text())
    assert 0 <= quality["identity_ratio"] and quality["memorisation"]["generated"] == len(synthetic["images"])
    assert 0 <= quality["independent_identity_ratio"] and quality["summary"].startswith(  # by the judge.pt beside it
        "identity ratio ") and "by an independent judge (2-D CNN" in quality["summary"]
    assert quality["memorisation"]["train"] == 8  # measured against what that DiT saw
    out = subprocess.run([sys.executable, REPO / "jobs" / "generate.py", "--dit", trained / "dit_k2" / "dit.pt",
                          "--per-person", "1", "--out", tmp_path / "g", "--sampling-config",
                          sweep / "best_sampling.yaml", "--workers", "1", "--tracking-dir", tmp_path],
                         capture_output=True, text=True, env={**os.environ, "RAY_ADDRESS": ""})
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads((tmp_path / "g" / "manifest.json").read_text())["sampling"]["steps"] == loaded["steps"]
