"""Artifacts by location: the same calls on a local folder and on a real S3 server (moto's server mode)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
import torch
from s3_server import s3_keys, s3_server

from mdaug import storage
from mdaug.data.images import ImageReadError, load_rows, open_image
from mdaug.data.manifest import Manifest
from mdaug.models.vavae import VAE_ARCHITECTURES, AutoencoderKL, load_vae, save_vae
from mdaug.ray_mlflow.data_staging import publish_manifest
from mdaug.ray_mlflow.preflight import load_verified_manifest

BUCKET = "mdaug-test"


@pytest.fixture(scope="module")
def s3():
    with s3_server(BUCKET) as env:
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        yield env
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path) -> str:
    if request.param == "local":
        return str(tmp_path / "store")
    request.getfixturevalue("s3")
    return f"s3://{BUCKET}/{tmp_path.name}"


def test_files_and_folders_round_trip(root, tmp_path):
    f = storage.join(root, "a", "b.bin")
    assert not storage.exists(f)
    with pytest.raises(FileNotFoundError, match="b.bin not found"):
        storage.read_bytes(f)
    storage.write_bytes(f, b"\x00\x01")
    assert storage.exists(f) and storage.read_bytes(f) == b"\x00\x01"
    with pytest.raises(IsADirectoryError):
        storage.read_bytes(storage.join(root, "a"))
    local = tmp_path / "folder"
    (local / "sub").mkdir(parents=True)
    (local / "x.txt").write_text("one")
    (local / "sub" / "y.txt").write_text("two")
    target = storage.join(root, "published")
    storage.write_text(storage.join(target, "stale.txt"), "an older version's file")
    storage.publish(local, target)  # a folder is replaced as a whole
    assert storage.read_text(storage.join(target, "sub", "y.txt")) == "two"
    assert not storage.exists(storage.join(target, "stale.txt"))
    back = storage.download(target, tmp_path / "back")
    assert sorted(p.relative_to(back).as_posix() for p in back.rglob("*.txt")) == ["sub/y.txt", "x.txt"]
    storage.delete_dir(target)
    assert not storage.exists(storage.join(target, "x.txt"))


def test_a_manifest_is_staged_once_where_workers_read_it(s3, manifest64, tmp_path):
    m = Manifest.load(manifest64)
    staged, location = publish_manifest(m, str(manifest64), f"s3://{BUCKET}/run")
    assert location.startswith(f"s3://{BUCKET}/run/data/") and staged.root == location.rsplit("/", 1)[0]
    prefix = location.removeprefix(f"s3://{BUCKET}/").rsplit("/", 1)[0]
    files = [k for k in s3_keys(s3, BUCKET, prefix) if not k.endswith("/")]  # not the folder markers
    assert len(files) == len(m.rows) + 1  # every row's image and the manifest
    rows = m.split("val")
    local_x, local_y = load_rows(m, rows, 32)
    remote_x, remote_y = load_rows(Manifest.load(location), rows, 32)  # read from S3 alone
    assert torch.equal(local_x, remote_x) and torch.equal(local_y, remote_y)
    gone = tmp_path / "gone"  # a second driver whose local images are elsewhere finds the staged copy
    shutil.copytree(manifest64.parent, gone)
    shutil.rmtree(gone / "data")
    again, location_again = publish_manifest(Manifest.load(gone / "manifest.json"), str(gone / "manifest.json"),
                                             f"s3://{BUCKET}/run")
    assert location_again == location and again.root == staged.root
    assert publish_manifest(m, str(manifest64), "") == (m, str(manifest64.resolve()))  # no storage: as it was


def test_checkpoints_and_images_load_from_s3_with_clear_errors(s3, manifest64, tmp_path):
    vae = AutoencoderKL(VAE_ARCHITECTURES["tiny"])
    save_vae(vae, tmp_path / "vae.pt", "tiny")
    uri = storage.publish(tmp_path / "vae.pt", f"s3://{BUCKET}/ckpt/vae.pt")
    assert load_vae(uri, "tiny").identity() == vae.identity()
    with pytest.raises(FileNotFoundError, match=f"s3://{BUCKET}/ckpt/none.pt not found"):
        load_vae(f"s3://{BUCKET}/ckpt/none.pt")
    m = Manifest.load(manifest64)
    image = storage.publish(Path(m.file(m.rows[0])), f"s3://{BUCKET}/img/a.png")
    assert open_image(image).size == open_image(m.file(m.rows[0])).size
    storage.write_bytes(f"s3://{BUCKET}/img/bad.png", b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(ImageReadError) as err:
        open_image(f"s3://{BUCKET}/img/bad.png")
    assert err.value.kind == "corrupt" and str(err.value.path) == f"s3://{BUCKET}/img/bad.png"
    with pytest.raises(ImageReadError, match="unreadable"):
        open_image(f"s3://{BUCKET}/img/missing.png")
    with pytest.raises(ValueError, match="cannot open storage location"):
        storage.exists("nosuchscheme://x/y")


def test_s3_filesystems_are_built_once_per_bucket_and_credentials(s3, monkeypatch):
    """One S3 client per bucket in a process (not one per file); the path inside it is the one pyarrow gives; other
    credentials get a filesystem of their own."""
    import pyarrow.fs as pafs

    uris = [f"s3://{BUCKET}/cache/a.bin", f"s3://{BUCKET}/cache/sub/b%20c.bin", f"s3://{BUCKET}/cache/dir/"]
    resolved = [storage.resolve(u) for u in uris]
    assert len({id(fs) for fs, _ in resolved}) == 1
    assert [path for _, path in resolved] == [pafs.FileSystem.from_uri(u)[1] for u in uris]
    storage.write_bytes(uris[1], b"x")
    assert storage.read_bytes(uris[1]) == b"x" and "cache/sub/b c.bin" in s3_keys(s3, BUCKET, "cache/")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "someone-else")
    assert storage.resolve(uris[0])[0] is not resolved[0][0]


def test_a_stored_manifest_is_verified_on_threads_and_once_per_pipeline(s3, manifest64):
    """Its files read IO_THREADS at a time from S3, in order: a changed and a missing object are each named;
    a manifest a pipeline checked before one stage is not read again before the next."""
    _, location = publish_manifest(Manifest.load(manifest64), str(manifest64), f"s3://{BUCKET}/verify")
    staged = Manifest.load(location)
    verified: set[str] = set()
    assert load_verified_manifest(location, verified).content_hash() in verified
    changed, gone = staged.rows[7], staged.rows[-1]
    storage.write_bytes(staged.file(changed), b"another image")
    storage.delete_file(staged.file(gone))
    assert load_verified_manifest(location, verified) == staged  # checked once already: not read again
    with pytest.raises(ValueError, match=rf"1 files missing \['{gone.path}'\], 1 files changed \['{changed.path}'\]"):
        load_verified_manifest(location)


def test_io_map_keeps_the_items_order_on_threads():
    def slow_square(i: int) -> int:
        time.sleep(0.02 * ((i * 7) % 5))  # later items often finish first
        return i * i

    assert list(storage.io_map(slow_square, range(40), remote=True)) == [i * i for i in range(40)]
    assert list(storage.io_map(slow_square, range(5), remote=False)) == [0, 1, 4, 9, 16]
