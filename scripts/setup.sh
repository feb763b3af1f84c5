#!/usr/bin/env bash
# Create .venv and install mdaug in editable mode with its extras (dinov2, optuna, dev; gpu where an NVIDIA driver
# is present) at the versions tested
# together (constraints.txt; pyproject.toml states the ranges). Idempotent: a second run only re-checks.
# torch 2.13.0: with TORCH_INDEX_URL set, from that index (e.g. https://download.pytorch.org/whl/cu128); on Linux
# with an NVIDIA driver, PyPI's build (CUDA 12.x, several GB); without one (or on a Mac), a CPU build: torch
# 2.13.0+cpu where pip's sources have it (this project's machines: a local wheel), else PyTorch's CPU index.
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
  pip_q() { .venv/bin/python -m pip install -q "$@" 2> >(grep -v "is ignored" >&2); }
  if [ -n "${TORCH_INDEX_URL:-}" ]; then
    pip_q torch==2.13.0 --index-url "$TORCH_INDEX_URL"
  elif [ "$(uname)" = Darwin ] || command -v nvidia-smi >/dev/null || [ -e /proc/driver/nvidia ]; then
    pip_q torch==2.13.0
  elif ! .venv/bin/python -m pip install -q torch==2.13.0+cpu 2>/dev/null; then
    echo "no NVIDIA driver: torch 2.13.0 CPU build from https://download.pytorch.org/whl/cpu" >&2
    pip_q torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
  fi
  extras=dinov2,optuna,dev
  if command -v nvidia-smi >/dev/null || [ -e /proc/driver/nvidia ]; then extras=$extras,gpu; fi
  .venv/bin/python -m pip install -q -c constraints.txt -e ".[$extras]" 2> >(grep -v "is ignored" >&2)
  echo "$want" > "$stamp"
fi
