"""`eval/augmentation_gain.py`: leakage check, every (arm, k, seed) trained as a Ray task, one MLflow parent
run with a child run per training, the comparison table, figures, verdict and HTML report."""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import ray
from mlflow.entities import Metric, Param
from tqdm import tqdm

from mdaug.cluster.config import flatten
from mdaug.cluster.ray_session import connect_ray
from mdaug.cluster.tracking import log_params, mlflow_run
from mdaug.evaluation.arms import ORACLE, check_plan, is_generated_arm, plan_runs
from mdaug.evaluation.config import EvalConfig, k_label
from mdaug.evaluation.leakage import check_leakage
from mdaug.evaluation.plots import accuracy_vs_k, confusion_pair, per_person_gain, sample_grid
from mdaug.evaluation.report import write_report, write_tables
from mdaug.evaluation.scoring import RunResult, train_and_score
from mdaug.evaluation.sets import load_eval_data
from mdaug.evaluation.stats import ArmRow, summarize, verdict

EVAL_TAG = "evaluation"


@dataclass
class EvalOutcome:
    out: Path
    report: Path
    run_id: str
    rows: list[ArmRow]
    verdict: list[str]


def _metric_name(arm: str, k: str) -> str:
    return f"gain.{arm.replace('+', '_plus_').replace('@', '_at_')}.k_{k}"


def _train(data, spec, cfg: EvalConfig) -> dict:
    warnings.filterwarnings("ignore", message=".*treespec.*")  # Lightning's own deprecation notice, per run
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    return train_and_score(data, spec, cfg, threads=int(cfg.cpus_per_run)).to_dict()


def _log_child(client, exp: str, parent: str, r: RunResult, index: int) -> None:
    s = r.spec
    run = client.create_run(exp, run_name=f"{s.name} k={k_label(s.k)} seed={s.seed}",
                            tags={"mlflow.parentRunId": parent, "kind": "evaluation-run"})
    now = int(time.time() * 1000)
    params = {"arm": s.arm, "arm_name": s.name, "k": k_label(s.k), "seed": s.seed, "ratio": s.ratio,
              "plan_index": index}
    metrics = {"accuracy": r.accuracy, "macro_f1": r.macro_f1, "train_images": r.train_images, "seconds": r.seconds}
    metrics |= {f"accuracy_label_{i}": v for i, v in enumerate(r.per_person) if not math.isnan(v)}
    client.log_batch(run.info.run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
                     params=[Param(k, str(v)) for k, v in params.items()])
    client.set_terminated(run.info.run_id, "FINISHED")


def _figures(data, results: list[RunResult], rows: list[ArmRow], out: Path) -> list[tuple[Path, str]]:
    k0 = results[0].spec.k  # the first k of the plan
    at_k0 = [r for r in rows if r.k == k_label(k0)]
    synth = [r for r in at_k0 if is_generated_arm(r.arm)]
    best = max(synth, key=lambda r: r.gain).arm
    shown = [best] + [r.arm for r in at_k0 if r.arm.startswith(ORACLE)]
    return [
        (accuracy_vs_k(rows, out / "accuracy_vs_k.png"), "Accuracy vs k per arm (bands: 95 % CI over seeds)"),
        (per_person_gain(results, shown, k0, data.person_of, out / "per_person_gain.png"),
         f"Per-person accuracy gain over real at k={k_label(k0)}"),
        (confusion_pair(results, ["real", best], k0, out / "confusion.png"), "Confusion matrices, row-normalised"),
        (sample_grid(data, out / "samples.png"), "Real train images | generated images, one row per person"),
    ]


