"""`jobs/pipeline.py` with the tests' small configuration (conftest.small_pipeline), as a process a test can
SIGKILL: python tests/small_pipeline_job.py OUT [STORAGE]."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from conftest import small_pipeline

from mdaug.pipeline import run_pipeline

if __name__ == "__main__":
    cfg = small_pipeline(Path(sys.argv[1]))
    run_pipeline(replace(cfg, storage=sys.argv[2]) if len(sys.argv) > 2 else cfg,
                 echo=lambda line: print(line, flush=True))
