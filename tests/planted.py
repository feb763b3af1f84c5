"""A data folder with one of every problem `mdaug validate` must report."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image


def _img(seed: int, size: int = 32) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size), dtype=np.uint8), mode="L")


def make_planted(root: Path) -> dict[str, str]:
    """Build the folder; return {kind: relative path} of each planted problem."""
    for pid in (1, 2, 3, 5):
        (root / f"ID_0{pid}").mkdir(parents=True)  # zero-padded names
        for i in range(4):
            _img(pid * 100 + i).save(root / f"ID_0{pid}" / f"img{i}.png")
    (root / "ID_07").mkdir()  # empty person folder
    (root / "ID_01" / "session2").mkdir()  # nested sub-folder
    _img(150).save(root / "ID_01" / "session2" / "deep.png")
    _img(151).save(root / "ID_01" / "UPPER.PNG")  # upper-case extension
    _img(152).convert("RGB").save(root / "ID_01" / "photo.JPG")
    (root / "ID_02" / "notes.txt").write_text("not an image")
    good = (root / "ID_02" / "img0.png").read_bytes()
    (root / "ID_02" / "broken.png").write_bytes(good[: len(good) // 2])  # truncated
    (root / "ID_02" / "garbage.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"nonsense" * 20)
    rgba = np.zeros((32, 32, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 128  # red, half transparent
    Image.fromarray(rgba, mode="RGBA").save(root / "ID_03" / "alpha.png")
    Image.fromarray(np.full((32, 32), 65535 // 2, dtype=np.uint16)).save(root / "ID_03" / "deep16.png")
    _img(153, size=8).save(root / "ID_03" / "tiny.png")
    shutil.copy(root / "ID_01" / "img0.png", root / "ID_05" / "copy_of_1.png")  # across persons
    shutil.copy(root / "ID_03" / "img1.png", root / "ID_03" / "again.png")  # within a person
    (root / "misc").mkdir()  # not a person folder
    return {
        "empty_person": "ID_07",
        "not_image": "ID_02/notes.txt",
        "corrupt": "ID_02/broken.png",
        "too_small": "ID_03/tiny.png",
        "label_conflict": "ID_05/copy_of_1.png",
        "duplicate": "ID_03/again.png",
        "folder_mismatch": "misc",
        "missing_id": ".",
    }
