"""No input crashes `mdaug validate` or `mdaug split`: hypothesis writes hundreds of malformed files into person
folders; every file ends usable or listed with a kind, and the exit code follows --on-bad. Later stages that
open images use the same guarded open and name the bad file."""

from __future__ import annotations

import io
import json
import os
import struct
import tempfile
import zlib
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from mdaug.cli import main
from mdaug.data.images import ImageReadError, load_image
from mdaug.data.manifest import Manifest
from mdaug.data.validate import EXCLUDING, validate

EXAMPLES, MIN_FILES = 8, 40  # ≥ 320 malformed files per run
FORMATS = {"PNG": ".png", "JPEG": ".jpg", "BMP": ".bmp", "TIFF": ".tif"}
MAGIC = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"BM", b"II*\x00", b"MM\x00*"]


def _valid(fmt: str, seed: int = 0, size: int = 24, mode: str = "L") -> bytes:
    arr = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).convert(mode).save(buf, format=fmt)
    return buf.getvalue()


VALID = {fmt: _valid(fmt) for fmt in FORMATS}


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_declaring(w: int, h: int, payload: bytes) -> bytes:
    """A well-formed PNG header declaring w × h, followed by whatever image data."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return MAGIC[0] + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(payload)) + _chunk(b"IEND", b"")


def _bmp_declaring(w: int, h: int, payload: bytes) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 8, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40 + len(payload), 0, 0, 14 + 40 + 1024) + info + payload


fmt_ext = st.sampled_from(sorted(FORMATS.items()))
contents = st.one_of(
    st.just(("zero bytes", b"", ".png")),
    st.tuples(fmt_ext, st.floats(0, 1, exclude_max=True)).map(
        lambda t: ("truncated", VALID[t[0][0]][: int(len(VALID[t[0][0]]) * t[1])], t[0][1])),
    st.tuples(st.binary(max_size=3000), st.sampled_from(sorted(FORMATS.values()))).map(
        lambda t: ("random bytes", t[0], t[1])),
    st.tuples(st.sampled_from(MAGIC), st.binary(max_size=600), st.sampled_from(sorted(FORMATS.values()))).map(
        lambda t: ("magic + random bytes", t[0] + t[1], t[2])),
    st.tuples(st.integers(1, 2**31 - 1), st.integers(1, 2**31 - 1), st.binary(max_size=200)).map(
        lambda t: ("PNG declaring enormous size", _png_declaring(*t), ".png")),
    st.tuples(st.integers(-(2**31), 2**31 - 1), st.integers(-(2**31), 2**31 - 1), st.binary(max_size=200)).map(
        lambda t: ("BMP declaring any size", _bmp_declaring(*t), ".bmp")),
    st.tuples(fmt_ext, st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=8)).map(
        lambda t: ("bytes flipped", _flip(VALID[t[0][0]], t[1]), t[0][1])),
    st.tuples(fmt_ext, st.sampled_from([".jpg", ".png", ".txt", ".PNG", ""])).map(
        lambda t: ("wrong extension", VALID[t[0][0]], t[1])),
)
special = st.sampled_from(["symlink loop", "broken link", "link to a folder", "fifo", "unreadable", "folder only"])
names = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"), min_size=1, max_size=40),
    st.binary(min_size=1, max_size=40).filter(lambda b: b"/" not in b and b"\0" not in b),  # any bytes, not UTF-8
    st.sampled_from(["-rf", " lead space", "new\nline", ".hidden", "a" * 200, "ü…✓", "semi;colon|pipe"]),
)
entries = st.tuples(st.one_of(contents, special), names, st.integers(1, 3), st.integers(0, 2))


def _flip(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    b = bytearray(data)
    for pos, val in edits:
        b[pos % len(b)] = val
    return bytes(b)


def _write(folder: Path, i: int, what, name: str | bytes) -> bytes | None:
    """Write one malformed entry; returns its path as bytes, None for a folder (which holds no file)."""
    ext = what[2] if isinstance(what, tuple) else ".png"
    raw = (name if isinstance(name, bytes) else name.encode("utf-8")) + f"_{i}{ext}".encode()
    path = os.fsencode(folder) + b"/" + raw
    if isinstance(what, tuple):
        Path(os.fsdecode(path)).write_bytes(what[1])
    elif what == "symlink loop":
        os.symlink(raw, path)
    elif what == "broken link":
        os.symlink(b"does-not-exist", path)
    elif what == "link to a folder":
        os.symlink(os.fsencode(folder.parent), path)
    elif what == "fifo":
        os.mkfifo(path)
    elif what == "unreadable":
        Path(os.fsdecode(path)).write_bytes(VALID["PNG"])
        os.chmod(path, 0)
    else:  # an empty sub-folder: nothing to report in it
        os.mkdir(path)
        return None
    return path


def _run(argv: list[str]) -> int:
    """The CLI in this process: any exception other than SystemExit fails the test (a traceback)."""
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        try:
            main(argv)
        except SystemExit as exit_:
            return 0 if exit_.code is None else (exit_.code if isinstance(exit_.code, int) else 1)
    return 0


written: list[int] = []


@settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(st.lists(entries, min_size=MIN_FILES, max_size=MIN_FILES + 10))
def _no_file_crashes_validate_or_split(files) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        for pid in (1, 2, 3):  # a few good images per person, so the split has something to split
            (root / f"ID_{pid}").mkdir(parents=True)
            for j in range(4):
                (root / f"ID_{pid}" / f"good{j}.png").write_bytes(_valid("PNG", seed=pid * 10 + j))
        paths = set()
        for i, (what, name, pid, depth) in enumerate(files):
            folder = root / f"ID_{pid}" / "/".join(f"sub{d}" for d in range(depth))
            folder.mkdir(parents=True, exist_ok=True)
            path = _write(folder, i, what, name)
            if path is not None:
                paths.add(os.fsdecode(path))
        written.append(len(paths))

        report = validate(root, progress=False)
        listed = {p.path for p in report.problems if p.kind in EXCLUDING}
        usable = {r.path for r in report.usable}
        on_disk = {Path(p).relative_to(root).as_posix() for p in paths}
        on_disk |= {f"ID_{pid}/good{j}.png" for pid in (1, 2, 3) for j in range(4)}
        assert on_disk == usable | listed, f"dropped silently: {sorted(on_disk - usable - listed)[:5]}"
        assert len(usable) >= 12 and not usable & listed
        json.dumps(report.to_dict())  # the report can be written

        for command in (["validate", str(root), "--json", f"{tmp}/report.json"],
                        ["split", str(root), "--out", f"{tmp}/manifest.json", "--val", "0.25", "--test", "0.25"]):
            assert _run(command) == 0  # --on-bad skip (the default): bad files are listed, the run succeeds
            assert (_run([*command, "--on-bad", "fail"]) != 0) == bool(report.problems)
        manifest = Manifest.load(Path(tmp) / "manifest.json")
        assert {r.path for r in manifest.rows} == usable
        for r in manifest.rows:  # what the manifest lists, later stages can read
            load_image(root / r.path, manifest.channels, 16)


def test_no_malformed_file_crashes_validate_or_split():
    _no_file_crashes_validate_or_split()
    assert len(written) >= EXAMPLES and sum(written) >= 300, written


@pytest.mark.parametrize("damage", ["truncated", "gone", "fifo"])
def test_later_stages_name_the_bad_file(tmp_path, damage):
    """A manifest image that went bad after the split: ingest and evaluation loads name the file and the kind."""
    path = tmp_path / "img.png"
    path.write_bytes(_valid("PNG"))
    load_image(path, "gray", 16)
    path.unlink()
    if damage == "truncated":
        path.write_bytes(_valid("PNG")[:50])
    elif damage == "fifo":
        os.mkfifo(path)
    with pytest.raises(ImageReadError, match=r"img\.png: .*\[(corrupt|unreadable)\]; `mdaug validate ROOT`"):
        load_image(path, "gray", 16)
