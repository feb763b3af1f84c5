"""A Tune sweep of a trivial trainable through sweep_resume.resumable_tuner, on a local Ray with one CPU (trials
run one after another): one a test can SIGKILL between two trials and rerun. Each trial run touches
OUT/ran/TRIAL_ID-N; prints {"resumed": bool} last. python tests/tiny_sweep_job.py OUT TRIALS SECONDS"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import ray
from ray import tune

from mdaug.ray_mlflow.sweep_resume import resumable_tuner, tune_storage


def trial(config: dict, ran: str, seconds: float) -> None:
    trial_id = tune.get_context().get_trial_id()
    runs = len(list(Path(ran).glob(f"{trial_id}-*")))
    (Path(ran) / f"{trial_id}-{runs}").touch()
    time.sleep(seconds)
    tune.report({"x": config["a"]})


if __name__ == "__main__":
    out, trials, seconds = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    (out / "ran").mkdir(parents=True, exist_ok=True)
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)
    search = tune.search.basic_variant.BasicVariantGenerator(random_state=0)
    tuner, resumed = resumable_tuner(
        tune.with_resources(tune.with_parameters(trial, ran=str(out / "ran"), seconds=seconds), {"cpu": 1}),
        {"a": tune.uniform(0, 1)}, tune.TuneConfig(metric="x", mode="min", num_samples=trials, search_alg=search),
        tune_storage(out), {"trials": trials}, record_dir=out)
    tuner.fit()
    print(json.dumps({"resumed": resumed}))
