"""Augmentation-gain evaluation on real trainings: the harness (a perfect generator and the oracle gain, the A/A
arm does not), equal real-data budgets, leakage by hash, near-duplicate and recording group, any ID_k data set,
MLflow read back by eval/compare.py, and the HTML report rendered by headless Chromium."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import margin
from mlflow.tracking import MlflowClient
from PIL import Image

from mdaug.config import load_config
from mdaug.data.manifest import Manifest
from mdaug.data.split import make_split
from mdaug.data.validate import validate
from mdaug.evaluation.budget import BudgetError, assign_generators
from mdaug.evaluation.config import EvalConfig
from mdaug.evaluation.leakage import LeakageError, check_leakage
from mdaug.evaluation.sets import load_eval_data
from mdaug.ray_mlflow.eval_job import run_evaluation
from mdaug.sim import SimConfig, simulate_dataset
from mdaug.training.classifier import train_classifier

REPO = Path(__file__).resolve().parents[1]


def as_generated(folder: Path, manifest: Path, seen_per_person: int | None = 3) -> Path:
    """Give an ID_k folder the generation manifest jobs/generate.py writes: a generator trained on `manifest`
    that saw its first `seen_per_person` train images per person (None: no provenance at all)."""
    m = Manifest.load(manifest)
    images = [{"path": r.path, "person": r.person, "label": m.labels[r.person]}
              for r in validate(folder, progress=False).images]
    info = {"format": "mdaug-synthetic/1", "dit_sha256": f"test-{folder.name}", "training_manifest": str(manifest),
            "training_manifest_hash": m.content_hash(), "images": images}
    if seen_per_person is not None:
        info["provenance"] = {"dit": {"images": [r.sha256 for r in m.first_per_person(seen_per_person)]}}
    (folder / "manifest.json").write_text(json.dumps(info))
    return folder


@pytest.fixture(scope="module")
def sim_eval(tmp_path_factory, seed) -> dict[str, Path]:
    """8 simulated persons × 24 recordings at 32², plus fresh recordings of the same persons twice over:
    a 'perfect generator' (synthetic; it saw 3 train images per person) and the oracle."""
    root = tmp_path_factory.mktemp("evalsim")
    simulate_dataset(root / "data", SimConfig(persons=8, per_person=24, size=32, seed=seed), progress=False)
    manifest, _ = make_split(root / "data", val=0.1, test=0.3, progress=False)
    manifest.save(root / "manifest.json")
    for name, first in (("synthetic", 100), ("oracle", 200)):
        simulate_dataset(root / name, SimConfig(persons=8, per_person=6, size=32, first_sample=first, seed=seed),
                         progress=False)
    as_generated(root / "synthetic", root / "manifest.json", seen_per_person=3)
    return {"root": root, "manifest": root / "manifest.json", "synthetic": root / "synthetic",
            "oracle": root / "oracle"}


def test_config_errors():
    with pytest.raises(ValueError, match="≥ 2 for a confidence interval"):
        EvalConfig(seeds=1)
    with pytest.raises(ValueError, match="unknown arms"):
        EvalConfig(arms=("real", "real+synthetic", "magic"))
    with pytest.raises(ValueError, match=r"reference_ratio 1.0 is not one of ratios \(0.5, 2.0\): set reference_ratio"):
        load_config("tiny", ["ratios=[0.5,2]"], "evaluation")
    with pytest.raises(ValueError, match=r"control_ks \(20,\) must be among"):
        EvalConfig(ks=(5, 10), control_ks=(20,))


def test_controls_run_at_control_ks_and_the_primary_pair_everywhere():
    from mdaug.evaluation.arms import plan_runs

    specs = plan_runs(load_config("tiny", section="evaluation"), has_oracle=True)
    at = {k: {s.name for s in specs if s.k == k} for k in (5, 10)}
    assert at[10] == {"real", "real+synthetic@1"}
    assert at[5] == {"real", "real+synthetic@1", "real+classic", "synthetic-only", "oracle@1", "random-labels@1",
                     "A/A"}
    assert all(sum(1 for s in specs if (s.name, s.k) == (n, k)) == 8 for k in at for n in at[k])  # 8 seeds each
    with pytest.raises(ValueError, match=r"control_ks \(5,\) must be among ks \(2, 4\): set control_ks"):
        load_config("tiny", ["ks=[2,4]"], "evaluation")


def test_harness_detects_oracle_gain_and_no_aa_gain(sim_eval, ray_local, tmp_path):
    cfg = replace(load_config("tiny", ["ks=[3]", "control_ks=[3]", "seeds=8", "steps=60", "max_steps=120",
                                       "experiment=eval-test"], "evaluation"),
                  data=str(sim_eval["manifest"]), synthetic=(str(sim_eval["synthetic"]),),
                  oracle=str(sim_eval["oracle"]), out=str(tmp_path / "eval"))
    lines: list[str] = []
    outcome = run_evaluation(cfg, tracking_dir=tmp_path, echo=lines.append)
    rows = {r.arm: r for r in outcome.rows}
    # over seeds 0–4 (bench/learning_margins.py): oracle +10.5…+29.2 points, adj. p 0.008–0.016; the perfect
    # generator +8.9…+29.7, adj. p 0.008–0.016, oracle efficiency 0.63–1.62; A/A adj. p 0.13–0.64; random labels
    # −17.6…−5.8 points. With 6 seeds per arm the smallest reachable p (0.031) left no room: 8 seeds.
    margin("harness", "oracle gain (points)", rows["oracle@1"].gain, "significant")
    margin("harness", "oracle adjusted p", rows["oracle@1"].p_adj, "< 0.05")
    margin("harness", "A/A adjusted p", rows["A/A"].p_adj, ">= 0.05")
    margin("harness", "random-labels gain (points)", rows["random-labels@1"].gain, "not a significant gain")
    margin("harness", "perfect generator's gain (points)", rows["real+synthetic@1"].gain, "significant")
    margin("harness", "perfect generator's adjusted p", rows["real+synthetic@1"].p_adj, "< 0.05")
    margin("harness", "perfect generator's oracle efficiency", rows["real+synthetic@1"].oracle_efficiency, "> 0.5")
    assert rows["oracle@1"].significant_gain, rows["oracle@1"]
    assert not rows["A/A"].significant and not rows["random-labels@1"].significant_gain
    perfect = rows["real+synthetic@1"]  # fresh simulator draws: a perfect generator gets most of the oracle gain
    assert perfect.family == "primary" and perfect.significant_gain and perfect.oracle_efficiency > 0.5, perfect
    assert perfect.efficiency_lo < perfect.oracle_efficiency < perfect.efficiency_hi
    assert outcome.verdict[0].startswith("k=3 · primary (pre-registered): real+synthetic@1 vs real: +")
    assert "harness: at k=3 the oracle's gain is detected and the A/A arm shows no false gain" in outcome.verdict
    assert any(x.startswith("classifier budget: ") for x in lines) and any("leakage check passed" in x for x in lines)
    leak = json.loads((outcome.out / "leakage.json").read_text())
    assert leak["passed"] and leak["test_images"] == len(Manifest.load(sim_eval["manifest"]).split("test"))
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    parent = client.get_run(outcome.run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["leakage_check"] == "passed"
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{outcome.run_id}'")
    assert len(children) == 7 * 8 and {c.data.params["arm"] for c in children} >= {"oracle", "A/A", "real"}
    assert {"report.html", "comparison.csv", "results.json", "accuracy_vs_k.png", "verdict.txt"} <= {
        a.path for a in client.list_artifacts(outcome.run_id)}
    assert parent.data.metrics["steps_used"] in (60, 120)
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


def test_a_generator_that_saw_more_than_k_is_refused_with_per_person_counts(sim_eval, tmp_path):
    full = as_generated(shutil.copytree(sim_eval["synthetic"], tmp_path / "full"), sim_eval["manifest"],
                        seen_per_person=100)  # the whole train split
    m = Manifest.load(sim_eval["manifest"])
    with pytest.raises(BudgetError, match=r"ID_1 1[0-9] vs 5, ID_2 1[0-9] vs 5"):
        assign_generators(m, [str(full)], (5,))
    small = as_generated(shutil.copytree(sim_eval["synthetic"], tmp_path / "k3"), sim_eval["manifest"], 3)
    chosen, budgets = assign_generators(m, [str(full), str(small)], (3, 5))
    assert chosen == {3: str(small), 5: str(small)} and budgets[3].equal
    chosen, budgets = assign_generators(m, [str(full)], (5,), allow_extra=True)
    assert not budgets[5].equal and "saw at most 1" in budgets[5].describe()
    blind = as_generated(shutil.copytree(sim_eval["synthetic"], tmp_path / "blind"), sim_eval["manifest"], None)
    with pytest.raises(BudgetError, match="carries no provenance"):
        assign_generators(m, [str(blind)], (3,))


def _probe_net(data):
    return train_classifier(data.train.images, data.train.labels, data.num_classes, steps=30, width=32)


def test_copies_of_test_images_are_refused_before_training(sim_eval, tmp_path):
    m = Manifest.load(sim_eval["manifest"])
    leaked, other = m.split("test")[0], m.split("test")[1]
    bad = shutil.copytree(sim_eval["synthetic"], tmp_path / "synthetic")
    with Image.open(Path(m.root) / leaked.path) as im:  # same pixels, other bytes (compression, metadata)
        im.save(bad / f"ID_{leaked.person}" / "reencoded.png", compress_level=1, pnginfo=_text("copied"))
    with Image.open(Path(m.root) / other.path) as im:  # slightly resized, re-saved as JPEG
        im.resize((30, 30), Image.BILINEAR).save(bad / f"ID_{other.person}" / "resized.jpg", quality=92)
    as_generated(bad, sim_eval["manifest"], 3)
    data = load_eval_data(str(sim_eval["manifest"]), {3: str(bad)}, None, 32)
    with pytest.raises(LeakageError) as err:
        check_leakage(data, _probe_net(data))
    text = str(err.value)
    assert f"test {leaked.path} ~ synthetic" in text and f"ID_{leaked.person}/reencoded.png" in text
    assert f"test {other.path} ~ synthetic" in text and f"ID_{other.person}/resized.jpg" in text
    assert "near-duplicate (pixel fingerprint" in text
    clean = load_eval_data(str(sim_eval["manifest"]), {3: str(sim_eval["synthetic"])}, None, 32)
    assert check_leakage(clean, _probe_net(clean)).passed  # distinct recordings of the same persons pass
    # a generator whose training manifest holds one of our test images
    gen = replace(m, rows=[replace(r, split="train") if r == leaked else r for r in m.rows])
    gen.save(tmp_path / "gen_manifest.json")
    syn2 = shutil.copytree(sim_eval["synthetic"], tmp_path / "syn2")
    as_generated(syn2, tmp_path / "gen_manifest.json", 3)
    cfg = replace(load_config("tiny", ["ks=[3]", "control_ks=[3]"], "evaluation"), data=str(sim_eval["manifest"]),
                  synthetic=(str(syn2),), out=str(tmp_path / "eval"))
    with pytest.raises(LeakageError, match="generator training data"):
        run_evaluation(cfg, tracking_dir=tmp_path)
    assert not (tmp_path / "eval").exists() and not (tmp_path / "mlflow.db").exists()


def _text(value: str):
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Comment", value)
    return info


def test_recordings_split_by_group_never_straddle(tmp_path):
    rng = np.random.default_rng(0)
    for p in (1, 2):
        (tmp_path / "d" / f"ID_{p}").mkdir(parents=True)
        for rec in range(6):
            base = rng.integers(0, 255, (24, 24), dtype=np.uint8)
            for w in range(4):  # overlapping windows of one recording
                Image.fromarray(np.roll(base, w, axis=1)).save(tmp_path / "d" / f"ID_{p}" / f"rec{rec}_win{w}.png")
    plain, _ = make_split(tmp_path / "d", val=0.2, test=0.3, progress=False)
    grouped, _ = make_split(tmp_path / "d", val=0.2, test=0.3, group=r"(rec\d+)_win", progress=False)
    splits_of = {}
    for r in grouped.rows:
        splits_of.setdefault((r.person, r.group), set()).add(r.split)
    assert all(len(s) == 1 for s in splits_of.values()) and len(splits_of) == 12
    assert grouped.group_pattern == r"(rec\d+)_win" and grouped.excluded == []  # recorded in the manifest
    assert any(len({r.split for r in plain.rows if r.path.startswith(f"ID_{p}/rec{i}_")}) > 1
               for p in (1, 2) for i in range(6))  # without --group, windows of a recording straddle splits
    with pytest.raises(ValueError, match="not a valid regular expression"):
        make_split(tmp_path / "d", group="(rec", progress=False)


def _band_image(person: int, rng: np.random.Generator) -> Image.Image:
    """RGB picture: a bright band whose height names the person, on noise."""
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
                buf = io.BytesIO()
                _band_image(p, rng).save(buf, format="JPEG", quality=90)
                (root / f"ID_{p}" / f"x{i}.jpg").write_bytes(buf.getvalue())
    manifest, _ = make_split(tmp_path / "data", val=0.2, test=0.2, progress=False)
    manifest.save(tmp_path / "manifest.json")
    as_generated(tmp_path / "gen", tmp_path / "manifest.json", 2)
    cfg = EvalConfig(data=str(tmp_path / "manifest.json"), synthetic=(str(tmp_path / "gen"),), ks=(2,),
                     ratios=(1.0,), seeds=2, steps=15, converge=False, out=str(tmp_path / "eval"))
    notes: list[str] = []
    outcome = run_evaluation(cfg, tracking_dir=tmp_path, echo=notes.append)
    assert any("oracle arm skipped" in n for n in notes)
    assert {r.arm for r in outcome.rows} == {"real", "real+classic", "real+synthetic@1", "real+synthetic+classic@1",
                                             "synthetic-only", "random-labels@1", "A/A"}
    combined = next(r for r in outcome.rows if r.arm == "real+synthetic+classic@1")
    assert combined.versus == "real+classic"  # classic augmentation's share is not credited to the generator
    assert any(v.startswith("harness: at k=2 the A/A arm shows no false gain; no oracle arm") for v in outcome.verdict)
    assert (outcome.out / "samples.png").is_file()
    with pytest.raises(BudgetError):  # a generator that saw 2 per person cannot serve k=1 arms
        run_evaluation(replace(cfg, ks=(1,), out=str(tmp_path / "eval2")), tracking_dir=tmp_path)
