"""`eval/augmentation_gain.py`: the generators' budgets and the leakage check, the classifier's step budget
from a convergence probe, every (arm, k, seed) trained as a Ray task, one MLflow parent run with a child run per
training, the comparison table, figures, verdict and HTML report."""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import ray
import torch
from mlflow.entities import Metric, Param
from tqdm import tqdm

from mdaug.assessment import read_quality
from mdaug.config import flatten
from mdaug.data.manifest import Manifest
from mdaug.evaluation.arms import ORACLE, RunSpec, check_plan, plan_runs, primary_name, training_set
from mdaug.evaluation.budget import Budget, assign_generators
from mdaug.evaluation.config import EvalConfig, k_label
from mdaug.evaluation.leakage import check_generators, check_leakage
from mdaug.evaluation.plots import accuracy_vs_k, confusion_pair, per_person_gain, sample_grid
from mdaug.evaluation.report import write_report, write_tables
from mdaug.evaluation.scoring import RunResult, train_and_score, train_run
from mdaug.evaluation.sets import EvalData, load_eval_data, synthetic_info
from mdaug.evaluation.stats import ArmRow, summarize
from mdaug.evaluation.verdict import verdict
from mdaug.locks import locks_output
from mdaug.models.classifier import PersonClassifier
from mdaug.ray_mlflow.datasets import log_manifest_inputs
from mdaug.ray_mlflow.preflight import check_placeable
from mdaug.ray_mlflow.ray_session import connect_ray
from mdaug.ray_mlflow.tracking import DESCRIPTION, log_params, mlflow_run
from mdaug.secrets import redact
from mdaug.storage import absolute, write_text
from mdaug.training.classifier import accuracy

EVAL_TAG = "evaluation"


@dataclass
class EvalOutcome:
    out: Path
    report: Path
    run_id: str
    rows: list[ArmRow]
    verdict: list[str]


def _metric_name(arm: str, k: str) -> str:
    return f"gain.{arm.replace('+', '_plus_').replace('@', '_at_').replace('/', '')}.k_{k}"


def _train(data, spec, cfg: EvalConfig, steps: int) -> dict:
    return train_and_score(data, spec, cfg, steps, threads=int(cfg.cpus_per_run)).to_dict()


def _probe(data, spec, cfg: EvalConfig, steps: int) -> tuple[float, dict]:
    """Validation accuracy of the spec's classifier after `steps` steps (never a test image)."""
    torch.set_num_threads(max(1, int(cfg.cpus_per_run)))
    net, _ = train_run(data, spec, cfg, steps)
    return accuracy(net, data.val.images, data.val.labels), {"config": net.config, "state": net.state_dict()}


def choose_steps(data_ref, data: EvalData, specs: list[RunSpec], cfg: EvalConfig,
                 echo) -> tuple[int, list, bool, object]:
    """The step budget every arm trains with: start at cfg.steps and double while doubling still raises the
    validation accuracy of the largest arm (most training images, first seed) by more than
    cfg.convergence_points, up to cfg.max_steps. Returns (steps, [(steps, val accuracy)], whether the last
    doubling stayed within cfg.convergence_points, the probe's net)."""
    largest = max((s for s in specs if s.seed == 0), key=lambda s: len(training_set(data, s)[1]))
    task = ray.remote(_probe).options(num_cpus=cfg.cpus_per_run, num_gpus=cfg.gpus_per_run)
    steps = cfg.steps
    curve: dict[int, tuple[float, dict]] = {}
    while True:
        todo = [n for n in (steps, 2 * steps) if n not in curve and n <= max(cfg.max_steps, steps)]
        for n, r in zip(todo, ray.get([task.remote(data_ref, largest, cfg, n) for n in todo]), strict=True):
            curve[n] = r
        if 2 * steps not in curve or not cfg.converge or \
                (curve[2 * steps][0] - curve[steps][0]) * 100 <= cfg.convergence_points:
            break
        steps *= 2
    converged = 2 * steps in curve and (curve[2 * steps][0] - curve[steps][0]) * 100 <= cfg.convergence_points
    points = sorted((n, acc) for n, (acc, _) in curve.items())
    echo(f"classifier budget: {steps} steps (validation accuracy of {largest.name} at k={k_label(largest.k)}: "
         + ", ".join(f"{acc:.1%} after {n}" for n, acc in points)
         + ("" if converged else f"; NOT converged within {cfg.max_steps} steps") + ")")
    net = PersonClassifier(curve[steps][1]["config"])
    net.load_state_dict(curve[steps][1]["state"])
    return steps, points, converged, net.eval()


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


