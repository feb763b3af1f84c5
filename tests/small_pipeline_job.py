"""`jobs/pipeline.py` with the tests' small configuration (conftest.small_pipeline), as a process a test can
SIGKILL: python tests/small_pipeline_job.py OUT."""

from __future__ import annotations

import sys
from pathlib import Path

from conftest import small_pipeline

from mdaug.pipeline import run_pipeline

if __name__ == "__main__":
    run_pipeline(small_pipeline(Path(sys.argv[1])), echo=lambda line: print(line, flush=True))
