"""Your own data through the whole pipeline (issue 23's acceptance): distinct but alike recordings (the simulator
at 40–45 dB SNR, exported as jet JPGs) run with --data without a false leakage finding, while a resized, re-encoded
copy of a test image among the recordings is refused at the split, naming both files, before anything trains, and
the same copy in a generated set is refused by the generation stage's check before the set is published. Slow: one
small pipeline (conftest.SMALL) on 8 persons; `.ci/run` runs it (`pytest -m "not soak"`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SMALL
from PIL import Image

from mdaug.data.manifest import Manifest
from mdaug.data.split import make_split
from mdaug.data.validate import ValidationError
from mdaug.evaluation.leakage import LeakageError
from mdaug.evaluation.sets import synthetic_info
from mdaug.generation import Generator
from mdaug.ray_mlflow.generate_job import refuse_leaks

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "RAY_ADDRESS": ""}


def _pipeline(data: Path, out: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "jobs" / "pipeline.py"), "--data", str(data), "--out", str(out),
                           *SMALL, *overrides], capture_output=True, text=True, env=ENV, timeout=3600)


def _copy(src: Path, dst: Path, side: int = 58) -> Path:
    """src resized to side² and re-encoded as a JPEG at quality 85."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(src) as im:
        im.convert("RGB").resize((side, side), Image.BILINEAR).save(dst, "JPEG", quality=85)
    return dst


def test_alike_recordings_run_through_the_whole_pipeline_and_a_copy_is_refused_at_generation(alike, tmp_path):
    out = tmp_path / "out"
    run = _pipeline(alike, out)
    assert run.returncode == 0, run.stderr[-3000:]
    m = Manifest.load(out / "manifest.json")
    assert m.leakage["moved_count"] == 0 and m.leakage["cross_person_count"] == 0 and m.num_classes == 8
    assert "near-duplicates: 0 image(s) moved to keep clusters in one split; 0 cross-person pair(s); " in run.stdout
    leak = json.loads((out / "eval" / "leakage.json").read_text())
    assert leak["passed"] and leak["data_quality"] == [], leak
    assert "verdict:" in run.stdout and (out / "report.html").is_file()
    for folder in ("k2", "k2_r1"):  # both generated sets were published, each checked against the test split
        assert len(synthetic_info(out / "synthetic" / folder)["images"]) > 0
    gen = Generator.load(out / "train" / "dit_k2" / "dit.pt")
    planted = tmp_path / "generated"
    test = m.split("test")[0]
    for i, r in enumerate(m.split("train")[:4]):  # distinct recordings: published
        _copy(alike / r.path, planted / f"ID_{r.person}" / f"g{i}.jpg", side=64)
    refuse_leaks(gen, planted)
    _copy(alike / test.path, planted / f"ID_{test.person}" / "g9.jpg")
    with pytest.raises(LeakageError) as err:
        refuse_leaks(gen, planted)
    assert test.path in str(err.value) and f"ID_{test.person}/g9.jpg" in str(err.value)


def test_a_copy_of_a_test_image_among_the_recordings_is_refused_at_the_split(alike, tmp_path):
    root = shutil.copytree(alike, tmp_path / "data")
    target = make_split(root, progress=False)[0].split("test")[0]
    copy = _copy(root / target.path, root / f"ID_{target.person}" / "copy.jpg").relative_to(root).as_posix()
    seed = next(s for s in range(16) if _refused(root, s))  # a split that draws the copy apart from its original
    out = tmp_path / "out"
    run = _pipeline(root, out, f"split_seed={seed}", "split_on_duplicates=refuse")
    assert run.returncode == 2, run.stdout[-2000:] + run.stderr[-2000:]
    assert "near-duplicate pair(s) of one person would land in two splits" in run.stderr
    assert copy in run.stderr and target.path in run.stderr
    assert not (out / "manifest.json").exists() and not (out / "train").exists()  # nothing trained
    moved = _pipeline(root, tmp_path / "moved", f"split_seed={seed}", "--only", "split")  # the default: move
    assert moved.returncode == 0, moved.stderr[-2000:]
    assert "near-duplicate moved: " in moved.stdout
    split_of = {r.path: r.split for r in Manifest.load(tmp_path / "moved" / "manifest.json").rows}
    assert split_of[copy] == split_of[target.path]


def _refused(root: Path, seed: int) -> bool:
    try:
        make_split(root, seed=seed, on_duplicates="refuse", progress=False)
    except ValidationError:
        return True
    return False
