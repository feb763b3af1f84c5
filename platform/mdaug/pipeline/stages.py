"""What each pipeline stage does. Every stage reads and writes fixed places under the output folder
(`Paths`) and logs an MLflow run under the pipeline's parent run."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import yaml

from mdaug.cluster.config import build_config, flatten
from mdaug.cluster.eval_job import run_evaluation
from mdaug.cluster.generate_job import run_generate_job
from mdaug.cluster.sweep import run_sweep
from mdaug.cluster.tracking import log_params, mlflow_run
from mdaug.cluster.train_job import run_train_job
from mdaug.data.manifest import Manifest
from mdaug.data.split import split_report
from mdaug.data.validate import ValidationReport, validate
from mdaug.evaluation.arms import images_needed, plan_runs
from mdaug.flow.sampler import SamplingConfig
from mdaug.pipeline.config import PipelineConfig
from mdaug.sim import simulate_dataset


@dataclass(frozen=True)
class Paths:
    """Where every stage's output lives under the pipeline's output folder."""

    out: Path
    data: Path

    @property
    def manifest(self) -> Path:
        return self.out / "manifest.json"

    @property
    def train(self) -> Path:
        return self.out / "train"

    @property
    def dit(self) -> Path:
        return self.train / "dit" / "dit.pt"

    @property
    def sweep(self) -> Path:
        return self.out / "sweep"

    @property
    def synthetic(self) -> Path:
        return self.out / "synthetic"

    @property
    def oracle(self) -> Path:
        return self.out / "oracle"

    @property
    def eval(self) -> Path:
        return self.out / "eval"

    @property
    def report(self) -> Path:
        return self.out / "report.html"

    def output_of(self, stage: str) -> Path:
        """The file or folder whose presence shows that `stage` has run."""
        return {"simulate": self.data, "validate": self.out / "validation.json", "split": self.manifest,
                "vae": self.train / "vae" / "vae.pt", "latents": self.train / "latents" / "stats.json",
                "dit": self.dit, "sweep": self.sweep / "best_sampling.yaml", "generate": self.synthetic,
                "evaluate": self.eval / "report.html", "report": self.report}[stage]


@dataclass
class Context:
    cfg: PipelineConfig
    paths: Paths
    parent_run_id: str
    echo: Callable[[str], None]
    report: ValidationReport | None = None  # the validate stage's, reused by split in the same run


def counts_needed(cfg: PipelineConfig, manifest: Manifest) -> tuple[int, int]:
    """(synthetic, oracle) images per person the evaluation will draw."""
    train_counts = np.bincount([r.label for r in manifest.split("train")], minlength=manifest.num_classes)
    need = images_needed(plan_runs(cfg.evaluation, has_oracle=True), train_counts)
    return need["synthetic"], need["oracle"]


def _small_run(ctx: Context, stage: str, params: dict, artifacts: list[Path]) -> None:
    with mlflow_run(ctx.paths.out, ctx.cfg.experiment, f"stage-{stage}", {"stage": stage}, ctx.parent_run_id) as (
            client, run_id):
        log_params(client, run_id, flatten(params))
        for a in artifacts:
            if a.exists():
                client.log_artifact(run_id, str(a))


def simulate(ctx: Context) -> None:
    shutil.rmtree(ctx.paths.data, ignore_errors=True)
    summary = simulate_dataset(ctx.paths.data, ctx.cfg.sim)
    _small_run(ctx, "simulate", asdict(ctx.cfg.sim) | {"max_doppler_hz": summary["max_doppler_hz"]},
               [ctx.paths.data / "preview.png", ctx.paths.data / "persons.json"])


def validate_stage(ctx: Context) -> None:
    report = ctx.report = validate(ctx.paths.data)
    path = ctx.paths.output_of("validate")
    path.write_text(json.dumps(report.to_dict(), indent=1))
    ctx.echo(report.table())
    _small_run(ctx, "validate", {"root": str(ctx.paths.data), "usable": len(report.usable),
                                 "problems": len(report.problems)}, [path])


def split(ctx: Context) -> None:
    report = ctx.report or validate(ctx.paths.data, progress=False)
    c = ctx.cfg
    split_report(report, c.val, c.test, seed=c.split_seed).save(ctx.paths.manifest)
    m = Manifest.load(ctx.paths.manifest)
    counts = {s: len(m.split(s)) for s in ("train", "val", "test")}
    ctx.echo(f"manifest {ctx.paths.manifest}: " + ", ".join(f"{s} {n}" for s, n in counts.items()))
    _small_run(ctx, "split", {"val": c.val, "test": c.test, "seed": c.split_seed, **counts}, [ctx.paths.manifest])


def train(stage: str) -> Callable[[Context], None]:
    def run(ctx: Context) -> None:
        c = ctx.cfg
        job = build_config(stage, str(ctx.paths.manifest), c.train_preset, list(c.train_overrides),
                           out=str(ctx.paths.train), tracking_dir=str(ctx.paths.out), workers=c.workers,
                           experiment=c.experiment)
        run_train_job(job, ctx.parent_run_id)
    return run


def sampling_settings(ctx: Context) -> SamplingConfig:
    """The configured settings, overridden by the sweep's best ones."""
    return replace(ctx.cfg.sampling, **yaml.safe_load(ctx.paths.output_of("sweep").read_text()))


