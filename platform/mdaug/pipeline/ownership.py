"""The pipeline's claim on its output folder: OUT/.mdaug-pipeline.json marks a folder the pipeline made (or found
empty) and lists every path under it that the pipeline made. The pipeline deletes only listed paths; a non-empty
folder without the mark is refused, so `--out ~` or `--out .` in a repository never loses a file."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from pathlib import Path

from mdaug.locks import JOB_LOCK, PIPELINE_LOCK
from mdaug.storage import write_text

MARK = ".mdaug-pipeline.json"
FORMAT = "mdaug-pipeline-output/1"


def _lock_file(name: str) -> bool:
    """A lock file a pipeline or job leaves (mdaug.locks): alone, it does not make a folder used."""
    return name in (PIPELINE_LOCK, JOB_LOCK) or name.endswith(JOB_LOCK)


class NotOurs(ValueError):
    """The output folder, or a path under it, was not made by an mdaug pipeline."""


def _listing(folder: Path, limit: int = 5) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir() if not _lock_file(p.name))
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def check_claimable(out: Path) -> None:
    """Refuse, without writing anything, an output folder the pipeline may not use: a file, or a non-empty folder
    that carries no mark of a pipeline."""
    if out.exists() and not out.is_dir():
        raise NotOurs(f"--out {out} is a file, not a folder; choose a new or empty folder")
    if not out.is_dir() or (out / MARK).is_file():
        return
    if any(not _lock_file(p.name) for p in out.iterdir()):
        raise NotOurs(f"--out {out} is not empty and was not made by an mdaug pipeline (it holds {_listing(out)}); "
                      "the pipeline deletes and rewrites what it owns, so it only works in a new or empty folder, "
                      "or in one an earlier pipeline made: choose another --out")


class Ownership:
    """The mark of an output folder the pipeline owns: its id (stable across reruns; it names the pipeline's prefix
    in a shared storage) and the paths, relative to the folder, that the pipeline made."""

    def __init__(self, out: Path) -> None:
        self.out, self.path = out, out / MARK
        try:
            record = json.loads(self.path.read_text())
            if record.get("format") != FORMAT:
                raise ValueError(f"unknown format {record.get('format')!r}")
        except FileNotFoundError:
            record = {"format": FORMAT, "id": uuid.uuid4().hex[:12], "created": time.strftime("%FT%T"),
                      "made": []}
        except (ValueError, AttributeError) as err:
            raise NotOurs(f"{self.path} is unreadable ({err}): this folder's mark of ownership is damaged, so the "
                          "pipeline will not delete anything in it; choose another --out") from None
        self.record = record
        self._save()

    @property
    def id(self) -> str:
        return self.record["id"]

    def _relative(self, path: Path) -> str:
        try:
            rel = path.resolve().relative_to(self.out.resolve())
        except ValueError:
            raise NotOurs(f"{path} is outside the pipeline's output folder {self.out}; the pipeline deletes nothing "
                          "there") from None
        if not rel.parts:
            raise NotOurs(f"{path} is the output folder itself; the pipeline replaces only what is inside it")
        return rel.as_posix()

    def _save(self) -> None:
        write_text(self.path, json.dumps(self.record, indent=1))

    def owns(self, path: Path) -> bool:
        rel = self._relative(path)
        return any(rel == m or rel.startswith(m + "/") for m in self.record["made"])

    def claim(self, path: Path) -> Path:
        """Record `path` as the pipeline's before it makes it; refused if something the pipeline did not make is
        already there."""
        if not self.owns(path):
            if path.exists() or path.is_symlink():
                raise NotOurs(f"{path} exists but the pipeline did not make it; move it out of {self.out} (the "
                              "pipeline would replace it)")
            self.record["made"].append(self._relative(path))
            self._save()
        return path

    def clear(self, path: Path) -> Path:
        """Remove `path` if the pipeline made it (a folder whole); claim it for what comes next."""
        self.claim(path)
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.is_dir():
            shutil.rmtree(path)
        return path
