"""Ray Train with 2 real CPU workers: the three stages, MLflow content, a killed worker, bad input."""

from __future__ import annotations

import json
import os
import re
import signal
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import FAST
from mlflow.tracking import MlflowClient

from mdaug.config import load_config
from mdaug.data.manifest import Manifest
from mdaug.data.subsets import k_subset
from mdaug.flow import LatentStats
from mdaug.models.classifier import load_classifier
from mdaug.models.vavae import load_vae, vae_record
from mdaug.ray_mlflow.preflight import check_resources, load_verified_manifest
from mdaug.ray_mlflow.train_job import run_train_job
from mdaug.training.dit_module import load_dit


def _runs(out: Path) -> dict[str, object]:
    client = MlflowClient(f"sqlite:///{out.parent / 'mlflow.db'}")
    exp = client.get_experiment_by_name("mdaug")
    runs = client.search_runs([exp.experiment_id], order_by=["start_time ASC"])
    return {r.data.tags["stage"]: r for r in runs
            if r.data.tags.get("stage") in ("classifier", "vae", "latents", "dit")}


def test_stages_write_checkpoints_latents_provenance_and_mlflow_runs(trained, ray_local):
    out = trained
    client = MlflowClient(f"sqlite:///{out.parent / 'mlflow.db'}")
    runs = _runs(out)
    assert set(runs) == {"classifier", "vae", "latents", "dit"}
    for stage, run in runs.items():
        assert run.info.status == "FINISHED", stage
        tags = run.data.tags
        assert tags["git_commit"] and len(tags["config_hash"]) == 16 and len(tags["manifest_hash"]) == 64
        assert tags["mlflow.user"] and tags["mlflow.source.name"], tags  # the UI's "Created by" and "Source"
        assert run.data.params["stage"] == stage and run.data.params["vae.lr"] == "0.002"
        arts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"config.yaml", "manifest.json"} <= arts
    for stage in ("vae", "dit"):
        rid = runs[stage].info.run_id
        history = client.get_metric_history(rid, "val_loss")
        assert sorted(m.step for m in history) == [0, 1]
        assert client.get_metric_history(rid, "throughput_img_s")[0].value > 0
        assert client.get_metric_history(rid, "epoch_time_s")[0].value > 0
        steps = [m.step for m in client.get_metric_history(rid, "train_loss_step")]  # the step-level curve
        assert len(steps) >= 2 and steps == sorted(set(steps)) and steps[0] >= 1, steps  # ≥ 1 per epoch, in order
        key = {"vae": "reconstructions", "dit": "samples"}[stage]  # log_image: the UI's step slider
        images = [a.path for a in client.list_artifacts(rid, "images") if a.path.endswith(".png")]
        assert sorted(re.search(rf"images/{key}\+step\+(\d+)\+", p).group(1) for p in images) == ["0", "1"], images
    assert "train/d_loss" in runs["vae"].data.metrics  # the discriminator joined after disc_start
    vae = load_vae(out / "vae" / "vae.pt", "tiny")
    stats = json.loads((out / "latents" / "stats.json").read_text())
    assert stats["vae_identity"] == vae.identity() and stats["latent_shape"] == [8, 16, 16]
    # summed from the blocks' moments where the latents were: those of every train latent, and only those
    written = [torch.from_numpy(b["latent"]) for b in ray_local.data.read_parquet(str(out / "latents" / "train"))
               .iter_batches(batch_format="numpy")]
    direct = LatentStats.from_latents(written, vae.identity())
    assert stats["count"] == direct.count == len(Manifest.load(out.parent / "manifest.json").split("train")) * 16 * 16
    assert torch.allclose(torch.tensor(stats["mean"]), direct.mean) and torch.allclose(torch.tensor(stats["std"]),
                                                                                        direct.std)
    assert len(list((out / "latents" / "train").glob("*.parquet"))) >= 1
    model, dit_stats, ckpt = load_dit(out / "dit_k2" / "dit.pt")
    assert dit_stats.vae_identity == vae.identity() and model.config.num_classes == 4
    # the exported checkpoint carries what was measured at its own epoch (a run killed after it still exports it)
    for stage, exported in (("vae", vae_record(out / "vae" / "vae.pt")), ("dit", ckpt)):
        name = {"vae": "recon_identity_ratio", "dit": "identity_ratio"}[stage]
        logged = {m.value for m in client.get_metric_history(runs[stage].info.run_id, name)}
        assert exported["identity_metrics"][name] in logged, (stage, exported["identity_metrics"], logged)
    assert {a.path for a in client.list_artifacts(runs["dit"].info.run_id, "outputs")} >= {"outputs/dit.pt"}
    # MLflow's conventions: a model-training experiment; what each run trained on as datasets; system metrics
    exp = client.get_experiment_by_name("mdaug")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    inputs = {i.tags[0].value: json.loads(i.dataset.profile)["num_rows"]
              for i in client.get_run(runs["dit"].info.run_id).inputs.dataset_inputs}
    manifest = Manifest.load(out.parent / "manifest.json")
    assert inputs == {"training": 2 * manifest.num_classes, "validation": len(manifest.split("val"))}  # k = 2
    assert any(k.startswith("system/cpu_utilization") for k in runs["vae"].data.metrics)  # the driver's
    for rank in (0, 1):  # each Ray Train worker's, under its rank as MLflow's node id; the run still FINISHED
        assert f"system/rank{rank}/cpu_utilization_percentage" in runs["vae"].data.metrics, runs["vae"].data.metrics
    # provenance: the autoencoder saw only the other walkers (ID_5 …), the DiT the first 2 train images per person
    task = Manifest.load(out.parent / "manifest.json")
    prov = ckpt["provenance"]
    assert prov["vae"]["persons"] == [5, 6, 7, 8] and not set(prov["vae"]["images"]) & {r.sha256 for r in task.rows}
    assert sorted(prov["dit"]["images"]) == sorted(r.sha256 for r in k_subset(task, 2))
    assert runs["dit"].data.tags["train_per_person"] == "2" and 0 <= runs["classifier"].data.metrics["val_accuracy"]
    # the classifier stage trains the independent judge beside the identity classifier: another architecture and seed
    judge, judge_info = load_classifier(out / "classifier" / "judge.pt")
    assert judge.config.arch == "cnn2d" and judge_info["seed"] == 1 and 0 <= judge_info["val_accuracy"] <= 1
    assert runs["classifier"].data.metrics["judge_val_accuracy"] == judge_info["val_accuracy"]
    assert {a.path for a in client.list_artifacts(runs["classifier"].info.run_id, "outputs")} == {
        "outputs/classifier.pt", "outputs/judge.pt"}
    # Ray's Lightning report callback leaves a folder per run and rank in the temp dir; the workers remove it
    since = (out.parent / "manifest.json").stat().st_mtime  # the pipeline's training: after its split, before its
    until = max(p.stat().st_mtime for p in out.glob("dit_k*/dit.pt")) + 1  # last DiT (later tests kill runs)
    left = [p for p in Path(tempfile.gettempdir()).glob("lightning_checkpoints-*")
            if since <= p.stat().st_mtime <= until]
    assert not left, left


