"""Leakage decided at the split, calibrated on the data set at hand (issue 23 item 8): distinct but alike
recordings (the simulator at 40–45 dB SNR, jet JPGs) raise no finding, while a resized + re-encoded copy of a
test image is found at the split (moved or refused), by check_generated and by the evaluation's check — and a
near-duplicate validation image does not pull the threshold to 0."""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from PIL import Image

from mdaug.data.duplicates import COPY_FLOOR, calibrate, near_duplicates
from mdaug.data.fingerprint import file_fingerprints
from mdaug.data.manifest import Row
from mdaug.data.split import make_split
from mdaug.data.validate import ValidationError
from mdaug.evaluation.leakage import LeakageError, check_generated, check_leakage
from mdaug.evaluation.sets import load_eval_data
from mdaug.training.classifier import train_classifier

VAL, TEST = 1 / 3, 0.25  # 4 val (32 in all: the feature check calibrates), 3 test, 5 train per person


def _copy(src: Path, dst: Path, side: int = 58) -> Path:
    """A resized (64 → side pixels) copy re-encoded as JPEG at quality 85; a .png: the same pixels, other bytes."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(src) as im:
        if dst.suffix == ".png":
            im.save(dst)
        else:
            im.convert("RGB").resize((side, side), Image.BILINEAR).save(dst, "JPEG", quality=85)
    return dst


def _probe(data):
    return train_classifier(data.train.images, data.train.labels, data.num_classes, steps=30, width=32)


def test_alike_recordings_raise_no_finding(alike, tmp_path):
    m, _ = make_split(alike, val=VAL, test=TEST, progress=False)
    record = m.leakage
    assert record["reference_kind"] == "cross-person" and record["images"] == 96
    assert record["moved_count"] == 0 and record["same_person_pairs"] == 0 and record["cross_person_count"] == 0
    assert record["reference"] > 1.2 * record["threshold"]  # distinct recordings sit clear of the threshold
    m.save(tmp_path / "m.json")
    data = load_eval_data(str(tmp_path / "m.json"), {}, None, 32)
    check = check_leakage(data, _probe(data))
    assert check.passed and check.data_quality == [] and "calibrated at the split" in check.pixel_calibration
    assert check.feature_thresholds["train"] > 0 and check.feature_thresholds["val"] > 0
    generated = tmp_path / "generated"  # distinct recordings (train images) as a generated set: clean
    for r in m.split("train")[:8]:
        _copy(alike / r.path, generated / f"ID_{r.person}" / Path(r.path).name, side=64)
    assert check_generated(generated, m) == []


def test_a_copy_of_a_test_image_is_found_at_the_split_and_at_generation(alike, tmp_path):
    root = shutil.copytree(alike, tmp_path / "data")
    m, _ = make_split(root, val=VAL, test=TEST, progress=False)
    target = m.split("test")[0]
    copy = _copy(root / target.path, root / f"ID_{target.person}" / "copy.jpg")
    copy_path = copy.relative_to(root).as_posix()
    moved_any = False
    for seed in range(4):
        again, _ = make_split(root, val=VAL, test=TEST, seed=seed, progress=False)
        split_of = {r.path: r.split for r in again.rows}
        assert split_of[copy_path] == split_of[target.path]  # never on both sides
        assert again.leakage["same_person_pairs"] >= 1 and again.leakage["cross_person_count"] == 0
        if again.leakage["moved_count"]:
            moved_any = True
            assert {x["path"] for x in again.leakage["moved"]} & {copy_path, target.path}
            with pytest.raises(ValidationError, match="near-duplicate pair") as err:
                make_split(root, val=VAL, test=TEST, seed=seed, on_duplicates="refuse", progress=False)
            assert copy_path in str(err.value) and target.path in str(err.value)
    assert moved_any  # at least one seed drew the copy and its original into different splits
    generated = tmp_path / "generated"  # labelled as another person: a copy of a test image all the same
    other = 1 if target.person != 1 else 2
    _copy(alike / target.path, generated / f"ID_{other}" / "g0.jpg", side=60)
    _copy(alike / m.split("train")[0].path, generated / f"ID_{other}" / "g1.jpg", side=64)
    findings = check_generated(generated, m)
    assert [(f["test"], f["path"]) for f in findings] == [(target.path, f"ID_{other}/g0.jpg")]


def test_a_copy_across_persons_is_reported_not_moved(alike, tmp_path):
    root = shutil.copytree(alike, tmp_path / "data")
    plain, _ = make_split(root, val=VAL, test=TEST, progress=False)
    source = plain.split("test")[0]
    other = 1 if source.person != 1 else 2
    _copy(root / source.path, root / f"ID_{other}" / "mislabelled.jpg")
    m, _ = make_split(root, val=VAL, test=TEST, progress=False)
    assert m.leakage["cross_person_count"] == 1 and m.leakage["moved_count"] == 0
    pair = m.leakage["cross_person"][0]
    assert {pair["a"], pair["b"]} == {source.path, f"ID_{other}/mislabelled.jpg"}
    assert {r.path: r.split for r in m.rows}[source.path] == source.split


def _row(root: Path, path: str, like: Row, split: str) -> Row:
    return Row(path, like.person, like.label, hashlib.sha256((root / path).read_bytes()).hexdigest(), split)


def test_a_near_duplicate_validation_image_does_not_lower_the_threshold(alike, tmp_path):
    root = shutil.copytree(alike, tmp_path / "data")
    m, _ = make_split(root, val=VAL, test=TEST, progress=False)
    rows = m.split("train") + m.split("val")
    prints = file_fingerprints([m.file(r) for r in rows])
    base = calibrate(prints, [r.person for r in rows])
    vals = m.split("val")[:3]  # windows saved again (other bytes) that land in train
    dups = [_copy(root / v.path, root / f"ID_{v.person}" / f"window{i}.png") for i, v in enumerate(vals)]
    with_dup = calibrate(torch.cat([prints, file_fingerprints(dups)]), [r.person for r in rows + vals])
    assert with_dup.threshold == pytest.approx(base.threshold, rel=0.05) and with_dup.threshold >= COPY_FLOOR
    test = m.split("test")[0]
    copy = _copy(root / test.path, root / f"ID_{test.person}" / "leak.jpg")
    assert near_duplicates(file_fingerprints([m.file(test)]), file_fingerprints([copy]), with_dup.threshold)
    # the evaluation of a manifest without a record (written before this change): calibrated on train+val
    windows = [_row(root, f"ID_{v.person}/window{i}.png", v, "train") for i, v in enumerate(vals)]
    leaky = replace(m, rows=m.rows + windows, leakage=None)
    leaky.save(tmp_path / "leaky.json")
    data = load_eval_data(str(tmp_path / "leaky.json"), {}, None, 32)
    probe = _probe(data)
    check = check_leakage(data, probe)
    assert check.passed and "calibrated now" in check.pixel_calibration
    assert check.pixel_thresholds["train"] >= COPY_FLOOR
    assert check.feature_thresholds["train"] > 0.2 * check.feature_thresholds["val"]  # not pulled to ≈ 0
    worse = replace(leaky, rows=leaky.rows + [_row(root, f"ID_{test.person}/leak.jpg", test, "train")])
    worse.save(tmp_path / "worse.json")
    data = load_eval_data(str(tmp_path / "worse.json"), {}, None, 32)
    with pytest.raises(LeakageError) as err:
        check_leakage(data, probe)
    assert f"test {test.path} ~ train ID_{test.person}/leak.jpg: near-duplicate (pixel" in str(err.value)
