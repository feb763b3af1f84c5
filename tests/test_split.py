"""Split: deterministic, stratified, duplicates together, nested train subsets, overlap detection."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from dataclasses import asdict

import pytest

from mdaug.cli import main
from mdaug.data.manifest import Manifest
from mdaug.data.split import find_overlap, make_split


def test_deterministic_and_stratified(small_sim, tmp_path):
    a, _ = make_split(small_sim, seed=3, progress=False)
    b, _ = make_split(small_sim, seed=3, progress=False)
    assert a.rows == b.rows
    c, _ = make_split(small_sim, seed=4, progress=False)
    assert {r.path for r in c.split("test")} != {r.path for r in a.split("test")}
    per_person = Counter((r.person, r.split) for r in a.rows)
    for pid in range(1, 32):
        assert per_person[(pid, "test")] == 1 and per_person[(pid, "val")] == 1  # round(0.15 × 8)
        assert per_person[(pid, "train")] == 6
    assert {r.label for r in a.rows} == set(range(31))
    assert all(r.label == r.person - 1 for r in a.rows)


def test_nested_train_subsets_and_fixed_val_test(small_sim):
    full, _ = make_split(small_sim, seed=1, progress=False)
    sets = {}
    for k in (2, 4, None):
        m, _ = make_split(small_sim, seed=1, train_per_person=k, progress=False)
        assert m.split("val") == full.split("val") and m.split("test") == full.split("test")
        sets[k] = {r.path for r in m.split("train")}
        if k:
            assert all(n == k for n in Counter(r.person for r in m.split("train")).values())
    assert sets[2] < sets[4] < sets[None]


def test_identical_images_share_a_split(small_sim, tmp_path):
    root = tmp_path / "dups"
    shutil.copytree(small_sim, root)
    for i in range(8):  # copy every image of person 1 twice more
        for j in (1, 2):
            shutil.copy(root / "ID_1" / f"s{i:04d}.png", root / "ID_1" / f"copy{j}_{i}.png")
    for seed in range(5):
        m, _ = make_split(root, seed=seed, progress=False)
        splits_of = {}
        for r in m.rows:
            splits_of.setdefault(r.sha256, set()).add(r.split)
        assert all(len(s) == 1 for s in splits_of.values())
        assert len(m.split("test")) >= 31


def test_overlap_between_manifests_and_folders(small_sim, tmp_path):
    m, _ = make_split(small_sim, progress=False)
    assert find_overlap(m, m, ("test",), ("train", "val")) == []
    foreign = tmp_path / "synthetic"
    (foreign / "ID_1").mkdir(parents=True)
    leaked = m.split("test")[0]
    shutil.copy(small_sim / leaked.path, foreign / "ID_1" / "leaked.png")
    hits = find_overlap(m, foreign, splits_a=("test",))
    assert len(hits) == 1 and hits[0].paths_a == [leaked.path] and hits[0].paths_b == ["ID_1/leaked.png"]
    assert find_overlap(m, foreign, splits_a=("train",)) == []


def test_manifest_round_trip_and_bad_files(small_sim, tmp_path):
    m, _ = make_split(small_sim, train_per_person=3, progress=False)
    path = tmp_path / "m.json"
    m.save(path)
    back = Manifest.load(path)
    assert back == m and back.content_hash() == m.content_hash()
    assert back.leakage["threshold"] >= back.leakage["floor"] and back.leakage["moved_count"] == 0
    old = json.loads(path.read_text())  # a manifest written before the near-duplicate record: loads, same hash
    del old["leakage"]
    (tmp_path / "old.json").write_text(json.dumps(old))
    before = Manifest.load(tmp_path / "old.json")
    rows_only = hashlib.sha256(json.dumps([asdict(r) for r in m.rows], sort_keys=True).encode()).hexdigest()
    assert before.leakage is None and before.content_hash() == rows_only != m.content_hash()
    with pytest.raises(FileNotFoundError, match="mdaug split"):
        Manifest.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text(json.dumps({"rows": []}))
    with pytest.raises(ValueError, match="not an mdaug manifest"):
        Manifest.load(tmp_path / "bad.json")


def test_cli_split_writes_manifest(small_sim, tmp_path, capsys):
    out = tmp_path / "split.json"
    main(["split", str(small_sim), "--out", str(out), "--val", "0.25", "--test", "0.25", "--seed", "2"])
    m = Manifest.load(out)
    assert len(m.split("test")) == 62 and len(m.split("val")) == 62 and m.seed == 2
    out = capsys.readouterr().out
    assert "manifest" in out and "near-duplicate threshold" in out and "0 image(s) moved" in out
    with pytest.raises(SystemExit):
        main(["split", str(small_sim), "--out", str(out), "--val", "0.6", "--test", "0.5"])
