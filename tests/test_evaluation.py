"""Augmentation-gain evaluation: statistics against closed forms, the harness on real trainings (a perfect
generator and the oracle must gain, random labels must not), leakage refused, any ID_k data set, MLflow
comparison read back, and the HTML report rendered by headless Chromium."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from PIL import Image

from mdaug.cluster.eval_job import run_evaluation
from mdaug.data.manifest import Manifest
from mdaug.data.split import make_split
from mdaug.data.validate import validate
from mdaug.evaluation.arms import RunSpec, plan_runs
from mdaug.evaluation.config import EvalConfig, eval_config, parse_ks
from mdaug.evaluation.leakage import LeakageError, check_leakage
from mdaug.evaluation.scoring import RunResult
from mdaug.evaluation.sets import load_eval_data
from mdaug.evaluation.stats import mean_ci, paired_test, summarize, verdict
from mdaug.sim import SimConfig, simulate_dataset

REPO = Path(__file__).resolve().parents[1]


def as_generated(folder: Path, manifest: Path) -> Path:
    """Give an ID_k folder the generation manifest jobs/generate.py writes (trained on `manifest`)."""
    images = [{"path": r.path, "person": r.person} for r in validate(folder, progress=False).images]
    (folder / "manifest.json").write_text(json.dumps({
        "format": "mdaug-synthetic/1", "dit_sha256": "test", "training_manifest": str(manifest),
        "training_manifest_hash": Manifest.load(manifest).content_hash(), "images": images}))
    return folder


@pytest.fixture(scope="module")
def sim_eval(tmp_path_factory) -> dict[str, Path]:
    """8 simulated persons × 24 recordings at 32², plus fresh recordings of the same persons twice over:
    a 'perfect generator' (synthetic) and the oracle."""
    root = tmp_path_factory.mktemp("evalsim")
    simulate_dataset(root / "data", SimConfig(persons=8, per_person=24, size=32), progress=False)
    manifest, _ = make_split(root / "data", val=0.1, test=0.3, progress=False)
    manifest.save(root / "manifest.json")
    for name, first in (("synthetic", 100), ("oracle", 200)):
        simulate_dataset(root / name, SimConfig(persons=8, per_person=6, size=32, first_sample=first), progress=False)
    as_generated(root / "synthetic", root / "manifest.json")
    return {"root": root, "manifest": root / "manifest.json", "synthetic": root / "synthetic",
            "oracle": root / "oracle"}


def test_statistics_closed_forms():
    m, lo, hi = mean_ci(np.array([1.0, 2.0, 3.0]))
    assert m == 2.0 and math.isclose(hi - m, 4.302653 / math.sqrt(3), rel_tol=1e-5) and math.isclose(m - lo, hi - m)
    assert paired_test(np.zeros(4)) == 1.0 and paired_test(np.full(4, 2.0)) == 0.0
    assert math.isclose(paired_test(np.array([1.0, 2.0, 3.0, 4.0])), 0.0305, abs_tol=1e-4)  # t = 3.873 with 3 dof

    def run(arm, seed, acc, ratio=0.0):
        return RunResult(RunSpec(arm, 5, seed, ratio), acc, acc, [], [], 10, 1.0)
    base = [0.40, 0.45, 0.50, 0.42]
    results = [run("real", s, a) for s, a in enumerate(base)]
    results += [run("oracle", s, a + 0.20 + 0.01 * s, 1.0) for s, a in enumerate(base)]
    results += [run("real+synthetic", s, a + 0.10 + 0.01 * s, 1.0) for s, a in enumerate(base)]
    results += [run("negative", s, a - 0.01 * (s % 2), 1.0) for s, a in enumerate(base)]
    rows = {r.arm: r for r in summarize(results)}
    assert math.isclose(rows["oracle@1"].gain, 21.5) and rows["oracle@1"].significant_gain
    assert math.isclose(rows["real+synthetic@1"].oracle_efficiency, 11.5 / 21.5)
    assert not rows["negative@1"].significant_gain
    lines = verdict(list(rows.values()))
    assert lines[0].startswith("at k=5, real+synthetic@1 beats real by +11.5 points")
    assert "53% of the oracle" in lines[0]
    assert "detects a real gain" in lines[-1]


def test_config_errors():
    assert parse_ks("5, 10,all") == (5, 10, 0)
    with pytest.raises(ValueError, match="neither a positive count"):
        parse_ks("5,x")
    with pytest.raises(ValueError, match="≥ 2 for a confidence interval"):
        EvalConfig(seeds=1)
    assert eval_config("tiny", ratios=(0.5, 2.0)).reference_ratio == 0.5
    arms = {s.name for s in plan_runs(EvalConfig(), has_oracle=False)}
    assert "oracle@1" not in arms and {"real+synthetic@0.5", "real+synthetic@2", "negative@1"} <= arms


def test_harness_detects_oracle_gain_and_no_negative_gain(sim_eval, ray_local, tmp_path):
    cfg = eval_config("tiny", data=str(sim_eval["manifest"]), synthetic=str(sim_eval["synthetic"]),
                      oracle=str(sim_eval["oracle"]), ks=(3,), seeds=4, steps=60, out=str(tmp_path / "eval"),
                      experiment="eval-test")
    outcome = run_evaluation(cfg, tracking_dir=tmp_path)
    rows = {r.arm: r for r in outcome.rows}
    assert rows["oracle@1"].significant_gain, rows["oracle@1"]
    assert not rows["negative@1"].significant_gain and rows["negative@1"].gain < 0
    perfect = rows["real+synthetic@1"]  # fresh simulator draws: a perfect generator gets most of the oracle gain
    assert perfect.gain > 10 and perfect.oracle_efficiency > 0.5, perfect
    assert "detects a real gain" in outcome.verdict[-1]
    leak = json.loads((outcome.out / "leakage.json").read_text())
    assert leak["passed"] and leak["test_images"] == len(Manifest.load(sim_eval["manifest"]).split("test"))
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    parent = client.get_run(outcome.run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["leakage_check"] == "passed"
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{outcome.run_id}'")
    assert len(children) == 7 * 4 and {c.data.params["arm"] for c in children} >= {"oracle", "negative", "real"}
    assert {"report.html", "comparison.csv", "comparison.md", "accuracy_vs_k.png", "verdict.txt"} <= {
        a.path for a in client.list_artifacts(outcome.run_id)}
    # eval/compare.py reads MLflow back to the same verdict
    env = {**os.environ, "MLFLOW_TRACKING_URI": ""}
    cmp = subprocess.run([sys.executable, REPO / "eval" / "compare.py", "--experiment", "eval-test",
                          "--tracking-dir", tmp_path], capture_output=True, text=True, env=env)
    assert cmp.returncode == 0, cmp.stderr[-2000:]
    assert all(line in cmp.stdout for line in outcome.verdict) and "| oracle@1 | 3 |" in cmp.stdout
    check_report_renders(outcome.report, outcome.verdict[0], rows["oracle@1"].gain)


def check_report_renders(report: Path, verdict_line: str, oracle_gain: float) -> None:
    """Headless Chromium: the DOM carries the verdict and numbers; the screenshot is not blank."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium and not os.environ.get("MDAUG_REQUIRE_CHROMIUM"):
        pytest.skip("report rendering not checked: chromium is not installed (apt-get install chromium)")
    assert chromium, "chromium is not installed (.ci/run installs the Debian package)"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--allow-file-access-from-files"]
    dom = subprocess.run([chromium, *flags, "--dump-dom", report.as_uri()], capture_output=True, text=True,
                         timeout=120)
    assert verdict_line.split(" (")[0] in dom.stdout and f"{oracle_gain:+.1f}" in dom.stdout
    shot = report.parent / "shot.png"
    subprocess.run([chromium, *flags, f"--screenshot={shot}", "--window-size=1200,2400", report.as_uri()],
                   capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.std() > 20  # text, tables and figures rendered, not a blank page
    assert "data:image/png;base64," in report.read_text() and "src=\"http" not in report.read_text()


def test_leakage_is_refused_before_training(sim_eval, tmp_path):
    bad = tmp_path / "synthetic"
    shutil.copytree(sim_eval["synthetic"], bad)
    m = Manifest.load(sim_eval["manifest"])
    leaked = m.split("test")[0]
    shutil.copy(Path(m.root) / leaked.path, bad / f"ID_{leaked.person}" / "copied.png")
    as_generated(bad, sim_eval["manifest"])
    data = load_eval_data(str(sim_eval["manifest"]), str(bad), None, 32)
    with pytest.raises(LeakageError, match=rf"test {leaked.path} = synthetic ID_{leaked.person}/copied.png"):
        check_leakage(data)
    # a generator trained on a manifest whose train split holds a test image of ours
    other = replace(m, rows=[replace(r, split="train") if r == leaked else r for r in m.rows])
    other.save(tmp_path / "gen_manifest.json")
    as_generated(shutil.copytree(sim_eval["synthetic"], tmp_path / "syn2"), tmp_path / "gen_manifest.json")
    cfg = eval_config("tiny", data=str(sim_eval["manifest"]), synthetic=str(tmp_path / "syn2"),
                      out=str(tmp_path / "eval"))
    with pytest.raises(LeakageError, match="generator training manifest"):
        run_evaluation(cfg, tracking_dir=tmp_path)
    assert not (tmp_path / "eval").exists() and not (tmp_path / "mlflow.db").exists()
    (tmp_path / "gen_manifest.json").unlink()
    with pytest.raises(LeakageError, match="cannot verify"):
        check_leakage(load_eval_data(str(sim_eval["manifest"]), str(tmp_path / "syn2"), None, 32))


def _band_image(person: int, rng: np.random.Generator) -> Image.Image:
    """RGB JPEG-style picture: a bright band whose height names the person, on noise."""
    a = rng.integers(0, 90, (40, 40, 3)).astype(np.uint8)
    row = 4 + 5 * person + rng.integers(-1, 2)
    a[row:row + 3] = 230
    return Image.fromarray(a, mode="RGB")


def test_any_id_folder_without_oracle(tmp_path, ray_local):
    rng = np.random.default_rng(0)
    for root, n in ((tmp_path / "data", 10), (tmp_path / "gen", 4)):
        for p in range(1, 7):
            (root / f"ID_{p}").mkdir(parents=True)
            for i in range(n):
                _band_image(p, rng).save(root / f"ID_{p}" / f"x{i}.jpg", quality=90)
    manifest, _ = make_split(tmp_path / "data", val=0.2, test=0.2, progress=False)
    manifest.save(tmp_path / "manifest.json")
    as_generated(tmp_path / "gen", tmp_path / "manifest.json")
    cfg = eval_config("tiny", data=str(tmp_path / "manifest.json"), synthetic=str(tmp_path / "gen"), ks=(2,),
                      seeds=2, steps=15, out=str(tmp_path / "eval"))
    notes: list[str] = []
    outcome = run_evaluation(cfg, tracking_dir=tmp_path, echo=notes.append)
    assert any("oracle arm skipped" in n for n in notes)
    assert {r.arm for r in outcome.rows} == {"real", "real+classic", "real+synthetic@1", "real+synthetic+classic@1",
                                             "synthetic-only", "negative@1"}
    assert outcome.verdict[-1].startswith("no oracle arm")
    assert (outcome.out / "samples.png").is_file()
    with pytest.raises(ValueError, match=r"needs 6 synthetic images of person ID_\d+ but .* has 4"):
        run_evaluation(replace(cfg, ks=(6,), out=str(tmp_path / "eval2")), tracking_dir=tmp_path)