def run_evaluation(cfg: EvalConfig, tracking_dir: Path | None = None, parent_run_id: str | None = None,
                   echo=print) -> EvalOutcome:
    """Everything is checked before training; the report folder appears only when complete."""
    out = Path(cfg.out).resolve()
    if out.exists():
        raise FileExistsError(f"{out} already exists; choose another --out or remove it")
    tracking_dir = Path(tracking_dir or out.parent).resolve()
    t0 = time.perf_counter()
    data = load_eval_data(cfg.data, cfg.synthetic, cfg.oracle, cfg.image_size)
    leak = check_leakage(data)
    echo(leak.summary())
    specs = plan_runs(cfg, data.oracle is not None)
    notes = check_plan(data, specs)
    if data.oracle is None:
        notes.append("oracle arm skipped: no --oracle folder (only simulated data has fresh images of the same "
                     "persons); the ceiling of a perfect generator is unknown")
    for what, s in (("synthetic", data.synthetic), ("oracle", data.oracle)):
        if s is not None and s.skipped:
            notes.append(f"{s.skipped} unusable {what} files skipped (list them with `mdaug validate {s.root}`)")
    for n in notes:
        echo(f"note: {n}")
    connect_ray(cfg.cpus_per_run)
    tmp = out.parent / f".{out.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tags = {"kind": EVAL_TAG, "manifest_hash": data.manifest.content_hash(),
            "dit_sha256": str(data.synthetic_info.get("dit_sha256")), "leakage_check": "passed"}
    with mlflow_run(tracking_dir, cfg.experiment, "evaluation", tags, parent_run_id) as (client, run_id):
        log_params(client, run_id, flatten(asdict(cfg)) | {"runs": len(specs), "test_images": len(data.test.paths)})
        (tmp / "leakage.json").write_text(json.dumps(leak.to_dict(), indent=1))
        exp = client.get_run(run_id).info.experiment_id
        data_ref = ray.put(data)
        task = ray.remote(_train).options(num_cpus=cfg.cpus_per_run, num_gpus=cfg.gpus_per_run)
        pending = [task.remote(data_ref, spec, cfg) for spec in specs]
        index = {ref: i for i, ref in enumerate(pending)}
        results: list[RunResult] = []
        try:
            with tqdm(total=len(pending), desc="evaluate", unit="run") as bar:
                while pending:
                    done, pending = ray.wait(pending, num_returns=1)
                    r = RunResult.from_dict(ray.get(done[0]))
                    _log_child(client, exp, run_id, r, index[done[0]])
                    results.append(r)
                    bar.update(1)
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
        order = {s: i for i, s in enumerate(specs)}
        results.sort(key=lambda r: order[r.spec])
        (tmp / "results.json").write_text(json.dumps([r.to_dict() for r in results]))
        rows = summarize(results)
        lines = verdict(rows)
        write_tables(rows, tmp)
        (tmp / "verdict.txt").write_text("\n".join(lines) + "\n")
        wall = time.perf_counter() - t0
        facts = {"data": cfg.data, "synthetic": cfg.synthetic, "oracle": str(cfg.oracle),
                 "test images": str(len(data.test.paths)), "trainings": str(len(specs)),
                 "steps per training": str(cfg.steps), "classifier input": f"{data.test.images.shape[-1]}² px",
                 "wall time": f"{wall:.0f} s", "MLflow run": run_id, "leakage check": leak.summary()}
        report = write_report(tmp, rows, lines, _figures(data, results, rows, tmp), facts, notes)
        client.log_batch(run_id, metrics=[Metric(_metric_name(r.arm, r.k), r.gain, 0, 0) for r in rows
                                          if not math.isnan(r.gain)]
                         + [Metric("wall_time_s", wall, 0, 0)])
        client.set_tag(run_id, "verdict", lines[0][:5000] if lines else "")
        client.log_artifacts(run_id, str(tmp))
        tmp.rename(out)
    for line in lines:
        echo(line)
    return EvalOutcome(out, out / report.name, run_id, rows, lines)


def latest_evaluation(client, experiment: str, run_id: str | None = None):
    """The given evaluation run, or the newest finished one of the experiment."""
    if run_id:
        return client.get_run(run_id)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise ValueError(f"no MLflow experiment {experiment!r} at {client.tracking_uri}")
    runs = client.search_runs([exp.experiment_id], f"tags.kind = '{EVAL_TAG}' and attributes.status = 'FINISHED'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        raise ValueError(f"experiment {experiment!r} holds no finished evaluation run")
    return runs[0]


def results_from_mlflow(client, parent) -> list[RunResult]:
    """Rebuild the per-run results of an evaluation from its child runs."""
    from mdaug.evaluation.arms import RunSpec

    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
                                  max_results=50000)
    out = []
    for c in sorted(children, key=lambda c: int(c.data.params["plan_index"])):
        p, m = c.data.params, c.data.metrics
        spec = RunSpec(p["arm"], 0 if p["k"] == "all" else int(p["k"]), int(p["seed"]), float(p["ratio"]))
        out.append(RunResult(spec, m["accuracy"], m["macro_f1"], [], [], int(m["train_images"]), m["seconds"]))
    return out

