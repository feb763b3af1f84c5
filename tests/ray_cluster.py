"""A multi-node Ray cluster on one machine for tests: a head with no CPUs (nothing runs there but the drivers'
coordination) and worker nodes started with `ray start --block`, each in its own mount namespace where a
tmpfs hides the given folders — a worker that is handed a path on the driver's disk cannot read it there."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from s3_server import free_port

BIN = Path(sys.executable).parent


def can_hide_folders() -> bool:
    """Whether this machine lets a process mount a tmpfs in a mount namespace of its own (root, unshare)."""
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", "mount -t tmpfs none /mnt"],
                           capture_output=True)
    return probe.returncode == 0


def _ports() -> list[str]:
    """Ports of one node: nodes on one machine must not share any."""
    return ["--node-manager-port", str(free_port()), "--object-manager-port", str(free_port()),
            "--dashboard-agent-listen-port", str(free_port()), "--dashboard-agent-grpc-port", str(free_port()),
            "--runtime-env-agent-port", str(free_port()), "--metrics-export-port", str(free_port())]


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:  # `ray start --block` ends its node's processes on SIGTERM
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    deadline = time.time() + 30
    for p in procs:
        try:
            p.wait(max(1.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def _wait_for_nodes(address: str, n: int, env: dict[str, str], seconds: float = 120) -> None:
    probe = ("import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR'); "
             "print(sum(1 for node in ray.nodes() if node['Alive']))")
    deadline = time.time() + seconds
    while True:
        run = subprocess.run([sys.executable, "-c", probe, address], env=env, capture_output=True, text=True)
        if run.returncode == 0 and run.stdout.strip().splitlines()[-1:] == [str(n)]:
            return
        assert time.time() < deadline, f"the cluster did not reach {n} nodes: {run.stdout[-500:]}{run.stderr[-2000:]}"
        time.sleep(2)


@contextmanager
def ray_cluster(env: dict[str, str], workers: int, cpus_per_worker: float, hide: list[Path],
                log_dir: Path) -> Iterator[dict[str, str]]:
    """Yields {"address": GCS address, "dashboard": its URL, "isolated": "1" if the hidden folders are hidden}.
    `env`: the environment of every node (storage credentials, MLflow server)."""
    port, dash = free_port(), free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen] = []

    def start(cmd: list[str], name: str) -> None:
        with open(log_dir / f"{name}.log", "w") as log:
            procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True))

    isolate = can_hide_folders()
    try:
        start([str(BIN / "ray"), "start", "--head", "--block", "--port", str(port), "--num-cpus", "0",
               "--num-gpus", "0", "--include-dashboard", "true", "--dashboard-host", "127.0.0.1",
               "--dashboard-port", str(dash), "--ray-client-server-port", str(free_port()), *_ports()], "head")
        address = f"127.0.0.1:{port}"
        _wait_for_nodes(address, 1, env)
        for i in range(workers):
            ray_start = [str(BIN / "ray"), "start", "--block", "--address", address, "--num-cpus",
                         str(cpus_per_worker), "--num-gpus", "0", *_ports()]
            if isolate:
                mounts = " && ".join(f"mount -t tmpfs none '{h}'" for h in hide)
                ray_start = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                             f"{mounts} && exec \"$@\"", "sh", *ray_start]
            start(ray_start, f"worker{i}")
            _wait_for_nodes(address, i + 2, env)  # one at a time: a node picks its socket files by what exists
        yield {"address": address, "dashboard": f"http://127.0.0.1:{dash}", "isolated": "1" if isolate else ""}
    finally:
        _stop(procs[::-1])
