#!/usr/bin/env bash
# Create .venv and install mdaug in editable mode with its extras (dinov2, optuna, dev) at the versions tested
# together (constraints.txt; pyproject.toml states the ranges). Idempotent: a second run only re-checks.
# torch: on this project's machines pip's index serves a CPU build of torch 2.13.0 from local disk. With the
# normal PyPI index, `pip install torch==2.13.0` on Linux x86-64 pulls the CUDA 12.x build and its nvidia-*
# wheels (several GB); for a CPU-only environment set TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# (or .../whl/cu128 for CUDA 12.8) and torch comes from there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.mdaug-installed
want=$(cat pyproject.toml constraints.txt scripts/setup.sh | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip 2> >(grep -v "is ignored" >&2)
  .venv/bin/python -m pip install -q torch==2.13.0 ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} \
    2> >(grep -v "is ignored" >&2)
  .venv/bin/python -m pip install -q -c constraints.txt -e '.[dinov2,optuna,dev]' 2> >(grep -v "is ignored" >&2)
  echo "$want" > "$stamp"
fi
