"""Shared fixtures. Ray runs without auth tokens in tests (RAY_AUTH_MODE=disabled: a local ray.init writes
~/.ray/auth_token, after which `ray status` and `ray job submit` need the same mode)."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

os.environ["RAY_AUTH_MODE"] = "disabled"
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
# system metrics every second (not every 5 s): a test's fits last seconds; Ray's workers inherit it
os.environ.setdefault("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "1")


def _torch_threads() -> None:
    """The in-process tests' torch threads: no more than the CPUs this process may use (a CI container with a
    2-CPU quota on a many-core host would otherwise run one thread per host core, throttled several times slower);
    OMP_NUM_THREADS (bench/learning_margins.py) still sets fewer."""
    import torch

    from mdaug.cpus import available_cpus

    torch.set_num_threads(min(torch.get_num_threads(), available_cpus()))


_torch_threads()


@pytest.fixture(scope="session")
def seed() -> int:
    """The seed a learning test starts from: MDAUG_TEST_SEED, else 0. bench/learning_margins.py reruns the learning
    tests over seeds and thread counts and tabulates what each printed with `margin`."""
    return int(os.environ.get("MDAUG_TEST_SEED", "0"))


def file_digests(root: Path) -> dict[str, str]:
    """sha256 of every file under root, by its path relative to root: two outputs compared byte for byte."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def margin(test: str, quantity: str, value: float, bound: str) -> None:
    """Print a learning test's measured quantity next to the bound it asserts (collected by learning_margins.py)."""
    print(f"\nMARGIN {test} | {quantity} | {value:.4g} | {bound}")


@pytest.fixture(scope="session")
def small_sim(tmp_path_factory) -> Path:
    """31 persons × 8 images at 32² — a quick data set for data-layer tests."""
    from mdaug.sim import SimConfig, simulate_dataset

    root = tmp_path_factory.mktemp("sim") / "data"
    simulate_dataset(root, SimConfig(per_person=8, size=32), progress=False)
    return root


@pytest.fixture(scope="session")
def alike(tmp_path_factory) -> Path:
    """8 persons × 12 recordings at 64², 40–45 dB SNR, saved as jet JPGs: smooth, alike, distinct (read-only:
    a test that changes them copies them first)."""
    from mdaug.sim import SimConfig, VariationConfig, simulate_dataset

    root = tmp_path_factory.mktemp("alike") / "data"
    simulate_dataset(root, SimConfig(persons=8, per_person=12, size=64, colormap="jet", image_format="jpg",
                                     variation=VariationConfig(snr_db=(40.0, 45.0))), progress=False)
    return root


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray with more CPU slots than cores, so Data tasks never starve (2 workers × 1 CPU on 2 cores
    would starve them and hang)."""
    import ray

    ray.init(address="local", num_cpus=4, include_dashboard=True, dashboard_host="127.0.0.1", log_to_driver=False,
             ignore_reinit_error=True)
    yield ray
    ray.shutdown()


FAST = ["cpus_per_worker=0.5", "classifier.steps=20", "classifier.judge_steps=20", "vae.epochs=2",
        "vae.steps_per_epoch=0", "vae.batch_size=8", "vae.disc_start=1", "vae.identity_steps=10", "dit.epochs=2",
        "dit.steps_per_epoch=0", "dit.batch_size=4", "dit.preview_steps=4", "dit.identity_per_person=1"]


@pytest.fixture(scope="session")
def manifest64(tmp_path_factory) -> Path:
    """4 simulated persons × 12 images at 64² (configs/tiny.yaml's size), split 50/25/25."""
    from mdaug.data.split import make_split
    from mdaug.sim import SimConfig, simulate_dataset

    root = tmp_path_factory.mktemp("tiny") / "data"
    simulate_dataset(root, SimConfig(persons=4, per_person=12, size=64), progress=False)
    m, _ = make_split(root, val=0.25, test=0.25, progress=False)
    path = root.parent / "manifest.json"
    m.save(path)
    return path


def small_pipeline(out: Path):
    """4 simulated persons × 12 recordings at 64² (and 4 other walkers × 8 for the autoencoder): configs/tiny.yaml,
    FAST training on 2 DDP workers, two DiT replicates for k = 2 (tiny's generator_replicates), a 2-trial sweep, an
    evaluation of 2 replicates × 2 seeds (primary pair with both classifiers, tiny's controls with one)."""
    from mdaug.config import load_config

    return load_config("tiny", [f"out={out}", "sim.persons=4", "sim.per_person=12", "aux.persons=4",
                                "aux.first_person=4", "aux.per_person=8", *SMALL])


# small_pipeline's settings beyond its data (tests/test_own_data_pipeline.py runs them on its own data)
SMALL = ["workers=2", "generator_ks=[2]", "sweep.trials=2", "sweep.per_person=2", "sweep.steps=[4,16]",
         "sweep.cfg_scale=[1,12]", "evaluation.ks=[2]", "evaluation.control_ks=[2]", "evaluation.seeds=2",
         "evaluation.steps=10", "evaluation.probe_seeds=1", "evaluation.converge=false",
         *(f"train.{o}" for o in FAST)]


# Secrets in the environment of pipeline_run's driver, which a local run ignores (local storage, a sqlite MLflow
# store, Ray without auth); test_secrets.py asserts none of them reaches the output folder.
CANARIES = {"MLFLOW_TRACKING_PASSWORD": "canary-mlflow-5b1e0c7d", "AWS_SECRET_ACCESS_KEY": "canary-aws-9f3a61c2",
            "RAY_AUTH_TOKEN": "canary-ray-token-d40e27a8"}


@pytest.fixture(scope="session")
def pipeline_run(ray_local, tmp_path_factory) -> Path:
    """The whole pipeline, once per session (MLflow in OUT/mlflow.db), with CANARIES in its environment; its
    printed lines in OUT/first_run.log, its outputs (stages.json with each stage's time included) as this run left
    them in `first_outputs(OUT)` (later tests rerun stages in OUT: a rerun evaluation is a second look)."""
    from mdaug.pipeline import run_pipeline

    out = tmp_path_factory.mktemp("pipeline")
    lines: list[str] = []
    saved = {name: os.environ.get(name) for name in CANARIES}
    os.environ.update(CANARIES)
    try:
        run_pipeline(small_pipeline(out), echo=lines.append)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    (out / "first_run.log").write_text("\n".join(lines))
    shutil.copytree(out, first_outputs(out), ignore=shutil.ignore_patterns("mlartifacts", "mlflow.db"))
    return out


def first_outputs(pipeline_out: Path) -> Path:
    """A copy of pipeline_run's outputs as its own run left them (no MLflow store)."""
    return pipeline_out.parent / f"{pipeline_out.name}-first"


@pytest.fixture(scope="session")
def trained(pipeline_run) -> Path:
    """The pipeline's training stages (Ray, 2 workers, 2 epochs each): OUT/train/{classifier,vae,latents,dit_k2}."""
    return pipeline_run / "train"
