"""README's local `ray start --head` + `ray job submit` recipe, run verbatim with Ray's token authentication on
(the rest of the suite disables it). Named to run last: the recipe's `ray stop` ends every Ray process on the
machine."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def readme_recipe() -> str:
    """The bash block after README's <!-- job-submit-recipe --> marker."""
    text = (REPO / "README.md").read_text()
    match = re.search(r"<!-- job-submit-recipe -->\n```bash\n(.*?)```", text, flags=re.S)
    assert match, "README.md lost its job-submit recipe"
    return match.group(1)


@pytest.fixture()
def demo():
    import ray

    ray.shutdown()  # the session's in-process Ray, if any: the recipe owns the machine's Ray from here on
    out = REPO / "runs" / "job-demo"
    shutil.rmtree(out, ignore_errors=True)
    yield out
    subprocess.run([BIN / "ray", "stop", "--force"], capture_output=True, timeout=120)
    shutil.rmtree(out, ignore_errors=True)


def test_readme_job_submit_recipe_trains_the_vae_with_token_auth(demo, tmp_path):
    recipe = readme_recipe()
    assert "RAY_AUTH_MODE=token" in recipe and "disabled" not in recipe
    home = tmp_path / "home"  # a machine that has no ~/.ray/auth_token yet
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_ADDRESS")} | {"HOME": str(home)}
    run = subprocess.run(["bash", "-euo", "pipefail", "-c", recipe], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=540)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "succeeded" in run.stdout
    assert (demo / "train" / "vae" / "vae.pt").is_file()
    assert (home / ".ray" / "auth_token").is_file()
    client = MlflowClient(f"sqlite:///{demo / 'train' / 'mlflow.db'}")
    run = client.search_runs([client.get_experiment_by_name("mdaug").experiment_id])[0]
    assert run.info.status == "FINISHED" and run.data.tags["stage"] == "vae"
