"""Manifests stay inside their root and never mislabel: a bad row is refused on load, on save and by every entry
point that reads one (exit 2, the row named, no traceback); staging copies nothing from or to outside its root;
`mdaug split` never writes an empty or silently shrunk label space; `mdaug validate` reports missing person
numbers as ranges in memory bounded by the folders."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import tracemalloc
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mdaug.cli import main
from mdaug.data.manifest import Manifest, ManifestError, Row
from mdaug.data.split import make_split
from mdaug.data.validate import validate
from mdaug.ray_mlflow.data_staging import publish_manifest

REPO = Path(__file__).resolve().parents[1]


def _images(folder: Path, n: int, seed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        pixels = np.random.default_rng(seed * 100 + i).integers(0, 256, (24, 24), dtype=np.uint8)
        Image.fromarray(pixels, mode="L").save(folder / f"{i}.png")


@pytest.fixture()
def data(tmp_path) -> tuple[Path, Path]:
    """(data root of 3 persons × 4 images, its manifest split 50/25/25)."""
    root = tmp_path / "data"
    for pid in (1, 2, 3):
        _images(root / f"ID_{pid}", 4, pid)
    m, _ = make_split(root, val=0.25, test=0.25, progress=False)
    path = tmp_path / "manifest.json"
    m.save(path)
    return root, path


def _first_test_to_train(d: dict) -> None:
    for r in d["rows"]:
        r["split"] = "train" if r["split"] == "test" else r["split"]


BAD = {  # name: (edit of the manifest's JSON, what the error says)
    "absolute": (lambda d: d["rows"][0].update(path="/etc/passwd"),
                 r"row 0 \(path '/etc/passwd'\): the path is absolute"),
    "windows drive": (lambda d: d["rows"][0].update(path="C:/Users/x.png"), r"row 0 .*is absolute"),
    "dot-dot": (lambda d: d["rows"][1].update(path="../../home/u/.ssh/id_rsa"), r"row 1 .*'\.\.' part"),
    "backslash": (lambda d: d["rows"][0].update(path="ID_1\\0.png"), r"row 0 .*backslash"),
    "empty part": (lambda d: d["rows"][0].update(path="ID_1//0.png"), r"row 0 .*empty part"),
    "trailing slash": (lambda d: d["rows"][0].update(path="ID_1/"), r"row 0 .*empty part"),
    "dot part": (lambda d: d["rows"][0].update(path="./ID_1/0.png"), r"row 0 .*'\.' part"),
    "wrong label": (lambda d: d["rows"][0].update(label=(d["rows"][0]["label"] + 1) % 3),
                    r"row 0 .*label \d is not person 1's label 0"),
    "unlabelled person": (lambda d: d["rows"][0].update(person=9), r"row 0 .*person 9 is not in the manifest's labels"),
    "unknown split": (lambda d: d["rows"][0].update(split="holdout"), r"row 0 .*unknown split 'holdout'"),
    "duplicate row": (lambda d: d["rows"].append(dict(d["rows"][0])), r"row 12 .*same path as row 0"),
    "empty split": (_first_test_to_train, r"split 'test' is empty"),
    "person without rows": (lambda d: d["labels"].update({"9": 3}), r"persons \[9\] have a label but no row"),
}


def _bad_copy(path: Path, case: str) -> Path:
    d = json.loads(path.read_text())
    BAD[case][0](d)
    bad = path.with_name(f"bad-{case.replace(' ', '-')}.json")
    bad.write_text(json.dumps(d))
    return bad


@pytest.mark.parametrize("case", sorted(BAD))
def test_load_refuses_a_bad_manifest_naming_file_row_and_fix(data, case):
    _, path = data
    bad = _bad_copy(path, case)
    with pytest.raises(ManifestError, match=BAD[case][1]) as err:
        Manifest.load(bad)
    assert str(bad) in str(err.value) and "mdaug split" in str(err.value)
    assert isinstance(err.value, ValueError)  # every entry point's except clause turns it into exit 2


def test_a_bad_manifest_is_never_written(data, tmp_path):
    _, path = data
    m = Manifest.load(path)
    m.rows.append(Row("../outside.png", 1, 0, "0" * 64, "train"))  # rows changed after the checks at build
    with pytest.raises(ManifestError, match=r"not written: row 12 .*'\.\.' part"):
        m.save(tmp_path / "out.json")
    assert not (tmp_path / "out.json").exists()
    with pytest.raises(ManifestError, match="'..' part"):
        m.file(m.rows[-1])


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_staging_copies_nothing_from_or_to_outside_its_root(data, tmp_path):
    root, path = data
    outside = tmp_path / "home"
    outside.mkdir()
    (outside / "id_rsa").write_text("SECRET")
    before = _files(outside)
    storage = tmp_path / "storage"
    m = Manifest.load(path)
    m.rows.append(Row("../home/id_rsa", 1, 0, "0" * 64, "train"))
    with pytest.raises(ManifestError, match="'..' part"):
        publish_manifest(m, str(path), str(storage))
    # a manifest whose row is a link leaving the root (the file swapped for a link after the split)
    m = Manifest.load(path)
    victim = root / m.rows[0].path
    victim.unlink()
    victim.symlink_to(outside / "id_rsa")
    with pytest.raises(ManifestError, match=r"resolves to .*id_rsa, outside the root .*symbolic link"):
        m.file(m.rows[0])
    with pytest.raises(ManifestError, match="nothing was copied|outside the root"):
        publish_manifest(m, str(path), str(storage))
    assert not storage.exists() or _files(storage) == []
    assert _files(outside) == before and (outside / "id_rsa").read_text() == "SECRET"
    # validate and split exclude such a link, so no manifest they write holds it
    report = validate(root, progress=False)
    assert ("outside_root", m.rows[0].path) in {(p.kind, p.path) for p in report.problems}
    again, _ = make_split(root, val=0.25, test=0.25, progress=False)
    assert m.rows[0].path not in {r.path for r in again.rows}


RUN_ENTRIES = """
import contextlib, io, json, runpy, sys
for script, argv in json.loads(sys.argv[1]):
    err, code = io.StringIO(), 0
    sys.argv = [script, *argv]
    with contextlib.redirect_stderr(err):
        try:
            runpy.run_path(script, run_name="__main__")
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        except BaseException as e:  # a traceback: what the entry point must never print
            import traceback
            traceback.print_exc()
            code = -1
    print(json.dumps({"script": script, "code": code, "stderr": err.getvalue()}))