def sweep(ctx: Context) -> None:
    shutil.rmtree(ctx.paths.sweep, ignore_errors=True)
    if ctx.cfg.sweep.trials == 0:
        ctx.paths.sweep.mkdir(parents=True)
        ctx.paths.output_of("sweep").write_text(yaml.safe_dump({}))
        ctx.echo(f"sweep off (trials = 0): sampling with {asdict(ctx.cfg.sampling)}")
        return
    run_sweep(str(ctx.paths.dit), str(ctx.paths.manifest), ctx.paths.sweep, ctx.cfg.sweep,
              experiment=ctx.cfg.experiment, tracking_dir=ctx.paths.out, parent_run_id=ctx.parent_run_id)


def generate(ctx: Context) -> None:
    shutil.rmtree(ctx.paths.synthetic, ignore_errors=True)
    per_person, _ = counts_needed(ctx.cfg, Manifest.load(ctx.paths.manifest))
    run_generate_job(str(ctx.paths.dit), ctx.paths.synthetic, per_person, sampling_settings(ctx),
                     workers=ctx.cfg.workers, experiment=ctx.cfg.experiment, tracking_dir=ctx.paths.out,
                     parent_run_id=ctx.parent_run_id)


def evaluate(ctx: Context) -> None:
    c = ctx.cfg
    oracle = None
    if c.data is None:  # simulated data: fresh recordings of the same persons are the oracle
        _, n = counts_needed(c, Manifest.load(ctx.paths.manifest))
        shutil.rmtree(ctx.paths.oracle, ignore_errors=True)
        simulate_dataset(ctx.paths.oracle, replace(c.sim, first_sample=c.sim.first_sample + c.sim.per_person,
                                                   per_person=n), progress=False)
        oracle = str(ctx.paths.oracle)
    shutil.rmtree(ctx.paths.eval, ignore_errors=True)
    cfg = replace(c.evaluation, data=str(ctx.paths.manifest), synthetic=str(ctx.paths.synthetic), oracle=oracle,
                  out=str(ctx.paths.eval), experiment=c.experiment)
    run_evaluation(cfg, tracking_dir=ctx.paths.out, parent_run_id=ctx.parent_run_id, echo=ctx.echo)


def report(ctx: Context) -> None:
    shutil.copyfile(ctx.paths.eval / "report.html", ctx.paths.report)


STAGE_FUNCTIONS: dict[str, Callable[[Context], None]] = {
    "simulate": simulate, "validate": validate_stage, "split": split, "vae": train("vae"),
    "latents": train("latents"), "dit": train("dit"), "sweep": sweep, "generate": generate, "evaluate": evaluate,
    "report": report,
}
