"""A pipeline SIGKILLed inside each stage in turn resumes, and ends with what an uninterrupted run made; a second
pipeline on the same output folder is refused at once, and a killed one leaves no stuck lock. Slow: about 12 process
starts of the small pipeline (conftest.small_pipeline); `.ci/run` runs it (`pytest -m "not soak"`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import torch
import yaml
from conftest import file_digests, first_outputs
from mlflow.tracking import MlflowClient

from mdaug.data.manifest import Manifest
from mdaug.pipeline import STAGES

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
JOB = [sys.executable, str(REPO / "tests" / "small_pipeline_job.py")]
ENV = {**os.environ, "RAY_ADDRESS": ""}  # each process starts (and, killed, loses) its own local Ray


def _start(out: Path, log: Path) -> subprocess.Popen:
    """The pipeline in its own process group: killing the group kills its Ray processes with it, as a crash would."""
    return subprocess.Popen([*JOB, str(out)], stdout=subprocess.PIPE, stderr=log.open("a"), text=True, env=ENV,
                            start_new_session=True)


def _wait_for(proc: subprocess.Popen, line: str, timeout: float = 300) -> list[str]:
    """Read the pipeline's lines until `line`; kill it if that takes longer than timeout."""
    timer = threading.Timer(timeout, lambda: os.killpg(proc.pid, signal.SIGKILL))
    timer.start()
    seen = []
    try:
        for text in proc.stdout:
            seen.append(text.rstrip("\n"))
            if seen[-1] == line:
                return seen
    finally:
        timer.cancel()
    raise AssertionError(f"the pipeline ended (rc {proc.wait()}) before {line!r}; it printed {seen[-5:]}")


def _done(out: Path) -> dict:
    path = out / "stages.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    flat: dict[str, torch.Tensor] = {}

    def walk(x, key: str) -> None:
        if isinstance(x, torch.Tensor):
            flat[key] = x
        elif isinstance(x, dict):
            for k, v in x.items():
                walk(v, f"{key}.{k}")

    walk(torch.load(path, map_location="cpu", weights_only=True), "")
    return flat


def _results(out: Path) -> list[dict]:
    """The evaluation's per-training results without their wall times."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in json.loads((out / "eval/results.json").read_text())]


def test_pipeline_killed_in_every_stage_resumes_to_the_uninterrupted_result(pipeline_run, tmp_path):
    out, log = tmp_path / "killed", tmp_path / "stderr.log"
    reference = json.loads((first_outputs(pipeline_run) / "stages.json").read_text())  # stage times, uninterrupted
    landed: dict[str, str] = {}
    kills = 0
    for stage in STAGES:
        if stage in _done(out):  # a quick stage the previous kill landed after (e.g. split, done with validate)
            landed[stage] = "after"
            continue
        proc = _start(out, log)
        # the resumed pipeline first redoes the unfinished earlier stages (the killed one from its start: two DiT
        # replicates ≈ 500 s here); allow 2.5× their uninterrupted time, for machines of this kind differ by 2×
        redo = sum(reference[s]["seconds"] for s in STAGES[:STAGES.index(stage)] if s not in _done(out))
        _wait_for(proc, f"[{stage}] running", timeout=240 + 2.5 * redo)
        started = time.time()
        if stage == "vae":  # while it runs: a second pipeline on its folder is refused at once, naming it
            second = subprocess.run([sys.executable, REPO / "jobs" / "pipeline.py", "--out", out],
                                    capture_output=True, text=True, env=ENV, timeout=120)
            assert second.returncode == 2 and f"in use by another pipeline (pid {proc.pid} on " in second.stderr
            print(f"second pipeline refused after {time.time() - started:.1f} s: {second.stderr.strip()}")
        # halfway through, as long as the stage took uninterrupted (test_generate.py kills a generation mid-write)
        time.sleep(max(0.0, 0.5 * reference[stage]["seconds"] - (time.time() - started)))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
        landed[stage] = "after" if stage in _done(out) else "inside"
        if stage == "generate":  # a killed generation leaves only its .partial folder, never a half-written set:
            sets = [out / "synthetic" / name for name in ("k2", "k2_r1")]  # the replicates, one after the other
            assert not all(d.exists() for d in sets)  # the kill landed before the last set was finished …
            for d in (d for d in sets if d.exists()):  # … and a set that exists is whole (the first may be done)
                images = {i["path"] for i in json.loads((d / "manifest.json").read_text())["images"]}
                assert images and images | {"manifest.json", "quality.json"} == set(file_digests(d)), d
    print(f"kills landed: {landed}")
    # the quick stages (validate, split: ~0.05 s; report: a copy) may finish before the signal arrives
    assert all(landed[s] == "inside" for s in STAGES if reference[s]["seconds"] > 2), landed

    redo = sum(reference[s]["seconds"] for s in STAGES if s not in _done(out))
    final = subprocess.run([*JOB, str(out)], capture_output=True, text=True, env=ENV, timeout=240 + 2.5 * redo)
    assert final.returncode == 0, final.stderr[-3000:]  # the last killed stage's lock was released by the OS
    assert "verdict:" in final.stdout and (out / "report.html").is_file()
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    statuses = Counter(r.info.status for r in client.search_runs(
        [e.experiment_id for e in client.search_experiments()], max_results=10000))
    assert statuses["RUNNING"] == 0 and statuses["KILLED"] >= kills, statuses  # each killed pipeline's own run

    # equal to the uninterrupted run (conftest's pipeline_run, same configuration, another folder), as that run left
    # its outputs (other tests rerun its stages: a rerun evaluation's verdict counts a second look at the test split)
    first = first_outputs(pipeline_run)
    for folder in ("data", "aux", "oracle", "synthetic/k2", "synthetic/k2_r1"):
        a, b = file_digests(first / folder), file_digests(out / folder)
        a.pop("manifest.json", None), b.pop("manifest.json", None)  # names the DiT's path, which differs
        assert a == b, f"{folder}: {sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))[:5]}"
    assert [r.__dict__ for r in Manifest.load(out / "manifest.json").rows] == \
        [r.__dict__ for r in Manifest.load(first / "manifest.json").rows]
    for model in ("classifier/classifier.pt", "classifier/judge.pt", "vae/vae.pt", "dit_k2/dit.pt", "dit_k2_r1/dit.pt"):
        a, b = _tensors(first / "train" / model), _tensors(out / "train" / model)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), model
    best = [yaml.safe_load((o / "sweep" / "best_sampling.yaml").read_text()) for o in (first, out)]
    assert best[0] == best[1]
    assert _results(out) == _results(first)
    assert (out / "eval/verdict.txt").read_text() == (first / "eval/verdict.txt").read_text()
