"""The GPU benchmark also runs at toy sizes on CPU, so it cannot rot unnoticed between GPU runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_gpu_throughput_tiny_on_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    run = subprocess.run([sys.executable, REPO / "bench" / "gpu_throughput.py", "--tiny", "--warmup", "0",
                          "--steps", "1", "--json", out], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    figures = json.loads(out.read_text())
    assert figures["dit_tiny_train_compile=False"]["img_s"] > 0
    assert figures["vae_tiny_autocast_eager"]["encode_img_s"] > 0
    assert figures["sampling"]["batched_img_s"] > 0
