"""The `mdaug` console script and the pipeline job: help for every option, a run, a resumed run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import small_pipeline

from mdaug.pipeline import STAGES, run_pipeline

MDAUG = Path(sys.executable).parent / "mdaug"


@pytest.mark.parametrize("command", ["simulate", "validate", "split"])
def test_every_option_is_documented(command):
    from mdaug.cli import _parser

    sub = next(a for a in _parser()._actions if a.dest == "command").choices[command]
    out = subprocess.run([MDAUG, command, "--help"], capture_output=True, text=True, check=True).stdout
    for action in sub._actions:
        assert action.help, f"{command} {action.option_strings or action.dest} has no help"
        for opt in action.option_strings:
            assert opt in out


def test_simulate_command_and_clear_errors(tmp_path, capsys):
    """In this process (the console script itself is run by the test above): output files, exit code 2 and a clear
    message for physics that cannot work, nothing half-written."""
    from mdaug.cli import main

    main(["simulate", "--out", str(tmp_path / "d"), "--quiet", "persons=2", "per_person=2", "size=32"])
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["ID_1", "ID_2", "persons.json", "preview.png"]
    with pytest.raises(SystemExit) as bad:
        main(["simulate", "--out", str(tmp_path / "e"), "--quiet", "radar.prf_hz=800"])
    assert bad.value.code == 2 and "use a PRF of at least" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()


def test_pipeline_runs_every_stage_then_skips_them(pipeline_run):
    """The conftest pipeline ran every stage once; a rerun skips all but the report; --from reruns the tail."""
    from mlflow.tracking import MlflowClient

    first = (pipeline_run / "first_run.log").read_text().splitlines()
    assert [x for x in first if x.endswith("] running")] == [f"[{s}] running" for s in STAGES]
    assert any(x.startswith("  harness: ") for x in first) and first[-1].startswith("MLflow: mlflow ui")
    assert any(x.startswith("generator k=2 replicate 1: wrote ") and "; generated set's identity ratio " in x and
               "by an independent judge" in x and "memorisation:" in x for x in first)
    assert (pipeline_run / "report.html").is_file() and (pipeline_run / "oracle" / "ID_4").is_dir()
    assert (pipeline_run / "aux" / "ID_5").is_dir() and not (pipeline_run / "aux" / "ID_4").exists()
    client = MlflowClient(f"sqlite:///{pipeline_run / 'mlflow.db'}")
    exp = client.get_experiment_by_name("mdaug").experiment_id
    parent = client.search_runs([exp], "tags.kind = 'pipeline'")[0]
    children = client.search_runs([exp], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert {c.info.run_name for c in children} == {"stage-simulate", "stage-validate", "stage-split",
                                                   "train-classifier", "train-vae", "train-latents", "train-dit",
                                                   "sweep-sampling", "register-generator", "generate", "evaluation"}
    assert parent.info.status == "FINISHED" and parent.data.tags["verdict"].startswith("confirmatory: first look")
    assert "k=2 · primary (pre-registered), cnn2d classifier" in parent.data.tags["verdict"]
    verdict = (pipeline_run / "eval" / "verdict.txt").read_text()
    assert parent.data.tags["mlflow.note.content"] == verdict  # the run's description in the MLflow UI
    vae_run = next(c for c in children if c.info.run_name == "train-vae")
    assert len(client.get_metric_history(vae_run.info.run_id, "recon_identity_ratio")) == 2  # per epoch
    dit_run = next(c for c in children if c.info.run_name == "train-dit")
    assert len(client.get_metric_history(dit_run.info.run_id, "identity_ratio")) == 2
    made = (pipeline_run / "data" / "ID_4" / "s0011.png").stat().st_mtime_ns
    lines: list[str] = []
    run_pipeline(small_pipeline(pipeline_run), echo=lines.append)
    assert [x for x in lines if x.endswith("skipped")] == [f"[{s}] up to date, skipped" for s in STAGES[:-1]]
    assert (pipeline_run / "data" / "ID_4" / "s0011.png").stat().st_mtime_ns == made
    assert any(x.startswith("  k=2 · primary") for x in lines)  # the verdict is printed again
    lines.clear()
    run_pipeline(small_pipeline(pipeline_run), start="evaluate", echo=lines.append)
    assert [x for x in lines if x.endswith("] running")] == ["[evaluate] running", "[report] running"]
    lines.clear()
    latents = sorted((pipeline_run / "train" / "latents" / "train").glob("*.parquet"))
    run_pipeline(small_pipeline(pipeline_run), only="latents", echo=lines.append)  # --only forces that stage
    assert [x for x in lines if x.endswith("] running")] == ["[latents] running"]
    assert len(sorted((pipeline_run / "train" / "latents" / "train").glob("*.parquet"))) == len(latents)  # replaced
    done = json.loads((pipeline_run / "stages.json").read_text())
    assert "latents" in done and not {"dit", "generate", "evaluate"} & set(done)  # later outputs are stale now
    with pytest.raises(ValueError, match="unknown or inactive stage 'simulate'"):
        run_pipeline(replace(small_pipeline(pipeline_run), data=pipeline_run / "data"), only="simulate")


def test_train_job_help_documents_every_option():
    out = subprocess.run([sys.executable, Path(__file__).resolve().parents[1] / "jobs" / "train.py", "--help"],
                         capture_output=True, text=True, check=True).stdout
    for opt in ("--stage", "--data", "--out", "--resume", "--config", "key=value"):
        assert opt in out
    assert "vae.lr=1e-3" in out


HEAVY = {"torch", "ray", "mlflow", "lightning", "pandas"}
ENTRY_POINTS = [["jobs/pipeline.py"], ["jobs/train.py"], ["jobs/generate.py"], ["tuning/sweep_sampling.py"],
                ["eval/augmentation_gain.py"], ["eval/compare.py"]]


CONSOLE = ["mdaug-pipeline", "mdaug-train", "mdaug-generate", "mdaug-sweep", "mdaug-evaluate", "mdaug-compare"]


@pytest.mark.parametrize("argv", [*ENTRY_POINTS, *([c] for c in ("simulate", "validate", "split")),
                                  *([c] for c in CONSOLE)], ids=lambda argv: argv[0])
def test_help_imports_no_heavy_library(argv):
    """`--help` answers before torch, Ray, MLflow, Lightning or pandas is imported (a fraction of a second;
    bench/help_speed.py times them)."""
    root = Path(__file__).resolve().parents[1]
    command = ([sys.executable, root / argv[0]] if argv[0].endswith(".py") else
               [MDAUG.parent / argv[0]] if argv[0].startswith("mdaug-") else [MDAUG, *argv])
    run = subprocess.run([*command, "--help"], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"})
    imported = {line.split("|")[-1].strip().split(".")[0] for line in run.stderr.splitlines()
                if line.startswith("import time:")}
    assert "mdaug" in imported and "usage:" in run.stdout
    assert not imported & HEAVY, f"{argv[0]} --help imports {sorted(imported & HEAVY)}"
