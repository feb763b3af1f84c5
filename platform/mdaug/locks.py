"""One writer per output folder: an OS lock (fcntl.flock, released when the process ends, however it ends) on a
file in the folder, holding a line that names its holder. The pipeline holds OUT/.pipeline.lock; a job (training,
sweep, generation, evaluation) holds .mdaug.lock in its own folder, so the jobs a pipeline runs in sub-folders of
its OUT do not conflict with it, while a second job on the same folder, or a standalone job inside a folder a
running pipeline holds, is refused at once."""

from __future__ import annotations

import fcntl
import functools
import inspect
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

F = TypeVar("F", bound=Callable)

PIPELINE_LOCK = ".pipeline.lock"
JOB_LOCK = ".mdaug.lock"


class OutputLocked(RuntimeError):
    """Another pipeline or job is writing to the same output folder."""


def _me() -> str:
    return f"pid {os.getpid()} on {socket.gethostname()}"


def _holder(handle) -> str:
    handle.seek(0)
    return handle.read().strip() or "an unknown process"


@contextmanager
def exclusive(out: Path, lock: str = PIPELINE_LOCK, what: str = "pipeline",
              subject: Path | None = None) -> Iterator[None]:
    """Hold out/`lock` for the duration; refused at once with OutputLocked naming the holder (and `subject`, the
    folder it guards, default `out`) when another process, or another open of it in this one, holds it."""
    path = Path(out) / lock
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(handle)
        handle.close()
        raise OutputLocked(f"{subject or out} is in use by another {what} ({holder}); wait for it, or choose another "
                           "--out") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{_me()}, started {time.strftime('%F %T')}")
    handle.flush()
    try:
        yield
    finally:
        handle.close()


def running_pipeline(folder: Path) -> str | None:
    """The holder of a pipeline's lock on `folder` or a folder above it, when another process holds it (a
    pipeline's own jobs run in its process: they see none)."""
    for parent in (folder, *folder.parents):
        path = parent / PIPELINE_LOCK
        if not path.is_file():
            continue
        try:
            handle = path.open("r")
        except OSError:
            continue
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(handle)
                if not holder.startswith(f"{_me()},"):
                    return f"{holder}, on {parent}"
            else:
                fcntl.flock(handle, fcntl.LOCK_UN)
    return None


@contextmanager
def job_lock(out: Path, inside: bool = True) -> Iterator[None]:
    """Hold a job's lock on its output folder `out`: out/.mdaug.lock, or, for a folder that must not exist until
    the job renames it into place (generation, evaluation; inside=False), .NAME.mdaug.lock beside it. A pipeline
    running on a folder above (another process) refuses the job too."""
    out = Path(out).resolve()
    pipeline = running_pipeline(out if inside else out.parent)
    if pipeline:
        raise OutputLocked(f"{out} is inside the output folder of a running pipeline ({pipeline}); wait for it, "
                           "or choose another --out")
    folder, lock = (out, JOB_LOCK) if inside else (out.parent, f".{out.name}{JOB_LOCK}")
    with exclusive(folder, lock, "mdaug job", out):
        yield


def locks_output(argument: str, inside: bool = True) -> Callable[[F], F]:
    """Decorator: the job function runs under job_lock on the folder its `argument` names ("out", or "cfg.out"
    for an attribute of one)."""
    name, *attributes = argument.split(".")

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def locked(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            folder = bound.arguments[name]
            for attribute in attributes:
                folder = getattr(folder, attribute)
            with job_lock(Path(folder), inside):
                return fn(*args, **kwargs)

        return locked  # type: ignore[return-value]

    return decorate
