"""`eval/augmentation_gain.py`: the generators' budgets and the leakage check, a hashed pre-registration written
before any training, the classifier's arm-blind step budget, every (classifier, arm, k, replicate, seed) trained
as a Ray task, one MLflow parent run with a child run per
training, the comparison table, figures, verdict and HTML report."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import ray
from mlflow.entities import Metric, Param
from tqdm import tqdm

from mdaug.assessment import read_quality
from mdaug.config import flatten
from mdaug.data.manifest import Manifest
from mdaug.evaluation.arms import check_plan, plan_runs, plan_sensitivity, primary_name
from mdaug.evaluation.budget import Budget, assign_generators
from mdaug.evaluation.config import EVAL_TAG, EvalConfig, k_label
from mdaug.evaluation.leakage import check_generators, check_leakage
from mdaug.evaluation.per_person import primary_person_gains
from mdaug.evaluation.plots import accuracy_vs_k, confusion_pair, per_person_gain, sample_grid
from mdaug.evaluation.preregistration import (
    canonical_json,
    count_looks,
    look_label,
    preregistration,
    replicate_seeds,
    test_split_hash,
    write_preregistration,
)
from mdaug.evaluation.report import write_report, write_tables
from mdaug.evaluation.scoring import RunResult, train_and_score
from mdaug.evaluation.sets import AddedKey, EvalData, ImageSet, load_eval_data, synthetic_info
from mdaug.evaluation.stats import ArmRow
from mdaug.evaluation.verdict import conclude
from mdaug.locks import locks_output
from mdaug.ray_mlflow.datasets import log_manifest_inputs
from mdaug.ray_mlflow.eval_placement import PlacedEvalData
from mdaug.ray_mlflow.preflight import check_placeable
from mdaug.ray_mlflow.ray_session import connect_ray
from mdaug.ray_mlflow.step_budget import StepBudget, choose_steps
from mdaug.ray_mlflow.tracking import DESCRIPTION, log_params, mlflow_run
from mdaug.secrets import redact
from mdaug.storage import absolute, write_text

SELECTION = ("selection beyond the k-subset (disclosed, not counted in the budget above): each DiT's checkpoint "
             "is chosen by its loss on the task's validation split, and the sampling settings by a sweep scored on "
             "that split (sweep.objective tstr: a classifier trained on the samples alone; frechet: the platform "
             "classifier, trained on the whole train split); the verdict's identity ratios use an independent judge")


@dataclass
class EvalOutcome:
    out: Path
    report: Path
    run_id: str
    rows: list[ArmRow]
    verdict: list[str]


def _metric_name(arm: str, k: str) -> str:
    return f"gain.{arm.replace('+', '_plus_').replace('@', '_at_').replace('/', '')}.k_{k}"


def _train(real: EvalData, key: AddedKey, added: ImageSet | None, spec, cfg: EvalConfig, steps: int) -> dict:
    return train_and_score(real.with_added(key, added), spec, cfg, steps, threads=int(cfg.cpus_per_run)).to_dict()


def _log_child(client, exp: str, parent: str, r: RunResult, index: int) -> None:
    s = r.spec
    factor = f" steps×{s.steps_factor:g}" if s.steps_factor != 1 else ""
    run = client.create_run(exp, run_name=f"{s.name} k={k_label(s.k)} {s.arch} rep={s.replicate} seed={s.seed}{factor}",
                            tags={"mlflow.parentRunId": parent, "kind": "evaluation-run"})
    now = int(time.time() * 1000)
    params = {"arm": s.arm, "arm_name": s.name, "k": k_label(s.k), "seed": s.seed, "ratio": s.ratio,
              "replicate": s.replicate, "classifier": s.arch, "train_seed": s.train_seed, "plan_index": index}
    metrics = {"accuracy": r.accuracy, "macro_f1": r.macro_f1, "train_images": r.train_images, "seconds": r.seconds}
    metrics |= {f"accuracy_label_{i}": v for i, v in enumerate(r.per_person) if not math.isnan(v)}
    client.log_batch(run.info.run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
                     params=[Param(k, str(v)) for k, v in params.items()])
    client.set_terminated(run.info.run_id, "FINISHED")


def _figures(data: EvalData, results: list[RunResult], rows: list[ArmRow], primary: str,
             out: Path) -> list[tuple[Path, str]]:
    first = results[0].spec  # the first k and classifier of the plan
    k0, arch = first.k, first.arch
    ours = [r for r in results if r.spec.arch == arch]
    gains = primary_person_gains(ours, primary, data.test.labels).get((arch, k0))
    title = f"{primary} vs real per person, k={k_label(k0)}, {arch}"
    per_person = [] if gains is None else [
        (per_person_gain(gains, data.person_of, title, out / "per_person_gain.png"),
         f"Per-person gain of the primary over real at k={k_label(k0)}, {arch} classifier: grey, each person's raw "
         "mean over their few test images; blue, shrunk toward the mean gain (dashed) by an empirical-Bayes model, "
         "with 95 % intervals")]
    return [
        (accuracy_vs_k([r for r in rows if r.arch == arch], out / "accuracy_vs_k.png"),
         f"Accuracy vs k per arm, {arch} classifier (bands: 95 % CI of the crossed model)"),
        *per_person,
        (confusion_pair(ours, ["real", primary], k0, out / "confusion.png"), "Confusion matrices, row-normalised"),
        (sample_grid(data, k0, out / "samples.png"), f"Real train images | generated images (k={k_label(k0)}, "
                                                     "replicate 0), one row per person"),
    ]


def _generators(budgets: dict[int, list[Budget]]) -> tuple[list[tuple[str, str]], dict, dict, dict]:
    """Report lines per k, verdict notes where a generator saw more than k, both judges' mean identity ratios
    per k, and how each k's arms name their generators."""
    lines, notes, identity, names = [], {}, {}, {}
    for k, replicates in budgets.items():
        independent, sweep = [], []
        for b in replicates:
            quality = read_quality(Path(b.folder))
            text = "; ".join([b.describe()] + [quality[key] for key in ("training_summary", "summary")
                                               if quality and quality.get(key)])
            lines.append((k_label(k), text))
            if quality:
                sweep.append(quality["identity_ratio"])
                independent.append(quality.get("independent_identity_ratio", math.nan))
        worst = [b for b in replicates if not b.equal]
        if worst:
            b = worst[0]
            most = max(b.seen.values(), default=0)
            notes[k_label(k)] = (f" — NOT an equal-budget comparison: its generator saw up to {most} real images "
                                 "per person" if not b.unverifiable else " — its generator's data is unknown")
        if sweep:
            identity[k_label(k)] = {"independent": float(sum(independent) / len(independent)),
                                    "sweep": float(sum(sweep) / len(sweep))}
        lines.append((k_label(k), SELECTION))
        budget = max((max(b.seen.values(), default=0) for b in replicates), default=0)
        names[k_label(k)] = f" (generators trained on {budget} real images per person, {len(replicates)} replicates)"
    return lines, notes, identity, names