@pytest.mark.slow
def test_killed_worker_resumes_from_checkpoint(trained, ray_local, tmp_path):
    """Kill one training worker (by pid, from Ray's state API) mid-epoch after the first checkpoint: the run finishes,
    every epoch is completed (the interrupted one possibly twice), and the loss continues where it was."""
    from ray.util.state import list_actors

    out = tmp_path / "fault"
    out.mkdir()
    (out / "latents").symlink_to(trained / "latents")  # DiT stage on the latents made above
    (out / "classifier").symlink_to(trained / "classifier")
    epochs = 4
    cfg = replace(load_config("tiny", [*FAST, f"dit.epochs={epochs}", "dit.train_per_person=2", "workers=2"], "train"),
                  stage="dit", data=str(trained.parent / "manifest.json"), out=str(out))
    errors: list[BaseException] = []
    thread = threading.Thread(target=lambda: _capture(errors, run_train_job, cfg))
    thread.start()
    deadline = time.time() + 180
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    epoch_time = None
    while epoch_time is None and time.time() < deadline and thread.is_alive():
        time.sleep(0.05)
        runs = client.search_runs([e.experiment_id for e in client.search_experiments()]) if (
            out / "mlflow.db").exists() else []
        history = client.get_metric_history(runs[0].info.run_id, "epoch_time_s") if runs else []
        epoch_time = history[0].value if history else None
    assert epoch_time is not None, "no epoch finished"
    time.sleep(epoch_time / 2)  # a failure lands mid-epoch, not on the checkpoint boundary
    here = ray_local.get_runtime_context().gcs_address  # this session's Ray, not the last one started on the machine
    workers = list_actors(address=here, filters=[("class_name", "=", "RayTrainWorker"), ("state", "=", "ALIVE")])
    assert len(workers) == 2, workers
    os.kill(workers[1].pid, signal.SIGKILL)
    killed_at = time.time()
    thread.join(timeout=300)
    assert not thread.is_alive() and not errors, errors
    all_workers = list_actors(address=here, filters=[("class_name", "=", "RayTrainWorker")], limit=1000)
    assert len({a.pid for a in all_workers}) >= 4, "the worker group was not restarted"
    run = client.search_runs([client.get_experiment_by_name("mdaug").experiment_id])[0]
    assert run.info.status == "FINISHED"
    history = sorted(client.get_metric_history(run.info.run_id, "train_loss"), key=lambda m: (m.step, m.timestamp))
    steps = [m.step for m in history]
    print(f"fault test: killed pid {workers[1].pid} at {killed_at:.1f}; epochs logged {steps}; "
          f"losses {[round(m.value, 3) for m in history]}")
    # at least once, at most twice: the epoch the kill interrupted is redone from the last committed checkpoint
    # (rank 0 may have logged it before the killed worker's report committed it); no other epoch repeats
    assert sorted(set(steps)) == list(range(epochs)), "an epoch was lost"
    assert len(steps) - len(set(steps)) <= 1, f"more than the interrupted epoch was redone: {steps}"
    last = {m.step: m.value for m in history}  # per epoch, the attempt that counted
    # the optimizer-step counter continues across the restart: never back to the first epoch's count
    counts = {m.step: m.value for m in sorted(client.get_metric_history(run.info.run_id, "global_step"),
                                              key=lambda m: (m.step, m.timestamp))}
    per_epoch = counts[0]
    assert [counts[e] for e in range(epochs)] == [per_epoch * (e + 1) for e in range(epochs)], counts
    losses = [last[e] for e in range(epochs)]
    assert sum(losses[2:]) / len(losses[2:]) < losses[0], "the loss jumped back to its starting level"