def _figures(data: EvalData, results: list[RunResult], rows: list[ArmRow], primary: str,
             out: Path) -> list[tuple[Path, str]]:
    k0 = results[0].spec.k  # the first k of the plan
    shown = [primary] + [r.arm for r in rows if r.k == k_label(k0) and r.arm.startswith(ORACLE)]
    return [
        (accuracy_vs_k(rows, out / "accuracy_vs_k.png"), "Accuracy vs k per arm (bands: 95 % bootstrap CI)"),
        (per_person_gain(results, shown, k0, data.person_of, out / "per_person_gain.png"),
         f"Per-person accuracy gain over real at k={k_label(k0)}"),
        (confusion_pair(results, ["real", primary], k0, out / "confusion.png"), "Confusion matrices, row-normalised"),
        (sample_grid(data, k0, out / "samples.png"), f"Real train images | generated images (k={k_label(k0)}), "
                                                     "one row per person"),
    ]


def _generators(budgets: dict[int, Budget], data: EvalData) -> tuple[list[tuple[str, str]], dict, dict]:
    """Report lines per k, verdict notes where a generator saw more than k, identity ratios per k."""
    lines, notes, identity = [], {}, {}
    for k, b in budgets.items():
        quality = read_quality(Path(b.folder))
        text = "; ".join([b.describe()] + [quality[k] for k in ("training_summary", "summary")
                                           if quality and quality.get(k)])
        lines.append((k_label(k), text))
        if not b.equal:
            most = max(b.seen.values(), default=0)
            notes[k_label(k)] = (f" — NOT an equal-budget comparison: its generator saw up to {most} real images "
                                 "per person" if not b.unverifiable else " — its generator's data is unknown")
        if quality:
            identity[k_label(k)] = quality["identity_ratio"]
    return lines, notes, identity