def _design(budgets: dict[int, list[Budget]], data: EvalData, cfg: EvalConfig) -> dict:
    """The replicate design the pre-registration commits to (by content and folder name, not by path: the same
    design in another output folder hashes, and so seeds, the same)."""
    return {"generators": {k_label(k): [{"folder": Path(b.folder).name, "dit_sha256": data.synthetic_info[(k, r)].get(
                               "dit_sha256"), "subset_seed": data.subset_seeds[k][r]}
                                        for r, b in enumerate(bs)] for k, bs in budgets.items()},
            "classifier_seeds_per_replicate": cfg.seeds}


@locks_output("cfg.out", inside=False)  # .NAME.mdaug.lock beside it: the folder appears only when complete
def run_evaluation(cfg: EvalConfig, tracking_dir: Path | None = None, parent_run_id: str | None = None,
                   echo=print, resource_wait_s: float = 0.0, echo_verdict: bool = True) -> EvalOutcome:
    """`echo_verdict`: print the verdict's lines at the end (the pipeline prints them once, after its last stage).
    Everything is checked and the pre-registration written before any classifier trains; the report folder
    appears only when complete. A training task the cluster cannot place (cpus_per_run / gpus_per_run) is refused
    before any is started, after giving an autoscaling cluster resource_wait_s seconds to add a node."""
    out = Path(cfg.out).resolve()
    if out.exists():
        raise FileExistsError(f"{out} already exists; choose another --out or remove it")
    tracking_dir = Path(tracking_dir or out.parent).resolve()
    t0 = time.perf_counter()
    manifest = Manifest.load(Path(cfg.data))
    check_generators(manifest, [synthetic_info(Path(f)) for f in cfg.synthetic])
    assignment, budgets = assign_generators(manifest, list(cfg.synthetic), cfg.ks, cfg.allow_generator_extra_data)
    data = load_eval_data(cfg.data, assignment, cfg.oracle, cfg.image_size)
    plan = plan_runs(cfg, data.oracle is not None, data.replicates) + plan_sensitivity(cfg, data.replicates)
    notes = check_plan(data, plan)
    if data.oracle is None:
        notes.append("oracle arm skipped: no --oracle folder (only simulated data has fresh images of the same "
                     "persons); the ceiling of a perfect generator is unknown")
    for what, s in [("synthetic", s) for s in data.synthetic.values()] + [("oracle", data.oracle)]:
        if s is not None and s.skipped:
            notes.append(f"{s.skipped} unusable {what} files skipped (list them with `mdaug validate {s.root}`)")
    shared = [k_label(k) for k, seeds in data.subset_seeds.items() if len(seeds) > 1 and len(set(seeds)) == 1]
    if shared:
        notes.append(f"k={', '.join(shared)}: the generator replicates share one k-subset (the VA-VAE trained on the "
                     "task's images fixes it): the k-subset's variance is not replicated, only the DiT's seed and draw")
    fewest = min(data.replicates.values())
    if fewest < 2:
        notes.append("one generator per k: the between-generator variance is not estimated (the result holds for "
                     "this generator; the pipeline's generator_replicates trains more)")
    elif fewest < 4:
        notes.append(f"{fewest} generator replicates per k: the between-generator variance rests on {fewest - 1} "
                     "degree(s) of freedom and may be estimated as 0; a confirmatory run wants ≥ 4 "
                     "(generator_replicates)")
    for n in dict.fromkeys(notes):
        echo(f"note: {n}")
    connect_ray(cfg.cpus_per_run)
    check_placeable("an evaluation run", {"CPU": cfg.cpus_per_run, "GPU": cfg.gpus_per_run}, 1, resource_wait_s,
                    "cpus_per_run / gpus_per_run (the evaluation section)",
                    f"resource_wait_s=SECONDS (the pipeline's; now {resource_wait_s:g})")
    split_hash = test_split_hash(data.manifest)
    tmp = out.parent / f".{out.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    doc = preregistration(cfg, plan, split_hash, _design(budgets, data, cfg), data.manifest.content_hash())
    _, prereg_hash = write_preregistration(doc, tmp)
    # seeds from the plan's hash less its generator list (a DiT file names its folders: the same plan in another
    # output folder draws the same seeds); adding seeds changes every seed
    plan_hash = hashlib.sha256(canonical_json({k: v for k, v in doc.items() if k != "replicate_design"}).encode())
    base = replicate_seeds(plan_hash.hexdigest(), 1)[0]
    specs = plan_runs(cfg, data.oracle is not None, data.replicates, base) + plan_sensitivity(cfg, data.replicates,
                                                                                              base)
    tags = {"kind": EVAL_TAG, "manifest_hash": data.manifest.content_hash(), "test_split_hash": split_hash,
            "preregistration_sha256": prereg_hash,
            "dit_sha256": ",".join(sorted({str(i.get("dit_sha256")) for i in data.synthetic_info.values()}))}
    with mlflow_run(tracking_dir, cfg.experiment, "evaluation", tags, parent_run_id) as (client, run_id):
        exp = client.get_run(run_id).info.experiment_id
        look = look_label(count_looks(client, None, split_hash))  # this run is not finished: not counted
        echo(f"pre-registration {prereg_hash[:12]} written before any training; {look}")
        client.log_artifact(run_id, str(tmp / "preregistration.json"))
        placed = PlacedEvalData.put(data)
        steps, probe = choose_steps(placed.real, cfg, base, echo)
        leak = check_leakage(data, probe)
        echo(leak.summary())
        generators, budget_notes, identity, names = _generators(budgets)
        primary = primary_name(cfg)
        log_params(client, run_id, flatten(asdict(cfg)) | {"runs": len(specs), "test_images": len(data.test.paths),
                                                           "primary": primary, "seed_base": base}
                   | {f"steps_used.{a}": b.steps for a, b in steps.items()})
        client.set_tag(run_id, "leakage_check", "passed")
        write_text(tmp / "leakage.json", json.dumps(leak.to_dict(), indent=1))
        log_manifest_inputs(client, run_id, data.manifest, absolute(cfg.data),
                            {s: data.manifest.split(s) for s in ("train", "val", "test")})
        results = _run_all(placed, specs, cfg, steps, client, exp, run_id)
        context = {"primary": primary, "margin": cfg.margin, "budgets": budget_notes, "identity": identity,
                   "generators": names, "strata": data.test.labels.tolist(), "look": look,
                   "steps": {a: b.steps for a, b in steps.items()}}
        write_text(tmp / "results.json", json.dumps([r.to_dict() for r in results]))
        write_text(tmp / "context.json", json.dumps(context, indent=1))
        rows, lines = conclude(results, context)
        write_tables(rows, tmp)
        write_text(tmp / "verdict.txt", "\n".join(lines) + "\n")
        wall = time.perf_counter() - t0
        facts = {"data": cfg.data, "synthetic": ", ".join(cfg.synthetic), "oracle": str(cfg.oracle),
                 "test images": str(len(data.test.paths)), "trainings": str(len(specs)),
                 "steps per training": "; ".join(b.describe(cfg) for b in steps.values()),
                 "pre-registration": f"preregistration.json, sha256 {prereg_hash}; seed base {base}",
                 "classifier input": f"{data.test.images.shape[-1]}² px", "wall time": f"{wall:.0f} s",
                 "MLflow run": run_id, "leakage check": leak.summary()}
        main = [r for r in results if r.spec.steps_factor == 1]  # less the step-budget sensitivity runs
        report = write_report(tmp, rows, lines, _figures(data, main, rows, primary, tmp), facts, notes, generators)
        now = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(_metric_name(f"{r.arch}.{r.arm}", r.k), r.gain, now, 0)
                                          for r in rows if not math.isnan(r.gain)]
                         + [Metric("wall_time_s", wall, now, 0)])
        client.set_tag(run_id, "verdict", "\n".join(x for x in lines if " · primary " in x or x == look)[:5000])
        client.set_tag(run_id, DESCRIPTION, "\n".join(lines))
        client.log_artifacts(run_id, str(tmp))
        tmp.rename(out)
    if echo_verdict:
        for line in lines:
            echo(line)
    return EvalOutcome(out, out / report.name, run_id, rows, lines)


def _run_all(placed: PlacedEvalData, specs: list, cfg: EvalConfig, steps: dict[str, StepBudget], client, exp: str,
             run_id: str) -> list[RunResult]:
    """Every run as a Ray task (given the real sets and its own added set), each logged as a child run when it
    finishes; in plan order."""
    task = ray.remote(_train).options(num_cpus=cfg.cpus_per_run, num_gpus=cfg.gpus_per_run)
    pending = [task.remote(*placed.args(spec), spec, cfg, max(1, round(steps[spec.arch].steps * spec.steps_factor)))
               for spec in specs]
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
    return sorted(results, key=lambda r: order[r.spec])


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
