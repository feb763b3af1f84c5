"""jobs/generate.py's choices before any work: without a tracking server, the sqlite MLflow store of a --dit
given as a storage URI goes beside --out (not into a folder named after the URI, e.g. ./s3:), and
--resource-wait-s reaches the job. Runs the script's own main in this process, with the job itself stubbed."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import mdaug.ray_mlflow.generate_job as generate_job

REPO = Path(__file__).resolve().parents[1]


def test_a_storage_dit_keeps_its_mlflow_store_beside_the_output(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(generate_job, "run_generate_job", lambda *a, **k: calls.append(k))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    for dit, store in (("s3://bucket/mdaug/train/dit_k5/dit.pt", tmp_path / "synthetic"),
                       (str(tmp_path / "train" / "dit_k5" / "dit.pt"), tmp_path / "train")):  # local: as before
        if not dit.startswith("s3://"):  # --dit must name a file (or a URI, or an MLflow run)
            Path(dit).parent.mkdir(parents=True)
            Path(dit).write_bytes(b"")
        monkeypatch.setattr(sys, "argv", ["jobs/generate.py", "--dit", dit, "--per-person", "1", "--out",
                                          "synthetic/k5", "--resource-wait-s", "30"])
        runpy.run_path(str(REPO / "jobs" / "generate.py"), run_name="__main__")
        assert calls[-1]["tracking_dir"] == store and calls[-1]["resource_wait_s"] == 30
    assert not (tmp_path / "s3:").exists()
