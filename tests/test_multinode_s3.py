"""The pipeline on a 3-node Ray cluster (a head with no CPUs, two worker nodes that cannot see the driver's
folder) with its storage on a real S3 server (moto) and a real `mlflow server` whose artifacts go to that S3;
then a second driver, in an empty folder, generates from the MLflow DiT run alone, and from the registered model
models:/mdaug-generator@best alone, and gets the same images both times."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient
from ray_cluster import ray_cluster
from s3_server import free_port, s3_keys, s3_server, wait_for

pytestmark = pytest.mark.soak  # ≈ 7 min on a 2-core machine, 12+ on slower ones: outside .ci/run (pytest -m soak)
REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BUCKET = "mdaug-test"


@contextmanager
def mlflow_server(env: dict[str, str], folder: Path):
    """`mlflow server` with its runs in sqlite and its artifacts in S3 (served through the server)."""
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "mlflow-server.log", "w") as log:
        proc = subprocess.Popen([BIN / "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers",
                                 "1", "--backend-store-uri", f"sqlite:///{folder / 'server.db'}",
                                 "--artifacts-destination", f"s3://{BUCKET}/mlartifacts"],
                                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{url}/health", proc, "mlflow server")
        yield url
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()


SEES = """import os, sys, ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy as On
ray.init(address=sys.argv[1], logging_level="ERROR")
see = ray.remote(num_cpus=0)(lambda path: os.path.exists(path))
nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"] and not n["Resources"].get("node:__internal_head__")]
print(ray.get([see.options(scheduling_strategy=On(n, soft=False)).remote(sys.argv[2]) for n in nodes]))"""


def digests(files: dict[str, bytes]) -> dict[str, str]:
    return {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}


def node_table(dashboard: str) -> dict[str, dict[str, int]]:
    """Per actor class: how many ran on each node (head, worker A, worker B), from Ray's state API."""
    from ray.util.state import list_actors, list_nodes

    nodes = list_nodes(address=dashboard, raise_on_missing_output=False)
    workers = sorted(n.node_id for n in nodes if not n.is_head_node)
    names = {node: f"worker-{'AB'[i]}" for i, node in enumerate(workers)}
    names |= {n.node_id: "head" for n in nodes if n.is_head_node}
    table: dict[str, Counter] = defaultdict(Counter)
    for a in list_actors(address=dashboard, limit=10000, detail=True, raise_on_missing_output=False):
        table[a.class_name][names.get(a.node_id, "not placed")] += 1
    return {k: dict(v) for k, v in sorted(table.items())}