def _capture(errors: list, fn, *args) -> None:
    try:
        fn(*args)
    except BaseException as err:  # noqa: BLE001 - reported by the test
        errors.append(err)


def test_bad_input_is_refused_before_training(manifest64, tmp_path, ray_local):
    with pytest.raises(FileNotFoundError, match="mdaug split"):
        load_verified_manifest(str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not an mdaug manifest"):
        load_verified_manifest(str(tmp_path / "bad.json"))
    m = json.loads(manifest64.read_text())
    m["rows"][0]["sha256"] = "0" * 64
    (tmp_path / "changed.json").write_text(json.dumps(m))
    with pytest.raises(ValueError, match=r"1 files changed \['ID_"):
        load_verified_manifest(str(tmp_path / "changed.json"))
    with pytest.raises(ValueError, match="unknown configuration key 'vae.learning_rate'; valid keys under vae: .*lr"):
        load_config("tiny", ["vae.learning_rate=1"], "train")
    with pytest.raises(ValueError, match="unknown configuration key 'colour'; valid keys: classifier, .*workers"):
        load_config("tiny", ["colour=red"], "train")
    with pytest.raises(ValueError, match="vae.epochs: Value 'many' of type 'str' could not be converted to Integer"):
        load_config("tiny", ["vae.epochs=many"], "train")
    cfg = replace(load_config("tiny", ["vae.lr=3e-4"], "train"), stage="vae", data=str(manifest64),
                  out=str(tmp_path / "o"))
    assert cfg.vae.lr == 3e-4 and cfg.vae.epochs == 15
    with pytest.raises(ValueError, match=r"^training \(800 workers × 1 CPU\) needs 800 CPU; the cluster has \d+ "):
        check_resources(replace(cfg, workers=800))
    with pytest.raises(ValueError, match=r"needs \d+ GPU; the cluster has 0 GPU\. Lower workers or cpus_per_worker / "
                                         "gpus_per_worker"):
        check_resources(replace(cfg, gpus_per_worker=1.0))
    with pytest.raises(ValueError, match="fewer than one batch of 64"):
        run_train_job(replace(cfg, vae=replace(cfg.vae, batch_size=64)))
    with pytest.raises(ValueError, match="no earlier vae run"):
        run_train_job(replace(cfg, resume=True, vae=replace(cfg.vae, batch_size=4)))


def test_checkpoint_of_another_architecture_is_refused(trained, tmp_path):
    with pytest.raises(ValueError, match="trained as VAE architecture 'tiny', not 'small'"):
        load_vae(trained / "vae" / "vae.pt", "small")
    torch.save({"format": "other"}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not an mdaug VAE checkpoint"):
        load_vae(tmp_path / "x.pt")


def test_an_epoch_line_says_where_training_is_and_when_it_ends():
    from mdaug.ray_mlflow.tracking import epoch_line

    metrics = {"train_loss": 0.81234, "val_loss": 0.9, "identity_ratio": 0.716, "throughput_img_s": 409.6}
    assert (epoch_line("dit k=5 replicate 0", 2, 40, metrics, [3.0, 4.0, 3.5])
            == "[dit k=5 replicate 0] epoch 3/40 · train loss 0.8123 · val loss 0.9000 · identity 0.72 · 410 img/s"
               " · ETA 2m10s")
    last = epoch_line("vae", 7, 8, {"train_loss": 1.0}, [2.0])
    assert last == "[vae] epoch 8/8 · train loss 1.0000 · 0 img/s · ETA 0s"
