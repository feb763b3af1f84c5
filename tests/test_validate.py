"""`mdaug validate` reports a folder of planted problems item by item, and converts modes as documented."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from planted import make_planted

from mdaug.cli import main
from mdaug.data.images import convert_mode, load_image
from mdaug.data.validate import ValidationError, validate


@pytest.fixture()
def planted(tmp_path):
    root = tmp_path / "data"
    return root, make_planted(root)


def test_every_planted_problem_is_reported(planted):
    root, expected = planted
    report = validate(root, progress=False)
    found = {(p.kind, p.path) for p in report.problems}
    for kind, path in expected.items():
        assert (kind, path) in found, f"{kind} at {path} not reported; got {sorted(found)}"
    assert ("corrupt", "ID_02/garbage.jpg") in found
    assert ("label_conflict", "ID_01/img0.png") in found  # both copies of a cross-person duplicate
    missing = next(p for p in report.problems if p.kind == "missing_id")
    assert "ID_4, ID_6 missing" in missing.reason
    # zero-padded folders map to numeric ids, labels by sorted id
    assert report.labels == {1: 0, 2: 1, 3: 2, 5: 3, 7: 4}
    usable = {r.path for r in report.usable}
    assert {"ID_01/session2/deep.png", "ID_01/UPPER.PNG", "ID_01/photo.JPG", "ID_03/alpha.png",
            "ID_03/deep16.png", "ID_03/again.png"} <= usable
    excluded = report.excluded
    assert usable.isdisjoint(excluded)
    # nothing disappears silently: every file under a person folder is usable or reported
    all_files = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert all_files == usable | excluded
    assert report.channels == "rgb"  # one colour JPEG and one RGBA image
    modes = {r.path: r.mode for r in report.images}
    assert modes["ID_03/alpha.png"] == "RGBA" and modes["ID_03/deep16.png"].startswith("I")
    rows = [line for line in report.table().splitlines() if line.startswith("ID_")]
    short = report.table(per_person=False)  # the pipeline's console where nothing is off: no row per person
    assert len(rows) == 5 and not any(line.startswith("ID_") for line in short.splitlines())
    assert "[corrupt] ID_02/garbage.jpg" in short and "5 persons" in short


def test_cli_report_table_json_and_fail_mode(planted, tmp_path, capsys):
    root, expected = planted
    out = tmp_path / "report.json"
    main(["validate", str(root), "--json", str(out)])
    text = capsys.readouterr().out
    for kind, path in expected.items():
        assert f"[{kind}] {path}" in text
    data = json.loads(out.read_text())
    assert data["counts"]["excluded"] == 6 and data["counts"]["problems"]["label_conflict"] == 2
    assert {row["person"] for row in data["persons"]} == {1, 2, 3, 5, 7}
    with pytest.raises(SystemExit, match=r"validation failed with \d+ problems"):
        main(["validate", str(root), "--on-bad", "fail"])


def test_no_person_folders_is_a_clear_error(tmp_path):
    (tmp_path / "people").mkdir()
    (tmp_path / "people" / "alice").mkdir()
    with pytest.raises(ValidationError, match=r"expected sub-folders matching `ID_\(\\d\+\)`.*found: alice"):
        validate(tmp_path / "people")
    with pytest.raises(ValidationError, match="does not exist"):
        validate(tmp_path / "nowhere")


def test_two_folders_for_one_person_is_refused(tmp_path):
    (tmp_path / "ID_1").mkdir()
    (tmp_path / "id_001").mkdir()
    with pytest.raises(ValidationError, match="both name person 1"):
        validate(tmp_path)


def test_custom_pattern(tmp_path):
    (tmp_path / "person-3").mkdir()
    Image.new("L", (32, 32)).save(tmp_path / "person-3" / "a.bmp")
    report = validate(tmp_path, pattern=r"person-(\d+)", progress=False)
    assert report.labels == {3: 0} and len(report.usable) == 1


def test_mode_conversion_rules(planted):
    root, _ = planted
    rgba = load_image(root / "ID_03" / "alpha.png", "rgb")
    # red 200 at alpha 128 over black → ≈ 100 in red, 0 elsewhere
    assert abs((rgba[0, 0, 0] + 1) * 127.5 - 200 * 128 / 255) < 1.5 and rgba[1:].max() == -1
    deep = load_image(root / "ID_03" / "deep16.png", "gray")
    assert deep.shape == (1, 32, 32) and abs((deep.mean() + 1) * 127.5 - 127.5) < 1
    with Image.open(root / "ID_01" / "photo.JPG") as im:
        assert convert_mode(im, "gray").mode == "L"
    pal = Image.new("P", (4, 4))
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    pal.putpixel((0, 0), 1)
    assert np.asarray(convert_mode(pal, "rgb"))[0, 0].tolist() == [255, 0, 0]
    resized = load_image(root / "ID_01" / "img0.png", "rgb", size=16)
    assert resized.shape == (3, 16, 16) and resized.dtype == np.float32
    assert -1 <= resized.min() and resized.max() <= 1