def test_pipeline_on_isolated_nodes_with_s3_storage_and_an_mlflow_server(tmp_path):
    driver = tmp_path / "driver"  # the first driver's --out lives here; worker nodes see an empty tmpfs instead
    driver.mkdir()
    ray_tmp = tempfile.mkdtemp(prefix="rc", dir="/tmp")  # short (socket paths): the cluster's own Ray folder, so
    # its address file does not outlive it as "the latest cluster on this machine" for later ray.init()/state calls
    base = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")} | {
        "RAY_TMPDIR": ray_tmp}
    with s3_server(BUCKET) as s3env, mlflow_server(base | s3env, tmp_path / "mlflow") as url:
        env = base | s3env | {"MLFLOW_TRACKING_URI": url}
        # 2 CPU slots per worker node (4 on 2 cores, as the suite's local Ray): an actor pool of 2 × 0.5 CPU must
        # leave a whole slot for the decoding tasks that feed it
        with ray_cluster(env, workers=2, cpus_per_worker=2, hide=[driver], log_dir=tmp_path / "ray") as cluster:
            env |= {"RAY_ADDRESS": cluster["address"]}
            storage = f"s3://{BUCKET}/mdaug"
            first = subprocess.run([sys.executable, "tests/small_pipeline_job.py", str(driver / "out"), storage],
                                   cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
            assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-6000:]
            assert "verdict:" in first.stdout
            if cluster["isolated"]:  # the file is on the driver's disk; on each worker node it is not
                probe = subprocess.run([sys.executable, "-c", SEES, cluster["address"],
                                        str(driver / "out" / "manifest.json")], env=env, capture_output=True,
                                       text=True, check=True)
                assert (driver / "out" / "manifest.json").is_file()
                assert probe.stdout.strip().splitlines()[-1] == "[False, False]", probe.stdout

            # what lives in S3: everything under this pipeline's own prefix (its output folder's name and id)
            prefix = f"mdaug/out-{json.loads((driver / 'out' / '.mdaug-pipeline.json').read_text())['id']}/"
            every = [k for k in s3_keys(s3env, BUCKET, "mdaug/") if not k.endswith("/")]
            assert every and all(k.startswith(prefix) for k in every), every[:5]
            keys = [k.removeprefix(prefix) for k in every]
            top = Counter("/".join(k.split("/")[:2]) if k.count("/") > 1 else k.split("/")[0] for k in keys)
            print("\nS3 objects under the storage root, by folder:", dict(sorted(top.items())))
            for needed in ("train/vae/vae.pt", "train/classifier/classifier.pt", "train/latents/stats.json",
                           "train/dit_k2/dit.pt", "sweep/best_sampling.yaml", "synthetic/k2/manifest.json",
                           "eval/report.html", "report.html"):
                assert needed in keys, needed
            assert any(k.startswith("train/latents/train/") and k.endswith(".parquet") for k in keys)
            assert any(k.startswith("train/data/") and k.endswith(".png") for k in keys)  # the images workers read
            assert any(k.startswith("sweep/tune/") for k in keys)
            assert not any(k.startswith("train/ray/") for k in keys), "a finished training stage left its Ray folder"
            mlflow_keys = s3_keys(s3env, BUCKET, "mlartifacts/")
            assert any(k.endswith("outputs/dit.pt") for k in mlflow_keys)  # MLflow's artifacts: in S3 too

            # a second driver: an empty folder, the first one's output gone, the MLflow run alone
            shutil.move(driver / "out", tmp_path / "moved-away")
            client = MlflowClient(url)
            exp = client.get_experiment_by_name("mdaug").experiment_id
            dit_run = client.search_runs([exp], "tags.stage = 'dit' and tags.replicate = '0' and "
                                         "attributes.status = 'FINISHED'")[0]  # the DiT behind synthetic/k2
            sweep_run = client.search_runs([exp], "tags.stage = 'sweep'")[0]
            fresh = tmp_path / "fresh"
            fresh.mkdir()
            best = client.download_artifacts(sweep_run.info.run_id, "best_sampling.yaml", str(fresh))
            made = yaml.safe_load(subprocess.run(
                [sys.executable, "-c", "import sys; from mdaug import storage; print(storage.read_text(sys.argv[1]))",
                 f"s3://{BUCKET}/{prefix}synthetic/k2/manifest.json"], env=env, capture_output=True, text=True,
                check=True).stdout)
            second = subprocess.run([sys.executable, REPO / "jobs" / "generate.py", "--dit", dit_run.info.run_id,
                                     "--per-person", str(made["per_person"]), "--seed", str(made["seed"]),
                                     "--sampling-config", best, "--out", "generated", "--workers", "2"],
                                    cwd=fresh, env=env, capture_output=True, text=True, timeout=600)
            assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-5000:]
            third = subprocess.run([sys.executable, REPO / "jobs" / "generate.py", "--model",
                                    "models:/mdaug-generator@best", "--per-person", str(made["per_person"]),
                                    "--seed", str(made["seed"]), "--out", "from-model", "--workers", "2"],
                                   cwd=fresh, env=env, capture_output=True, text=True, timeout=600)
            assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-5000:]
            table = node_table(cluster["dashboard"])
    shutil.rmtree(ray_tmp, ignore_errors=True)

    mine = {p.relative_to(fresh / "generated").as_posix(): p.read_bytes()
            for p in sorted((fresh / "generated").rglob("gen_*"))}
    theirs = {i["path"]: None for i in made["images"]}
    assert sorted(mine) == sorted(theirs) and len(mine) == len(made["images"])
    first_set = {p.relative_to(tmp_path / "moved-away" / "synthetic" / "k2").as_posix(): p.read_bytes()
                 for p in sorted((tmp_path / "moved-away" / "synthetic" / "k2").rglob("gen_*"))}
    assert digests(mine) == digests(first_set)  # the same images, from MLflow + S3 alone
    from_model = {p.relative_to(fresh / "from-model").as_posix(): p.read_bytes()
                  for p in sorted((fresh / "from-model").rglob("gen_*"))}
    assert digests(from_model) == digests(first_set)  # and from the registered model models:/mdaug-generator@best
    quality = json.loads((fresh / "generated" / "quality.json").read_text())
    assert quality["identity_ratio"] >= 0  # measured with the classifier and manifest the checkpoint names in S3

    print("actors per node:", table)
    print("worker nodes could not see the driver's folder:", bool(cluster["isolated"]))
    work = {k: v for k, v in table.items() if any(w in k for w in ("GeneratorActor", "RayTrainWorker", "EncodeBatch",
                                                                    "ImplicitFunc", "trial"))}
    for kind in ("GeneratorActor", "RayTrainWorker", "EncodeBatch"):
        assert any(kind in name for name in work), (kind, table)
    assert not any("head" in v for v in work.values())  # the head has no CPU: all work on the worker nodes
    assert {"worker-A", "worker-B"} <= set().union(*work.values())  # and both took part (an actor Ray Data's pool
    # asked for and then did not need stays "not placed")
