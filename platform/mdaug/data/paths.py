"""Relative paths that stay inside their root: the one check every manifest reader and writer goes through.

A manifest row's path is relative to the manifest's root, POSIX, and plain: no leading '/', no drive ('C:'),
no '..', '.' or empty part, no backslash. For a local root the resolved file (symbolic links followed) must
also lie under the resolved root; for a storage URI (s3://…) the path check suffices: object stores have no links."""

from __future__ import annotations

import os
import re
from pathlib import Path

from mdaug.storage import is_uri, join

_DRIVE = re.compile(r"^[A-Za-z]:")  # C:\x, C:/x, C:x


class UnsafePathError(ValueError):
    """A relative path that is not plain, or a file that resolves outside its root."""


def path_problem(rel: object) -> str | None:
    """Why `rel` is not a plain relative POSIX path (None when it is)."""
    if not isinstance(rel, str) or not rel:
        return "is empty or not a string"
    if "\0" in rel:
        return "holds a NUL character"
    if "\\" in rel:
        return "holds a backslash; paths are relative with '/' separators"
    if rel.startswith("/") or _DRIVE.match(rel):
        return "is absolute; paths are relative to the root"
    parts = rel.split("/")
    if "" in parts:
        return "has an empty part ('a//b', or a leading or trailing '/')"
    if ".." in parts:
        return "has a '..' part, which leaves the root"
    if "." in parts:
        return "has a '.' part"
    return None


def within(path: str | Path, root: str | Path) -> bool:
    """True when the local `path`, symbolic links resolved, is `root` (resolved) or under it."""
    real, base = os.path.realpath(path), os.path.realpath(root)
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)


def inside(root: str | Path, rel: str) -> str:
    """The location of `rel` under `root` (a local folder or a storage URI); UnsafePathError when `rel` is not
    a plain relative path, or, for a local root, when the file it names resolves outside the root."""
    reason = path_problem(rel)
    if reason:
        raise UnsafePathError(f"path {rel!r} {reason}")
    location = join(root, rel)
    if not is_uri(root) and not within(location, root):
        raise UnsafePathError(f"path {rel!r} resolves to {os.path.realpath(location)}, outside the root "
                              f"{os.path.realpath(root)} (through a symbolic link)")
    return location
