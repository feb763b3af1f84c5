"""No recipe a user runs (README's bash blocks, cluster.yaml, the k8s manifests, scripts/) puts a password, secret or
token on a command line or in a Ray runtime env (`ps`, the job's stored state and the dashboard show those); the
scanner is checked on lines it must catch."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CLUSTER = (REPO / "cluster.yaml").read_text()

# NAME=value or NAME: value for a name that says secret, and kubectl's --from-literal (a value on the command line)
SECRET_ASSIGNMENT = re.compile(r"(?i)\b(\w*(?:password|secret|token)\w*)=(\S+)")  # NAME=value
SECRET_KEY = re.compile(r"""(?i)(?:^\s*-?\s*|["'])(\w*(?:password|secret|token)\w*)["']?:\s*(\S+)""")  # YAML/JSON
# what may stand on the right: a reference to the environment or a secret object, a file, a fresh random value,
# a printf format that writes a file
ALLOWED_VALUE = re.compile(r"""^["']?(\$|~/|/home/ray/|\./|\{secretKeyRef|' \+ secrets\.|secrets\.|%s|_env\(|"""
                           r"""os\.environ)""")
# a comment that lists a file's content (NAME=YOUR-PLACEHOLDER alone on its line), not a command
FILE_CONTENT = re.compile(r"^\s*#\s*\w+=YOUR-[\w-]+\s*(#.*)?$")


def _recipe_texts() -> dict[str, str]:
    """What a user runs: README's bash blocks, cluster.yaml, the k8s manifests, scripts/."""
    readme = (REPO / "README.md").read_text()
    texts = {f"README.md bash block {i}": block
             for i, block in enumerate(re.findall(r"```bash\n(.*?)```", readme, re.S))}
    texts["cluster.yaml"] = CLUSTER
    texts |= {str(p.relative_to(REPO)): p.read_text() for p in sorted((REPO / "k8s").glob("*.yaml"))}
    texts |= {str(p.relative_to(REPO)): p.read_text() for p in sorted((REPO / "scripts").iterdir()) if p.is_file()}
    return texts


def secrets_on_command_lines(texts: dict[str, str]) -> list[str]:
    found = []
    for where, text in texts.items():
        for n, line in enumerate(text.splitlines(), 1):
            if "--runtime-env-json" in line or "runtime_env" in line.lower() and "env_vars" in line:
                if re.search(r"(?i)password|secret|token", line):
                    found.append(f"{where}:{n}: a secret in a runtime env: {line.strip()}")
            if "--from-literal" in line and re.search(r"(?i)password|token|secret", line):
                found.append(f"{where}:{n}: kubectl --from-literal puts the value on the command line")
            if FILE_CONTENT.match(line):
                continue
            for name, value in SECRET_ASSIGNMENT.findall(line) + SECRET_KEY.findall(line):
                if name.upper() in {"RAY_AUTH_TOKEN_PATH", "SECRETNAME", "SECRETKEYREF"} or ALLOWED_VALUE.match(value):
                    continue
                if value.strip("'\"") in {"", "{", "token"} or value.startswith(("mdaug-", "{name:")):
                    continue  # a mode, a Secret's name, a YAML map
                found.append(f"{where}:{n}: {name}={value}")
    return found


def test_no_recipe_puts_a_secret_on_a_command_line_or_in_a_runtime_env():
    found = secrets_on_command_lines(_recipe_texts())
    assert not found, "\n".join(found)


@pytest.mark.parametrize("line", [
    "ray job submit --runtime-env-json '{\"env_vars\": {\"MLFLOW_TRACKING_PASSWORD\": \"x\"}}' -- python x.py",
    "kubectl create secret generic m --from-literal=password=hunter2hunter2",
    "MLFLOW_TRACKING_PASSWORD=hunter2hunter2 python jobs/train.py",
    "export RAY_AUTH_TOKEN=abcdef0123456789 && ray start --head",
    "      MLFLOW_TRACKING_PASSWORD: \"x\"",
])
def test_the_secret_scanner_finds_a_secret(line):
    assert secrets_on_command_lines({"t": line}), line
