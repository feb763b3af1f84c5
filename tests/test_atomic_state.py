"""State files are whole or absent: a writer SIGKILLed mid-write leaves the old or the new content (never half),
an unreadable quality.json or manifest.json.expected counts as absent, and a job refuses an output folder
another process holds. No Ray: child processes and in-process checks only."""

from __future__ import annotations

import errno
import json
import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from mdaug import storage
from mdaug.assessment import QUALITY, read_quality
from mdaug.generation import prepare_output
from mdaug.locks import OutputLocked, exclusive, job_lock

BLOB, STATE, MODEL = "blob.bin", "state.json", "model.pt"
BLOB_SIZE, ITEMS, WEIGHTS = 16 << 20, 300_000, 2_000_000  # 16 MB, ~2 MB of JSON, 8 MB of weights

# a writer without the checkpoint starts in 0.5 s instead of 2-4 s (importing torch): most rounds skip it
WRITER = textwrap.dedent(f"""
    import json, sys
    from pathlib import Path
    from mdaug.storage import atomic_torch_save, write_bytes, write_text
    folder, version, last, checkpoint = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
    if checkpoint:
        import torch
    print("ready", flush=True)
    while version <= last:
        blob = b"%08d" % version + bytes([version % 251]) * {BLOB_SIZE}
        print("write", flush=True)
        write_bytes(folder / "{BLOB}", blob)
        text = json.dumps({{"version": version, "items": list(range({ITEMS}))}})
        print("write", flush=True)
        write_text(folder / "{STATE}", text)
        if checkpoint:
            print("write", flush=True)
            atomic_torch_save({{"version": version, "w": torch.full(({WEIGHTS},), float(version))}},
                              folder / "{MODEL}")
        version += 1
""")
ORPHAN = re.compile(rf"^\.({re.escape(BLOB)}|{re.escape(STATE)}|{re.escape(MODEL)})\.(\d+)\.[0-9a-f]{{8}}\.tmp$")


def writer(folder: Path, first: int, last: int, checkpoint: bool) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(folder), str(first), str(last), str(int(checkpoint))],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    return child


def versions(folder: Path) -> dict[str, int | None]:
    """Each target's version, after checking it is one writer's complete content (None: never written)."""
    found: dict[str, int | None] = dict.fromkeys((BLOB, STATE, MODEL))
    if (folder / BLOB).exists():
        data = (folder / BLOB).read_bytes()
        v = int(data[:8])
        assert data == b"%08d" % v + bytes([v % 251]) * BLOB_SIZE, f"{BLOB} is not version {v}'s whole content"
        found[BLOB] = v
    if (folder / STATE).exists():
        d = json.loads((folder / STATE).read_text())  # a truncated file would not parse
        assert d["items"] == list(range(ITEMS))
        found[STATE] = d["version"]
    if (folder / MODEL).exists():
        ckpt = torch.load(folder / MODEL, weights_only=True)
        assert ckpt["w"].shape == (WEIGHTS,) and bool((ckpt["w"] == ckpt["version"]).all())
        found[MODEL] = ckpt["version"]
    return found


def orphans(folder: Path) -> list[tuple[str, int]]:
    """(target, pid) of every temporary file in the folder; anything else there but the targets fails."""
    out = []
    for p in folder.iterdir():
        if p.name in (BLOB, STATE, MODEL):
            continue
        m = ORPHAN.match(p.name)
        assert m, f"unexpected file {p.name}"
        out.append((m.group(1), int(m.group(2))))
    return out


