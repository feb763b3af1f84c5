"""Where artifacts live: a local folder, or a URI every node can reach (s3://bucket/prefix, gs://…, or a folder
on NFS), through pyarrow.fs. Stages hand Ray workers these locations, never a path on the driver's disk.

Credentials and endpoints come from the environment as pyarrow and boto read them (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, AWS_ENDPOINT_URL for MinIO and other S3-compatible stores)."""

from __future__ import annotations

import functools
import hashlib
import io
import os
import secrets
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar
from urllib.parse import unquote, urlsplit

import pyarrow.fs as pafs

T, R = TypeVar("T"), TypeVar("R")
IO_THREADS = 16  # remote files read at once: their round trips overlap


def is_uri(location: str | Path) -> bool:
    """True for scheme://… locations (file:// included), False for plain paths."""
    return "://" in str(location)


CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION",
               "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "GOOGLE_APPLICATION_CREDENTIALS")
BUCKETED = ("s3", "gs", "gcs")  # schemes whose filesystem is one per bucket: s3://BUCKET/KEY → path BUCKET/KEY


def io_map(fn: Callable[[T], R], items: Iterable[T], remote: bool) -> Iterator[R]:
    """fn(item) for every item, in the items' order: on IO_THREADS threads when the items are `remote` (storage
    URIs), else one after another (local files of a few KB: a pool reads and hashes them at 0.26× the speed on
    2 cores, bench/file_reads.py). A raise stops it there; remote items not yet started are dropped."""
    if not remote:
        yield from map(fn, items)
        return
    pool = ThreadPoolExecutor(IO_THREADS)
    try:
        yield from pool.map(fn, items)
    finally:
        pool.shutdown(cancel_futures=True)


@functools.lru_cache(maxsize=64)
def _bucket_filesystem(bucket_uri: str, credentials: tuple[str, ...]) -> pafs.FileSystem:
    """One filesystem per scheme, bucket and credentials in a process: building an S3 client (and resolving the
    bucket's region) per call cost a round trip per image."""
    return pafs.FileSystem.from_uri(bucket_uri)[0]


def resolve(location: str | Path) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it) for a URI or a local path (relative paths are taken from the working folder).
    s3:// and gs:// filesystems are cached per bucket and credentials; a URI with ?options is opened as it is."""
    if is_uri(location):
        parts = urlsplit(str(location))
        try:
            if parts.scheme in BUCKETED and parts.netloc and not parts.query:
                credentials = tuple(os.environ.get(k, "") for k in CREDENTIALS)
                fs = _bucket_filesystem(f"{parts.scheme}://{parts.netloc}", credentials)
                return fs, unquote(f"{parts.netloc}{parts.path}").rstrip("/")
            return pafs.FileSystem.from_uri(str(location))
        except (OSError, ValueError) as err:  # pyarrow.ArrowInvalid (a ValueError): unknown scheme, bad bucket
            raise ValueError(f"cannot open storage location {location!r}: {err}") from err
    return pafs.LocalFileSystem(), str(Path(location).resolve())


def absolute(location: str | Path) -> str:
    """A URI as it is; a local path made absolute (it means the same to every process on this machine)."""
    return str(location) if is_uri(location) else str(Path(location).resolve())


def join(root: str | Path, *parts: str) -> str:
    """root/part/… for a URI or a local folder."""
    if is_uri(root):
        return "/".join([str(root).rstrip("/"), *(p.strip("/") for p in parts)])
    return str(Path(root, *parts))


def exists(location: str | Path) -> bool:
    fs, path = resolve(location)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def read_bytes(location: str | Path) -> bytes:
    """The whole file; FileNotFoundError names the location."""
    fs, path = resolve(location)
    try:
        with fs.open_input_stream(path) as f:
            return f.read()
    except OSError as err:  # FileNotFoundError included: an object store says so for a prefix too
        kind = fs.get_file_info(path).type
        if kind == pafs.FileType.NotFound:
            raise FileNotFoundError(f"{location} not found") from None
        if kind == pafs.FileType.Directory:
            raise IsADirectoryError(f"{location} is a folder, not a file") from None
        raise OSError(f"cannot read {location}: {err}") from err