@locks_output("cfg.out", inside=False)  # .NAME.mdaug.lock beside it: the folder appears only when complete
def run_evaluation(cfg: EvalConfig, tracking_dir: Path | None = None, parent_run_id: str | None = None,
                   echo=print, resource_wait_s: float = 0.0) -> EvalOutcome:
    """Everything is checked before any test image is scored; the report folder appears only when complete.
    A training task the cluster cannot place (cpus_per_run / gpus_per_run) is refused before any is started,
    after giving an autoscaling cluster resource_wait_s seconds to add a node."""
    out = Path(cfg.out).resolve()
    if out.exists():
        raise FileExistsError(f"{out} already exists; choose another --out or remove it")
    tracking_dir = Path(tracking_dir or out.parent).resolve()
    t0 = time.perf_counter()
    manifest = Manifest.load(Path(cfg.data))
    check_generators(manifest, [synthetic_info(Path(f)) for f in cfg.synthetic])
    assignment, budgets = assign_generators(manifest, list(cfg.synthetic), cfg.ks, cfg.allow_generator_extra_data)
    data = load_eval_data(cfg.data, assignment, cfg.oracle, cfg.image_size)
    specs = plan_runs(cfg, data.oracle is not None)
    notes = check_plan(data, specs)
    if data.oracle is None:
        notes.append("oracle arm skipped: no --oracle folder (only simulated data has fresh images of the same "
                     "persons); the ceiling of a perfect generator is unknown")
    for what, s in [("synthetic", s) for s in data.synthetic.values()] + [("oracle", data.oracle)]:
        if s is not None and s.skipped:
            notes.append(f"{s.skipped} unusable {what} files skipped (list them with `mdaug validate {s.root}`)")
    for n in dict.fromkeys(notes):
        echo(f"note: {n}")
    connect_ray(cfg.cpus_per_run)
    check_placeable("an evaluation run", {"CPU": cfg.cpus_per_run, "GPU": cfg.gpus_per_run}, 1, resource_wait_s,
                    "cpus_per_run / gpus_per_run (the evaluation section)",
                    f"resource_wait_s=SECONDS (the pipeline's; now {resource_wait_s:g})")
    data_ref = ray.put(data)
    steps, curve, converged, probe = choose_steps(data_ref, data, specs, cfg, echo)
    leak = check_leakage(data, probe)
    echo(leak.summary())
    generators, budget_notes, identity = _generators(budgets, data)
    primary = primary_name(cfg)
    tmp = out.parent / f".{out.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tags = {"kind": EVAL_TAG, "manifest_hash": data.manifest.content_hash(), "leakage_check": "passed",
            "dit_sha256": ",".join(sorted({str(i.get("dit_sha256")) for i in data.synthetic_info.values()}))}
    with mlflow_run(tracking_dir, cfg.experiment, "evaluation", tags, parent_run_id) as (client, run_id):
        log_params(client, run_id, flatten(asdict(cfg)) | {"runs": len(specs), "test_images": len(data.test.paths),
                                                           "steps_used": steps, "primary": primary,
                                                           "converged": converged})
        write_text(tmp / "leakage.json", json.dumps(leak.to_dict(), indent=1))
        exp = client.get_run(run_id).info.experiment_id
        log_manifest_inputs(client, run_id, data.manifest, absolute(cfg.data),
                            {s: data.manifest.split(s) for s in ("train", "val", "test")})
        task = ray.remote(_train).options(num_cpus=cfg.cpus_per_run, num_gpus=cfg.gpus_per_run)
        pending = [task.remote(data_ref, spec, cfg, steps) for spec in specs]
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
        context = {"primary": primary, "bootstrap": cfg.bootstrap, "budgets": budget_notes, "identity": identity}
        write_text(tmp / "results.json", json.dumps([r.to_dict() for r in results]))
        write_text(tmp / "context.json", json.dumps(context, indent=1))
        rows = summarize(results, primary, cfg.bootstrap)
        lines = verdict(rows, budget_notes, identity)
        write_tables(rows, tmp)
        write_text(tmp / "verdict.txt", "\n".join(lines) + "\n")
        wall = time.perf_counter() - t0
        facts = {"data": cfg.data, "synthetic": ", ".join(cfg.synthetic), "oracle": str(cfg.oracle),
                 "test images": str(len(data.test.paths)), "trainings": str(len(specs)),
                 "steps per training": f"{steps} (convergence probe: " + ", ".join(
                     f"{a:.1%} after {n}" for n, a in curve) + " validation accuracy; "
                 + ("converged" if converged else "not converged: raise max_steps") + ")",
                 "classifier input": f"{data.test.images.shape[-1]}² px", "wall time": f"{wall:.0f} s",
                 "MLflow run": run_id, "leakage check": leak.summary()}
        report = write_report(tmp, rows, lines, _figures(data, results, rows, primary, tmp), facts, notes,
                              generators)
        now = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(_metric_name(r.arm, r.k), r.gain, now, 0) for r in rows
                                          if not math.isnan(r.gain)]
                         + [Metric("wall_time_s", wall, now, 0), Metric("steps_used", steps, now, 0)])
        client.set_tag(run_id, "verdict", lines[0][:5000] if lines else "")
        client.set_tag(run_id, DESCRIPTION, "\n".join(lines))
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
        raise ValueError(f"no MLflow experiment {experiment!r} at {redact(client.tracking_uri)}")
    runs = client.search_runs([exp.experiment_id], f"tags.kind = '{EVAL_TAG}' and attributes.status = 'FINISHED'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        raise ValueError(f"experiment {experiment!r} holds no finished evaluation run")
    return runs[0]


def results_from_mlflow(client, parent) -> tuple[list[RunResult], dict]:
    """The per-run results (with per-image outcomes) and the verdict's context, from the run's artifacts."""
    with tempfile.TemporaryDirectory() as tmp:
        results = json.loads(Path(client.download_artifacts(parent.info.run_id, "results.json", tmp)).read_text())
        context = json.loads(Path(client.download_artifacts(parent.info.run_id, "context.json", tmp)).read_text())
    return [RunResult.from_dict(r) for r in results], context
