#!/usr/bin/env bash
# Create .venv with pinned versions (../shared/STACK.md) and install mdaug in editable mode.
# Idempotent: a second run only re-checks. torch goes in first and pinned, so no CUDA build is pulled.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.mdaug-installed
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip 2> >(grep -v "is ignored" >&2)
  .venv/bin/python -m pip install -q torch==2.13.0 2> >(grep -v "is ignored" >&2)
  .venv/bin/python -m pip install -q -e '.[dev]' 2> >(grep -v "is ignored" >&2)
  echo "$want" > "$stamp"
fi