"""


@pytest.mark.slow  # command-line processes: seconds of imports each
def test_entry_points_refuse_a_bad_manifest_with_exit_2(data, tmp_path):
    """One bad manifest per entry point, both run in one child process (their imports cost seconds); the other
    bad manifests reach the same Manifest.load, checked above."""
    _, path = data
    cases = {"jobs/train.py": ("absolute", "row 0 (path '/etc/passwd'): the path is absolute",
                               ["--stage", "classifier"]),
             "eval/augmentation_gain.py": ("dot-dot", "has a '..' part, which leaves the root", ["--synthetic", "gen"])}
    runs = [(str(REPO / script), ["--data", str(_bad_copy(path, case)), "--out", str(tmp_path / "out"), *args])
            for script, (case, _, args) in cases.items()]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    done = subprocess.run([sys.executable, "-c", RUN_ENTRIES, json.dumps(runs)], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=300)
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(results) == 2, done.stderr[-3000:]
    for (script, (case, says, _)), result in zip(cases.items(), results, strict=True):
        assert result["code"] == 2, (script, result["stderr"][-2000:])
        assert "Traceback" not in result["stderr"] and says in result["stderr"], result["stderr"]
        assert str(tmp_path / f"bad-{case}.json") in result["stderr"]
    assert not (tmp_path / "out").exists()


def _cli(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out), redirect_stderr(out):
        try:
            main(argv)
        except SystemExit as exit_:
            return (0 if exit_.code is None else exit_.code if isinstance(exit_.code, int) else 1), out.getvalue()
    return 0, out.getvalue()


def test_split_without_usable_images_or_with_an_empty_split_writes_nothing(tmp_path):
    root = tmp_path / "data"
    for pid in (1, 2):
        (root / f"ID_{pid}").mkdir(parents=True)
        (root / f"ID_{pid}" / "notes.txt").write_text("not an image")
    out = tmp_path / "manifest.json"
    code, text = _cli(["split", str(root), "--out", str(out)])
    assert code == 2 and "no usable image" in text and not out.exists()
    for pid in (1, 2):
        _images(root / f"ID_{pid}", 1, pid)  # one image each: 15 % of one image rounds to none
    code, text = _cli(["split", str(root), "--out", str(out)])
    assert code == 2 and "the val split would be empty" in text and not out.exists()


def test_a_person_without_usable_images_is_an_explicit_exclusion(tmp_path):
    root = tmp_path / "data"
    for pid in (1, 2, 4):
        _images(root / f"ID_{pid}", 4, pid)
    (root / "ID_3").mkdir()
    (root / "ID_3" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    out = tmp_path / "manifest.json"
    code, text = _cli(["split", str(root), "--out", str(out), "--val", "0.25", "--test", "0.25"])
    assert code == 0, text
    assert "excluded person folder ID_3: person 3 has no usable image (1 files excluded)" in text
    assert "1 person folders without a usable image excluded" in text
    m = Manifest.load(out)
    assert m.labels == {1: 0, 2: 1, 4: 2} and {r.person for r in m.rows} == {1, 2, 4}
    assert {e["path"] for e in m.excluded if e["kind"] == "no_usable_image"} == {"ID_3"}
    assert all(r.label == m.labels[r.person] for r in m.rows)


def test_validate_reports_missing_numbers_as_ranges_in_bounded_memory(tmp_path):
    _images(tmp_path / "ID_1", 2, 1)
    _images(tmp_path / "ID_50000000", 2, 2)
    _images(tmp_path / "ID_7", 2, 3)
    tracemalloc.start()
    t0 = time.perf_counter()
    report = validate(tmp_path, progress=False)
    seconds = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    missing = next(p for p in report.problems if p.kind == "missing_id")
    assert "ID_2–ID_6, ID_8–ID_49999999 missing" in missing.reason
    assert seconds < 2 and peak < 20e6, (seconds, peak)  # a list of 50 million numbers: > 400 MB


def test_a_file_name_a_manifest_cannot_hold_is_excluded_by_validate(tmp_path):
    _images(tmp_path / "ID_1", 4, 1)
    (tmp_path / "ID_1" / "0.png").rename(tmp_path / "ID_1" / "a\\b.png")
    report = validate(tmp_path, progress=False)
    assert ("bad_name", "ID_1/a\\b.png") in {(p.kind, p.path) for p in report.problems}
    assert "ID_1/a\\b.png" not in {r.path for r in report.usable}