def test_sigkill_leaves_old_or_new_content(tmp_path):
    """Six writers (two of them also saving a torch checkpoint), each SIGKILLed 0-10 ms after it starts its n-th
    write (n random): every target is a complete version, never older than before; each kill leaves at most one
    temporary file (the write in flight, named with the killed pid: orphans stay, harmless), and a later write
    is not hindered by them. (The same harness around in-place writes finds truncated files.)"""
    rng = random.Random(22)
    seen: dict[str, int] = {}
    killed: set[int] = set()
    mid_write = 0
    for round_ in range(6):
        start = max(seen.values(), default=-1) + 1
        child = writer(tmp_path, start, start + 10_000, checkpoint=round_ in (0, 3))
        for _ in range(rng.randint(1, 7)):
            assert child.stdout.readline().strip() == "write"
        time.sleep(rng.uniform(0, 0.01))
        child.send_signal(signal.SIGKILL)
        child.wait()
        killed.add(child.pid)
        now = versions(tmp_path)
        for name, v in now.items():
            if v is not None:
                assert v >= seen.get(name, -1), f"{name} went back from version {seen[name]} to {v}"
                seen[name] = v
        left = orphans(tmp_path)
        assert {pid for _, pid in left} <= killed
        assert sum(pid == child.pid for _, pid in left) <= 1, "more than the one write in flight was left behind"
        mid_write += any(pid == child.pid for _, pid in left)
    assert mid_write >= 1, "no kill landed mid-write: the test did not test anything"
    before = orphans(tmp_path)
    final = max(seen.values(), default=-1) + 1  # one more write of each, here, beside the orphans
    storage.write_bytes(tmp_path / BLOB, b"%08d" % final + bytes([final % 251]) * BLOB_SIZE)
    storage.write_text(tmp_path / STATE, json.dumps({"version": final, "items": list(range(ITEMS))}))
    storage.atomic_torch_save({"version": final, "w": torch.full((WEIGHTS,), float(final))}, tmp_path / MODEL)
    assert versions(tmp_path) == dict.fromkeys((BLOB, STATE, MODEL), final)
    assert orphans(tmp_path) == before  # it left none of its own


def test_failed_or_interrupted_write_keeps_the_old_file(tmp_path, monkeypatch):
    """A full disk (ENOSPC at fsync) or Ctrl-C mid-write: the old content stays, the temporary file goes."""
    target = tmp_path / "quality.json"
    storage.write_text(target, '{"old": 1}')
    real_fsync = os.fsync
    for error in (OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()):
        def failing(fd, error=error):
            raise error
        monkeypatch.setattr(os, "fsync", failing)
        with pytest.raises(type(error)):
            storage.write_text(target, '{"new": 2}')
        monkeypatch.setattr(os, "fsync", real_fsync)
        assert json.loads(target.read_text()) == {"old": 1}
        assert sorted(p.name for p in tmp_path.iterdir()) == ["quality.json"]


def test_write_keeps_permissions_and_saves_checkpoints(tmp_path):
    """A file the user made private stays private when rewritten; a new file gets the umask's mode; a
    checkpoint written through atomic_torch_save loads."""
    private = tmp_path / "best_sampling.yaml"
    storage.write_text(private, "steps: 8\n")
    private.chmod(0o600)
    storage.write_text(private, "steps: 16\n")
    assert private.read_text() == "steps: 16\n" and private.stat().st_mode & 0o777 == 0o600
    umask = os.umask(0)
    os.umask(umask)
    storage.write_bytes(tmp_path / "new" / "f.bin", b"x")
    assert (tmp_path / "new" / "f.bin").stat().st_mode & 0o777 == 0o666 & ~umask
    storage.atomic_torch_save({"w": torch.arange(5)}, tmp_path / "c.pt")
    assert torch.load(tmp_path / "c.pt", weights_only=True)["w"].tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("content", [b'{"identity_ratio": 0.9, "summ', b"", b"\xff\xfe garbage", b"[1, 2]"])
def test_unreadable_quality_counts_as_absent(tmp_path, content):
    assert read_quality(tmp_path) is None
    (tmp_path / QUALITY).write_bytes(content)
    assert read_quality(tmp_path) is None  # a rerun measures the set again instead of failing
    storage.write_text(tmp_path / QUALITY, json.dumps({"identity_ratio": 0.9}))
    assert read_quality(tmp_path) == {"identity_ratio": 0.9}


