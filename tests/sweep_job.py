"""tuning/sweep_sampling.py on a local Ray with one CPU, so that its trials run one after another: a sweep a test
can SIGKILL between two trials. python tests/sweep_job.py SWEEP-ARGUMENTS..."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import ray

if __name__ == "__main__":
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)
    script = Path(__file__).resolve().parents[1] / "tuning" / "sweep_sampling.py"
    sys.argv = [str(script), *sys.argv[1:]]
    runpy.run_path(str(script), run_name="__main__")
