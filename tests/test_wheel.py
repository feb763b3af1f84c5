"""The wheel works outside the checkout: built from this tree, installed into a fresh virtual environment (its
dependencies borrowed from this one's site-packages, so nothing is downloaded), its commands answer --help and
`mdaug simulate` runs with the packaged configuration from an empty folder (about 10 s)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMANDS = ["mdaug", "mdaug-pipeline", "mdaug-train", "mdaug-generate", "mdaug-sweep", "mdaug-evaluate",
            "mdaug-compare"]


def test_the_wheel_installs_and_runs_outside_the_checkout(tmp_path):
    source, wheels = tmp_path / "source", tmp_path / "wheels"  # a copy: the build writes build/ into its source
    shutil.copytree(REPO, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(source),
                    "-w", str(wheels)], check=True, capture_output=True, cwd=tmp_path, timeout=300)
    wheel = next(wheels.glob("mdaug-*.whl"))
    env_dir = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True, timeout=120)
    python, bin_dir = env_dir / "bin" / "python", env_dir / "bin"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    # a plain path entry: this environment's packages import, its .pth files (the editable mdaug) do not run
    (site / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
                   check=True, capture_output=True, timeout=300)
    empty = tmp_path / "empty"
    empty.mkdir()
    where = subprocess.run([python, "-c", "import mdaug.config as c; print(c.__file__); print(c.config_file('tiny'))"],
                           check=True, capture_output=True, text=True, cwd=empty).stdout.split()
    assert all(Path(p).is_relative_to(site) for p in where), where  # the wheel's code and configuration
    for command in COMMANDS:
        run = subprocess.run([bin_dir / command, "--help"], capture_output=True, text=True, cwd=empty, timeout=60)
        assert run.returncode == 0 and "usage:" in run.stdout, (command, run.stderr[-2000:])
    made = subprocess.run([bin_dir / "mdaug", "simulate", "--out", "data", "persons=2", "per_person=2", "size=32"],
                          capture_output=True, text=True, cwd=empty, timeout=300)
    assert made.returncode == 0, made.stderr[-2000:]
    assert sorted(p.name for p in (empty / "data").glob("ID_*")) == ["ID_1", "ID_2"]
    refused = subprocess.run([bin_dir / "mdaug-pipeline", "--out", "runs", "sweep.trials=-1"], capture_output=True,
                             text=True, cwd=empty, timeout=120)
    assert refused.returncode == 2 and "pipeline: error: sweep.trials=-1" in refused.stderr, refused.stderr
    assert sorted(p.name for p in empty.iterdir()) == ["data"]
