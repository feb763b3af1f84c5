"""The registered generator: the pipeline fixture (conftest) registers its swept DiT as models:/mdaug-generator@best;
generating from that name in an empty folder, or asking `mlflow models serve` for it, gives the bytes
`jobs/generate.py --dit` gives."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import requests
import torch
import yaml
from conftest import file_digests
from mlflow.entities import LoggedModelStatus
from mlflow.tracking import MlflowClient
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from mdaug.ray_mlflow.generator_model import ALIAS, MODEL_NAME, download_generator, registry_notices
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


def _without_mdaug(root: Path) -> Path:
    """A virtual environment that sees this one's packages but not mdaug (whose editable install is a .pth file,
    which a path added by another .pth file does not process); `uvicorn` on its PATH, as `mlflow models serve` runs
    it by name. Returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", root], check=True)
    site = next((root / "lib").glob("python*/site-packages"))
    (site / "packages.pth").write_text(next(p for p in sys.path if p.endswith("site-packages")) + "\n")
    uvicorn = root / "bin" / "uvicorn"
    uvicorn.write_text(f"#!{root / 'bin' / 'python'}\nfrom uvicorn.main import main\nmain()\n")
    uvicorn.chmod(0o755)
    return root / "bin" / "python"


def _closure(requirements: list[str]) -> set[str]:
    """The distributions installing `requirements` brings in (each one's non-extra requirements, recursively)."""
    names, todo = set(), [Requirement(r).name for r in requirements]
    while todo:
        name = canonicalize_name(todo.pop())
        if name in names:
            continue
        names.add(name)
        for line in metadata.requires(name) or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return names


@pytest.mark.slow
def test_the_logged_generator_serves_over_http_where_mdaug_is_not_installed(pipeline_run, tmp_path):
    """The registered version is an MLflow 3 logged model of the register-generator run; `mlflow models serve`
    from a Python that cannot import mdaug (the model brings its code) answers /invocations with the bytes
    `jobs/generate.py --dit` writes; every package that loading it imports comes with its pinned requirements."""
    t0 = time.perf_counter()
    uri = tracking_uri(pipeline_run)
    client = MlflowClient(uri)
    mv = client.get_model_version_by_alias(MODEL_NAME, ALIAS)
    assert mv.source.startswith("models:/m-")  # a logged model, linked both ways, in the run's experiment
    logged = client.get_logged_model(mv.source.removeprefix("models:/"))
    assert logged.name == "generator" and logged.source_run_id == mv.run_id and logged.status == "READY"
    assert {"name": MODEL_NAME, "version": int(mv.version)} in json.loads(logged.tags["mlflow.modelVersions"])
    assert logged.experiment_id == client.get_run(mv.run_id).info.experiment_id
    python = _without_mdaug(tmp_path / "venv")
    env = {**ENV, "PATH": f"{python.parent}:{os.environ['PATH']}", "MLFLOW_TRACKING_URI": uri}
    assert subprocess.run([python, "-c", "import mdaug"], cwd=tmp_path, env=env).returncode != 0

    # what loading the model imports, in that environment, against what its requirements install; a module's
    # distribution is the one whose files hold it (namespace packages such as google.* have several)
    probe = ("import json, sys, mlflow; from importlib import metadata; "
             f"m = mlflow.pyfunc.load_model('models:/{MODEL_NAME}@{ALIAS}'); import mdaug; "
             "owner = {str(d.locate_file(f)): d.metadata['Name'] for d in metadata.distributions() "
             "for f in d.files or [] if f.suffix == '.py'}; "
             "used = {owner[f] for v in list(sys.modules.values()) if (f := getattr(v, '__file__', None)) in owner}; "
             "print(json.dumps([mdaug.__file__, sorted(used)]))")
    run = subprocess.run([python, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    mdaug_file, imported = json.loads(run.stdout.strip().splitlines()[-1])
    assert "/code/mdaug/" in mdaug_file  # the model's own copy
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=logged.artifact_location, tracking_uri=uri,
                                                     dst_path=str(tmp_path / "model")))
    requirements = [r for r in (local / "requirements.txt").read_text().split() if r and not r.startswith("-")]
    assert not {canonicalize_name(d) for d in imported} - {"mdaug"} - _closure(requirements), requirements

    ref = tmp_path / "ref"
    _generate(ref, "--dit", pipeline_run / "train/dit_k2/dit.pt", "--sampling-config",
              pipeline_run / "sweep/best_sampling.yaml", "--tracking-dir", ref)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([python, "-m", "mlflow", "models", "serve", "-m", f"models:/{MODEL_NAME}@{ALIAS}",
                               "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=open(tmp_path / "serve.log", "w"),
                              start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(240):
            try:
                if requests.get(f"{base}/ping", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            time.sleep(0.5)
        body = {"dataframe_split": {"columns": ["person", "count", "seed"], "data": [[p, 2, 3] for p in range(1, 5)]}}
        reply = requests.post(f"{base}/invocations", json=body, timeout=300)
        assert reply.ok, reply.text[-2000:]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    rows = reply.json()["predictions"]
    assert [(r["person"], r["index"], r["seed"]) for r in rows] == [(p, i, 3) for p in range(1, 5) for i in (0, 1)]
    assert all(base64.decodebytes(r["image"].encode()) == (ref / f"set/ID_{r['person']}/gen_{r['index']:05d}.png")
               .read_bytes() for r in rows)
    print(f"served-generator test: {time.perf_counter() - t0:.1f} s beyond the pipeline fixture; requirements "
          f"{requirements}")


def test_registry_notices_stay_off_the_console_unless_verbose(tmp_path, capfd, monkeypatch):
    """MLflow's own "already exists … Created version" lines of a real registration are not shown (the pipeline
    prints the version it made), with MDAUG_VERBOSE=1 they are; other stderr output always shows."""
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.create_experiment("e", artifact_location=(tmp_path / "a").as_uri())
    model = client.create_logged_model(exp, "m", client.create_run(exp).info.run_id)
    client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", client.tracking_uri)
    for verbose in ("0", "1"):
        monkeypatch.setenv("MDAUG_VERBOSE", verbose)
        capfd.readouterr()
        with registry_notices():
            mlflow.register_model(model.model_uri, "g")
            print("a warning of its own", file=sys.stderr)
        err = capfd.readouterr().err
        assert "a warning of its own" in err
        assert ("Created version" in err) == (verbose == "1"), err


def test_tracking_at_leaves_mlflow_globals_and_environment_as_they_were(monkeypatch, tmp_path):
    """log_generator points MLflow's fluent API at the run's store; afterwards a client made with another store
    uses that store's registry, and MLFLOW_TRACKING_URI is the user's again (MLflow's setters write both)."""
    from mdaug.ray_mlflow.generator_model import tracking_at

    for env in ({}, {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'user.db'}"}):
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
        monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        with tracking_at(f"sqlite:///{tmp_path / 'run.db'}"):
            assert mlflow.get_registry_uri() == mlflow.get_tracking_uri() == f"sqlite:///{tmp_path / 'run.db'}"
        assert MlflowClient(f"sqlite:///{tmp_path / 'other.db'}")._registry_uri.endswith("other.db")
        assert os.environ.get("MLFLOW_TRACKING_URI") == env.get("MLFLOW_TRACKING_URI")
        assert "MLFLOW_REGISTRY_URI" not in os.environ
