"""The `mdaug` console script and the pipeline job: help for every option, a run, a resumed run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mdaug.pipeline import PipelineConfig, run_pipeline
from mdaug.sim import SimConfig

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


def test_simulate_command_and_clear_errors(tmp_path):
    ok = subprocess.run([MDAUG, "simulate", "--out", tmp_path / "d", "--persons", "2", "--per-person", "2",
                         "--size", "32", "--quiet"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["ID_1", "ID_2", "persons.json", "preview.png"]
    bad = subprocess.run([MDAUG, "simulate", "--out", tmp_path / "e", "--prf", "800", "--quiet"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "use a PRF of at least" in bad.stderr and not (tmp_path / "e").exists()


def test_pipeline_runs_then_skips_finished_stages(tmp_path):
    cfg = PipelineConfig(out=tmp_path / "run", sim=SimConfig(persons=4, per_person=8, size=32))
    lines: list[str] = []
    run_pipeline(cfg, echo=lines.append)
    assert "[simulate] running" in lines and any("manifest" in x for x in lines)
    made = (tmp_path / "run" / "data" / "ID_4" / "s0007.png").stat().st_mtime_ns
    lines.clear()
    run_pipeline(cfg, echo=lines.append)
    assert "[simulate] up to date, skipped" in lines and "[split] up to date, skipped" in lines
    assert (tmp_path / "run" / "data" / "ID_4" / "s0007.png").stat().st_mtime_ns == made
    lines.clear()
    run_pipeline(cfg, start="split", echo=lines.append)
    assert "[validate] up to date, skipped" in lines and "[split] running" in lines


def test_train_job_help_documents_every_option():
    out = subprocess.run([sys.executable, Path(__file__).resolve().parents[1] / "jobs" / "train.py", "--help"],
                         capture_output=True, text=True, check=True).stdout
    for opt in ("--stage", "--data", "--preset", "--out", "--experiment", "--workers", "--gpus-per-worker",
                "--epochs", "--resume", "overrides"):
        assert opt in out
    assert "vae.lr=1e-3" in out
