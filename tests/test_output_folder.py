"""The pipeline's output folder: a folder it did not make is refused and left byte for byte as it was, whatever the
other settings; inside its own folder it deletes only what it made; two pipelines on one storage get their own
prefixes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import file_digests

from mdaug.config import load_config
from mdaug.pipeline import run_pipeline
from mdaug.pipeline.ownership import MARK, NotOurs, Ownership, check_claimable
from mdaug.pipeline.runner import check_settings

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def users_folder(tmp_path: Path) -> Path:
    """A folder of a user's: a recording under data/ID_1, notes, an eval/ folder of their own."""
    root = tmp_path / "mine"
    (root / "data" / "ID_1").mkdir(parents=True)
    (root / "data" / "ID_1" / "rec1.png").write_bytes(b"\x89PNG not really, but mine")
    (root / "eval").mkdir()
    (root / "eval" / "notes.txt").write_text("my evaluation notes")
    (root / "README.md").write_text("my project")
    return root


@pytest.mark.parametrize("overrides", [[], ["sim.radar.prf_hz=10"], ["val=0.9", "test=0.2"], ["sweep.trials=-1"],
                                       ["train.vae.checkpoint=/nowhere/vavae.pt"]])
def test_a_folder_the_pipeline_did_not_make_is_refused_and_left_intact(users_folder, overrides):
    before = file_digests(users_folder)
    with pytest.raises((ValueError, FileNotFoundError), match="mine|checkpoint|prf|val|trials"):  # at load or check
        run_pipeline(load_config("tiny", [f"out={users_folder}", *overrides]), echo=lambda line: None)
    assert file_digests(users_folder) == before
    assert sorted(p.name for p in users_folder.iterdir()) == ["README.md", "data", "eval"]


@pytest.mark.slow  # command-line processes: seconds of imports each
def test_the_command_line_refuses_a_users_folder(users_folder):
    before = file_digests(users_folder)
    done = subprocess.run([sys.executable, REPO / "jobs" / "pipeline.py", "--out", str(users_folder)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert f"pipeline: error: --out {users_folder} is not empty and was not made by an mdaug pipeline (it holds " \
           "README.md, data/, eval/)" in done.stderr
    assert file_digests(users_folder) == before


@pytest.mark.parametrize("overrides", [[], ["sim.radar.prf_hz=10"], ["evaluation.ks=[5,all]"]])
def test_the_repository_root_is_refused_and_left_as_it_was(overrides):
    names = sorted(p.name for p in REPO.iterdir())
    with pytest.raises(ValueError):
        run_pipeline(load_config("tiny", [f"out={REPO}", *overrides]), echo=lambda line: None)
    assert sorted(p.name for p in REPO.iterdir()) == names  # no .mdaug-pipeline.json, no .pipeline.lock
    with pytest.raises(ValueError, match="not empty and was not made by an mdaug pipeline"):
        run_pipeline(load_config("tiny", [f"out={REPO / 'eval'}"]), echo=lambda line: None)


def test_a_new_or_empty_folder_is_claimed_and_an_owned_one_reused(tmp_path):
    check_claimable(tmp_path / "new")  # absent: fine, nothing made
    assert not (tmp_path / "new").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    owner = Ownership(empty)
    (empty / "stray.txt").write_text("a user's file, put here later")
    check_claimable(empty)  # marked: ours, though no longer empty
    assert Ownership(empty).id == owner.id  # the same pipeline on a rerun
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotOurs, match="is a file"):
        check_claimable(tmp_path / "file")


def test_only_what_the_pipeline_made_is_deleted(tmp_path):
    owner = Ownership(tmp_path)
    made = owner.clear(tmp_path / "eval")
    made.mkdir()
    (made / "report.html").write_text("old")
    owner.clear(tmp_path / "eval")  # its own: replaced
    assert not (tmp_path / "eval").exists()
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "mine.yaml").write_text("a user's")
    with pytest.raises(NotOurs, match="the pipeline did not make it"):
        owner.clear(tmp_path / "sweep")
    assert (tmp_path / "sweep" / "mine.yaml").read_text() == "a user's"
    with pytest.raises(NotOurs, match="outside the pipeline's output folder"):
        owner.clear(tmp_path.parent / "elsewhere")
    with pytest.raises(NotOurs, match="the output folder itself"):
        owner.clear(tmp_path)
    assert json.loads((tmp_path / MARK).read_text())["made"] == ["eval"]


def test_a_damaged_mark_deletes_nothing(tmp_path):
    (tmp_path / MARK).write_text('{"format": "mdaug-pipeline-out')
    (tmp_path / "data").mkdir()
    with pytest.raises(NotOurs, match="damaged"):
        Ownership(tmp_path)
    assert (tmp_path / "data").is_dir()


def test_settings_are_checked_before_the_folder_is_touched(tmp_path):
    cfg = load_config("tiny", [f"out={tmp_path / 'p'}", "generator_ks=[10]", "evaluation.ks=[5]"])
    with pytest.raises(ValueError, match="no generator for k=5"):
        check_settings(cfg, tmp_path / "p")
    data = tmp_path / "data"
    data.mkdir()
    cfg = load_config("tiny", [f"out={data / 'out'}", f"data={data}"])
    with pytest.raises(ValueError, match="inside --data"):
        run_pipeline(cfg, echo=lambda line: None)
    assert not (tmp_path / "p").exists() and list(data.iterdir()) == []


def test_two_pipelines_on_one_storage_get_their_own_prefixes(tmp_path):
    a, b = tmp_path / "a" / "out", tmp_path / "b" / "out"
    a.mkdir(parents=True), b.mkdir(parents=True)
    assert Ownership(a).id != Ownership(b).id  # runner: storage/<out name>-<id>