def file_sha256(location: str | Path) -> str:
    """The hex SHA-256 of a file's bytes (the content hash a manifest records)."""
    return hashlib.sha256(read_bytes(location)).hexdigest()


def _fsync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (a no-op where the OS cannot open folders)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on a folder; the rename itself is still atomic
        pass
    finally:
        os.close(fd)


def _write_local(path: Path, data: bytes | memoryview) -> None:
    """Temporary file beside `path` (.NAME.<pid>.<random>.tmp, the old file's permissions), written and fsynced,
    renamed over `path`, folder fsynced; the temporary file is removed on any error, Ctrl-C included."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        mode = None
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            if mode is not None:
                os.fchmod(f.fileno(), mode)  # a file the user made private stays private
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def write_bytes(location: str | Path, data: bytes | memoryview) -> None:
    """Write a whole file, never half of one: a kill, a full disk or a power cut leaves the old content or the new.
    A local file goes through a temporary file in its folder (fsynced, then renamed over it); an object store's
    upload appears only when complete."""
    if not is_uri(location):
        _write_local(Path(location), data)
        return
    fs, path = resolve(location)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path) as f:
        f.write(data)


def read_text(location: str | Path) -> str:
    return read_bytes(location).decode()


def write_text(location: str | Path, text: str) -> None:
    """write_bytes of UTF-8 text."""
    write_bytes(location, text.encode())


def atomic_torch_save(obj: object, location: str | Path) -> None:
    """torch.save to a local path or a URI, whole or not at all (serialised in memory, then write_bytes)."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    write_bytes(location, buf.getbuffer())


def torch_load(location: str | Path, **kwargs):
    """torch.load of a local file or a URI (read whole: checkpoints here are megabytes, not gigabytes)."""
    import torch

    if not is_uri(location):
        return torch.load(location, **kwargs)
    return torch.load(io.BytesIO(read_bytes(location)), **kwargs)


def delete_dir(location: str | Path) -> None:
    """Remove a folder (or prefix) and everything under it, if it is there."""
    fs, path = resolve(location)
    if fs.get_file_info(path).type == pafs.FileType.Directory:
        fs.delete_dir(path)


def delete_file(location: str | Path) -> None:
    """Remove a file (or object), if it is there."""
    fs, path = resolve(location)
    if fs.get_file_info(path).type == pafs.FileType.File:
        fs.delete_file(path)


def same_place(a: str | Path, b: str | Path) -> bool:
    return absolute(a) == absolute(b)


def publish(local: Path, location: str | Path) -> str:
    """Copy a local file or folder to `location` (nothing to do when it is that place); returns the location.
    A folder is replaced as a whole: files of an older version do not stay beside the new ones."""
    location = str(location)
    if same_place(local, location):
        return location
    if local.is_dir():
        delete_dir(location)
        fs, path = resolve(location)
        fs.create_dir(path, recursive=True)
        pafs.copy_files(str(local.resolve()), path, destination_filesystem=fs)
    else:
        write_bytes(location, local.read_bytes())
    return location


def download(location: str | Path, local: Path) -> Path:
    """Copy a file or folder from `location` to a local path; returns the local path."""
    fs, path = resolve(location)
    if fs.get_file_info(path).type == pafs.FileType.Directory:
        local.mkdir(parents=True, exist_ok=True)
        pafs.copy_files(path, str(local.resolve()), source_filesystem=fs)
    else:
        write_bytes(local, read_bytes(location))
    return local


@contextmanager
def local_copy(location: str | Path | None) -> Iterator[Path | None]:
    """A local path for a file or folder a library can only open from disk (DINOv2 weights, a perceptual-loss
    network): a local path as it is; a URI downloaded into a temporary folder, removed when the block ends."""
    if location is None or not is_uri(location):
        yield None if location is None else Path(location)
        return
    with tempfile.TemporaryDirectory(prefix="mdaug-weights-") as tmp:
        yield download(location, Path(tmp) / (Path(str(location).rstrip("/")).name or "weights"))
