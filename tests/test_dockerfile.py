"""docker/Dockerfile builds the images cluster.yaml and k8s/rayjob.yaml run: Ray's image of this Ray and Python as
its base, torch of the tested version from PyTorch's index for the variant (CUDA on the GPU image, CPU on the
head's), then the project with constraints.txt at the path cluster.yaml syncs the checkout to. No Docker daemon
here: each RUN that installs is run by bash for each variant with pip echoed, so the shell logic is what is tested.
Each check is run once more against broken copies, which it must refuse."""

from __future__ import annotations

import os
import re
import subprocess

import pytest
import ray
import yaml
from test_cluster_yaml import CLUSTER, IMAGE, PINS, PYPROJECT, PYTHON, REPO

DOCKERFILE = (REPO / "docker" / "Dockerfile").read_text()
DOCKERIGNORE = (REPO / ".dockerignore").read_text()


def installs(text: str, variant: str) -> list[list[str]]:
    """The arguments of each `python -m pip install` RUN, as bash expands them for --build-arg VARIANT=variant
    (the variable reaches RUN only when `ARG VARIANT` follows FROM)."""
    lines = [line for line in re.sub(r"\\\n\s*", " ", text).splitlines() if not line.startswith("#")]
    start = next(i for i, line in enumerate(lines) if line.startswith("FROM "))
    env = {"PATH": os.environ["PATH"]} | ({"VARIANT": variant} if "ARG VARIANT" in lines[start:] else {})
    out = []
    for line in lines[start:]:
        if line.startswith("RUN ") and "pip install" in line:
            cmd = line[4:].replace("python -m pip install", "printf '%s\\n'")
            out.append(subprocess.run(["bash", "-c", cmd], env=env, capture_output=True, text=True,
                                      check=True).stdout.split())
    return out


def check_dockerfile(text: str, ignore: str = DOCKERIGNORE) -> None:
    lines = [line.strip() for line in re.sub(r"\\\n\s*", " ", text).splitlines() if not line.startswith("#")]
    default = re.fullmatch(r"ARG VARIANT=(\w+)", lines[next(i for i, line in enumerate(lines) if "VARIANT" in line)])
    assert default and default[1] in ("cpu", "gpu"), "ARG VARIANT=cpu|gpu before FROM"
    base = [line for line in lines if line.startswith("FROM ")]
    assert base == [f"FROM rayproject/ray:{ray.__version__}-py{''.join(map(str, PYTHON))}-${{VARIANT}}"], base
    runs = [line for line in lines if line.startswith("RUN ")]
    assert f"sys.version_info[:2] == {PYTHON}" in runs[0] and f"'{ray.__version__}'" in runs[0], (
        "the first RUN checks the base image's Python and Ray versions")
    mount = next(remote for remote, local in yaml.safe_load(CLUSTER)["file_mounts"].items() if local == ".")
    copy = [line for line in lines if line.startswith("COPY ")]
    assert len(copy) == 1 and copy[0].endswith(f" . {mount}"), f"the checkout goes where cluster.yaml syncs it: {copy}"
    assert {".venv", ".git"} <= set(ignore.split()), ".dockerignore keeps the environment and history out"
    torch_pin = PINS["torch"]
    extras_known = set(PYPROJECT["project"]["optional-dependencies"])
    docker = yaml.safe_load(CLUSTER)["docker"]
    for image in (docker["head_image"], docker["worker_image"]):
        variant = IMAGE.fullmatch(image)["variant"]
        steps = installs(text, variant)
        torch = [s for s in steps if torch_pin in s]
        assert len(torch) == 1, f"{variant}: torch is installed once, as {torch_pin}: {steps}"
        index = torch[0][torch[0].index("--index-url") + 1]
        want = "cu128" if variant == "gpu" else "cpu"
        assert index == f"https://download.pytorch.org/whl/{want}", f"{variant} image: torch from {index}"
        project = [s for s in steps if "-e" in s]
        assert len(project) == 1 and steps.index(torch[0]) < steps.index(project[0]), "torch, then the project"
        args = project[0]
        constraints = args[args.index("-c") + 1] if "-c" in args else None
        assert constraints == f"{mount}/constraints.txt", f"{variant}: not installed with constraints ({constraints})"
        target = re.fullmatch(rf"{re.escape(mount)}\[([\w,]+)\]", args[args.index("-e") + 1])
        assert target, f"{variant}: the project is installed from {args[args.index('-e') + 1]}, not {mount}"
        extras = set(target[1].split(","))
        assert extras <= extras_known, f"extras pyproject.toml does not have: {extras - extras_known}"
        assert ("gpu" in extras) == (variant == "gpu"), f"{variant} image: the gpu extra {extras}"


def test_dockerfile_builds_the_images_the_cluster_runs():
    check_dockerfile(DOCKERFILE)


# Each a real defect: (text, its replacement, what the refusal must say).
BROKEN = {
    "python 3.10 base": ("-py311-${VARIANT}", "-py310-${VARIANT}", "py310"),
    "other ray": ("ray:2.60.0-py311", "ray:2.9.0-py311", "2.9.0"),
    "no constraints": ("-c /home/ray/mdaug/constraints.txt ", "", "not installed with constraints"),
    "cuda torch on the head": ("echo cu128 || echo cpu", "echo cu128 || echo cu128", "cpu image: torch from"),
    "unpinned torch": ("torch==2.13.0", "torch", "torch is installed once"),
    "variant lost after FROM": ("}\nARG VARIANT\n", "}\n", "gpu image: torch from"),
    "copied elsewhere": (" . /home/ray/mdaug", " . /opt/mdaug", "where cluster.yaml syncs it"),
    "no gpu extra": ("echo ,gpu", "echo", "gpu image: the gpu extra"),
    "unknown extra": ("dinov2,optuna", "dinov2,optuna,cuda", "cuda"),
    "no version check": ("assert sys.version_info[:2] == (3, 11) and ", "assert ", "Python and Ray versions"),
}


@pytest.mark.parametrize("name", BROKEN)
def test_a_broken_dockerfile_is_refused(name):
    old, new, reason = BROKEN[name]
    assert old in DOCKERFILE, f"mutation {name!r} no longer applies"
    with pytest.raises(AssertionError, match=re.escape(reason)):
        check_dockerfile(DOCKERFILE.replace(old, new))


def test_a_dockerignore_that_ships_the_environment_is_refused():
    with pytest.raises(AssertionError, match="environment and history"):
        check_dockerfile(DOCKERFILE, DOCKERIGNORE.replace(".venv\n", ""))