def test_truncated_expected_manifest_restarts_the_partial_generation(tmp_path):
    """A killed generation's partial folder is resumed when its manifest.json.expected matches (without a killed
    write's temporary file), and started over (not refused) when that record is truncated."""
    expected = {"format": "mdaug-synthetic/1", "images": [{"path": "ID_1/gen_00000.png"}]}
    out = tmp_path / "k5"
    partial = prepare_output(out, expected)
    (partial / "ID_1").mkdir()
    (partial / "ID_1" / "gen_00000.png").write_bytes(b"png")
    assert prepare_output(out, expected) == partial and (partial / "ID_1" / "gen_00000.png").exists()  # resumed
    spec = partial / "manifest.json.expected"
    (partial / ".manifest.json.expected.999999.0123abcd.tmp").write_bytes(b"{")  # a killed write's orphan
    assert prepare_output(out, expected) == partial and sorted(p.name for p in partial.iterdir()) == [
        "ID_1", "manifest.json.expected"]  # removed: the folder becomes the set
    spec.write_bytes(spec.read_bytes()[:20])  # what an in-place write killed mid-way left
    assert prepare_output(out, expected) == partial
    assert json.loads(spec.read_text()) == expected and not (partial / "ID_1").exists()  # started over


HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from mdaug.locks import exclusive, job_lock
    folder, kind = Path(sys.argv[1]), sys.argv[2]
    with (exclusive(folder) if kind == "pipeline" else job_lock(folder, inside=kind == "inside")):
        print("held", flush=True)
        time.sleep(60)
""")


@pytest.fixture
def hold():
    """hold(folder, kind): a child process holding a pipeline's or a job's lock until the test ends."""
    children = []

    def start(folder: Path, kind: str) -> subprocess.Popen:
        child = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder), kind], stdout=subprocess.PIPE, text=True)
        children.append(child)
        assert child.stdout.readline().strip() == "held"
        return child

    yield start
    for child in children:
        child.kill()
        child.wait()


def test_jobs_refuse_a_folder_another_process_holds(tmp_path, hold):
    """Generation, evaluation and the sweep are refused at once, before any work, naming the holder's pid."""
    from mdaug.evaluation.config import EvalConfig
    from mdaug.flow.sampler import SamplingConfig
    from mdaug.ray_mlflow.config import SweepConfig
    from mdaug.ray_mlflow.eval_job import run_evaluation
    from mdaug.ray_mlflow.generate_job import run_generate_job
    from mdaug.ray_mlflow.sweep import run_sweep

    generated, report, sweep = tmp_path / "k5", tmp_path / "eval", tmp_path / "sweep"
    holders = [hold(generated, "beside"), hold(report, "beside"), hold(sweep, "inside")]
    calls = [lambda: run_generate_job(str(tmp_path / "no-dit.pt"), generated, 2, SamplingConfig()),
             lambda: run_evaluation(EvalConfig(data=str(tmp_path / "no-manifest.json"), synthetic=("x",),
                                               out=str(report))),
             lambda: run_sweep(str(tmp_path / "no-dit.pt"), None, sweep, SweepConfig())]
    for call, holder, folder in zip(calls, holders, (generated, report, sweep), strict=True):
        t0 = time.perf_counter()
        with pytest.raises(OutputLocked, match=rf"{folder} is in use by another mdaug job \(pid {holder.pid} on "):
            call()
        assert time.perf_counter() - t0 < 2
    assert not generated.exists() and not report.exists()  # the lock lives beside a folder made whole at the end


def test_job_lock_inside_a_pipeline(tmp_path, hold):
    """A pipeline's own jobs (same process) run in sub-folders of its OUT; a standalone job there (another
    process) is refused while that pipeline runs, and two jobs on one folder exclude each other."""
    out = tmp_path / "out"
    with exclusive(out), job_lock(out / "train"), job_lock(out / "synthetic" / "k5", inside=False):
        pass  # the nested case: no conflict
    pipeline = hold(out, "pipeline")
    with pytest.raises(OutputLocked, match=rf"inside the output folder of a running pipeline \(pid {pipeline.pid} "):
        with job_lock(out / "sweep"):
            pass
    with pytest.raises(OutputLocked, match=f"pid {pipeline.pid}"):
        with exclusive(out):  # a second pipeline
            pass
    job = hold(tmp_path / "alone", "inside")
    with pytest.raises(OutputLocked, match=f"another mdaug job \\(pid {job.pid} "):
        with job_lock(tmp_path / "alone"):
            pass
    with job_lock(tmp_path / "other"):  # another folder is free
        pass
