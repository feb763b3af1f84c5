"""A real S3-compatible server for tests: moto's server mode on a free local port, with a bucket."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BIN = Path(sys.executable).parent
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "mdaug-test", "AWS_SECRET_ACCESS_KEY": "mdaug-test",
               "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, proc: subprocess.Popen, what: str, seconds: float = 90) -> None:
    deadline = time.time() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            assert proc.poll() is None and time.time() < deadline, f"{what} did not start"
            time.sleep(0.3)


@contextmanager
def s3_server(bucket: str = "mdaug-test") -> Iterator[dict[str, str]]:
    """Yields the environment that points boto3, pyarrow and MLflow at the server (endpoint, credentials)."""
    port = free_port()
    proc = subprocess.Popen([BIN / "moto_server", "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{url}/moto-api/", proc, "moto_server")
        env = CREDENTIALS | {"AWS_ENDPOINT_URL": url, "MLFLOW_S3_ENDPOINT_URL": url}
        import boto3

        boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="mdaug-test",
                     aws_secret_access_key="mdaug-test").create_bucket(Bucket=bucket)
        yield env
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()


def s3_keys(env: dict[str, str], bucket: str, prefix: str = "") -> list[str]:
    """Every object key under prefix."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                      aws_access_key_id="mdaug-test", aws_secret_access_key="mdaug-test")
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys
