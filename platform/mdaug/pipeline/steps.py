"""What each pipeline stage does. Every stage reads and writes fixed places under the output folder
(`Paths`) and logs an MLflow run under the pipeline's parent run."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import yaml

from mdaug.config import flatten
from mdaug.data.manifest import Manifest
from mdaug.data.split import duplicate_lines, split_report
from mdaug.data.validate import ValidationReport, validate
from mdaug.evaluation.arms import images_needed, plan_runs
from mdaug.evaluation.config import ALL, k_label
from mdaug.flow.sampler import SamplingConfig
from mdaug.pipeline.config import PipelineConfig
from mdaug.pipeline.ownership import Ownership
from mdaug.ray_mlflow.config import TrainJobConfig
from mdaug.ray_mlflow.datasets import log_manifest_inputs
from mdaug.ray_mlflow.eval_job import run_evaluation
from mdaug.ray_mlflow.generate_job import run_generate_job
from mdaug.ray_mlflow.generator_model import ALIAS, MODEL_NAME, log_generator
from mdaug.ray_mlflow.sweep import OUTPUTS as SWEEP_OUTPUTS
from mdaug.ray_mlflow.sweep import run_sweep
from mdaug.ray_mlflow.tracking import log_params, mlflow_run
from mdaug.ray_mlflow.train_job import run_train_job
from mdaug.sim import simulate_dataset
from mdaug.storage import join, publish, write_bytes, write_text


@dataclass(frozen=True)
class Paths:
    """Where every stage's output lives under the pipeline's output folder."""

    out: Path
    data: Path
    storage: str = ""  # the shared storage root; "" = out

    def uri(self, local: Path) -> str:
        """Where a local output under `out` lives in the storage."""
        return join(self.storage or str(self.out), *local.relative_to(self.out).parts)

    @property
    def manifest(self) -> Path:
        return self.out / "manifest.json"

    @property
    def aux(self) -> Path:
        return self.out / "aux"

    @property
    def aux_manifest(self) -> Path:
        return self.out / "aux_manifest.json"

    @property
    def train(self) -> Path:
        return self.out / "train"

    def dit(self, k: int, replicate: int = 0) -> Path:
        """Where the DiT of generator k, replicate r is (TrainJobConfig.dit_dir)."""
        return self.train / ((f"dit_k{k}" if k else "dit") + (f"_r{replicate}" if replicate else "")) / "dit.pt"

    def synthetic_k(self, k: int, replicate: int = 0) -> Path:
        return self.synthetic / (f"k{k_label(k)}" + (f"_r{replicate}" if replicate else ""))

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
                "classifier": self.train / "classifier" / "classifier.pt", "vae": self.train / "vae" / "vae.pt",
                "latents": self.train / "latents" / "stats.json", "dit": self.train / "dit.done",
                "sweep": self.sweep / "best_sampling.yaml", "generate": self.synthetic,
                "evaluate": self.eval / "report.html", "report": self.report}[stage]


@dataclass
class Context:
    cfg: PipelineConfig
    paths: Paths
    parent_run_id: str
    echo: Callable[[str], None]
    owner: Ownership  # what under the output folder the pipeline made: all it may delete or replace
    report: ValidationReport | None = None  # the validate stage's, reused by split in the same run
    key: str = ""  # the running stage's key (runner.stage_keys): its settings and everything upstream
    verified: set[str] = field(default_factory=set)  # manifests whose files this run checked: not read again


def generators(cfg: PipelineConfig) -> list[tuple[int, int]]:
    """(k, replicate) of every DiT the pipeline trains."""
    return [(k, r) for k in cfg.dit_ks for r in range(cfg.generator_replicates)]


def counts_needed(cfg: PipelineConfig, manifest: Manifest) -> tuple[dict[int, int], int]:
    """(generated images per person for each generator k — each of its replicates —, oracle images per person)
    the evaluation draws."""
    train_counts = np.bincount([r.label for r in manifest.split("train")], minlength=manifest.num_classes)
    need = images_needed(plan_runs(cfg.evaluation, has_oracle=True), train_counts)
    per_generator = {}
    for k, n in need["synthetic"].items():
        g = generator_for(cfg, k)
        per_generator[g] = max(per_generator.get(g, 0), n)
    return per_generator, max(need["oracle"].values(), default=0)


def generator_for(cfg: PipelineConfig, k: int) -> int:
    """The DiT serving the arms at k: the one trained on the largest subset within k (all train images only
    for k = all)."""
    fits = [g for g in cfg.dit_ks if (g == ALL) == (k == ALL) and g <= k or (g != ALL and k == ALL)]
    if not fits:
        raise ValueError(f"no generator for k={k_label(k)}: generator_ks {cfg.dit_ks} has none within it")
    return max(fits, key=lambda g: (g == ALL, g))


def publish_output(ctx: Context, local: Path) -> None:
    """Copy a stage's output to the shared storage (nothing to do without one)."""
    if ctx.paths.storage:
        publish(local, ctx.paths.uri(local))


def _small_run(ctx: Context, stage: str, params: dict, artifacts: list[Path], manifest: Manifest | None = None) -> None:
    with mlflow_run(ctx.paths.out, ctx.cfg.experiment, f"stage-{stage}", {"stage": stage}, ctx.parent_run_id) as (
            client, run_id):
        log_params(client, run_id, flatten(params))
        if manifest is not None:
            log_manifest_inputs(client, run_id, manifest, str(ctx.paths.manifest),
                                {s: manifest.split(s) for s in ("train", "val", "test")})
        for a in artifacts:
            if a.exists():
                client.log_artifact(run_id, str(a))


def simulate(ctx: Context) -> None:
    """The task's walkers; and, for the autoencoder, walkers who are not among them."""
    summary = simulate_dataset(ctx.owner.clear(ctx.paths.data), ctx.cfg.sim)
    ctx.owner.clear(ctx.paths.aux)
    if ctx.cfg.aux is not None:
        simulate_dataset(ctx.paths.aux, ctx.cfg.aux, progress=False)
    _small_run(ctx, "simulate", asdict(ctx.cfg.sim) | {"max_doppler_hz": summary["max_doppler_hz"]},
               [ctx.paths.data / "preview.png", ctx.paths.data / "persons.json"])


def validate_stage(ctx: Context) -> None:
    report = ctx.report = validate(ctx.paths.data)
    path = ctx.owner.claim(ctx.paths.output_of("validate"))
    write_text(path, json.dumps(report.to_dict(), indent=1))
    ctx.echo(report.table(per_person=bool(report.problems)))  # every person's counts: in `path`
    _small_run(ctx, "validate", {"root": str(ctx.paths.data), "usable": len(report.usable),
                                 "problems": len(report.problems)}, [path])


def split(ctx: Context) -> None:
    report = ctx.report or validate(ctx.paths.data, progress=False)
    c = ctx.cfg
    split_report(report, c.val, c.test, seed=c.split_seed, on_duplicates=c.split_on_duplicates).save(
        ctx.owner.claim(ctx.paths.manifest))
    if c.data is None and c.aux is not None:  # the other walkers: train and val for the autoencoder
        split_report(validate(ctx.paths.aux, progress=False), c.val, 0.0, seed=c.split_seed).save(
            ctx.owner.claim(ctx.paths.aux_manifest))
    m = Manifest.load(ctx.paths.manifest)
    counts = {s: len(m.split(s)) for s in ("train", "val", "test")}
    for line in duplicate_lines(m.leakage or {}):
        ctx.echo(line)
    ctx.echo(f"manifest {ctx.paths.manifest}: " + ", ".join(f"{s} {n}" for s, n in counts.items()))
    for e in (e for e in m.excluded if e["kind"] == "no_usable_image"):
        ctx.echo(f"excluded person folder {e['path']}: {e['reason']}")
    params = {"val": c.val, "test": c.test, "seed": c.split_seed, "on_duplicates": c.split_on_duplicates, **counts}
    _small_run(ctx, "split", params, [ctx.paths.manifest], m)


def vae_blind(cfg: PipelineConfig) -> bool:
    """Whether the VA-VAE sees no image of the task's persons (other walkers, or another manifest)."""
    return (cfg.data is None and cfg.aux is not None) or bool(cfg.train.vae.data)


def vae_source(cfg: PipelineConfig) -> dict:
    """What the autoencoder may see: other walkers (simulated data), else the smallest evaluated k-subset."""
    if cfg.data is None and cfg.aux is not None:
        return {"data": str(Path(cfg.out).resolve() / "aux_manifest.json")}
    return {"train_per_person": cfg.dit_ks[0]}


def other_persons_source(cfg: PipelineConfig) -> str:
    """The other persons the DiT learns beside the task's (train.dit.other_share > 0): train.dit.other_data when
    given, else the other simulated walkers (with other_share 0: train.dit.other_data as set, unused)."""
    d = cfg.train.dit
    if d.other_share <= 0 or d.other_data:
        return d.other_data
    if cfg.data is None and cfg.aux is not None:
        return str(Path(cfg.out).resolve() / "aux_manifest.json")
    raise ValueError(f"train.dit.other_share={d.other_share} needs other persons' recordings: set "
                     "train.dit.other_data=MANIFEST (a split manifest of persons who are not the task's, mdaug split), "
                     "or train.dit.other_share=0")


def train_job(c: PipelineConfig, paths: Paths, stage: str, dit_k: int = 0, replicate: int = 0) -> TrainJobConfig:
    """The training job a stage runs: the `train` section with what the pipeline decides (its data, folders,
    workers, waiting, the VA-VAE's data source, the DiT's other persons, its k and, for generator replicate r, its
    training seed train.seed + r and — unless the VA-VAE trains on the task's images (your data without
    train.vae.data), which fixes the subset it saw — its own k-subset, seed r)."""
    t = c.train
    return replace(t, stage=stage, data=str(paths.manifest), out=str(paths.train), tracking_dir=str(paths.out),
                   workers=c.workers or t.workers, experiment=c.experiment, seed=t.seed + replicate,
                   storage=paths.uri(paths.train) if c.storage else "", resource_wait_s=c.resource_wait_s,
                   vae=replace(t.vae, **vae_source(c)),
                   dit=replace(t.dit, train_per_person=dit_k, replicate=replicate,
                               subset_seed=replicate if vae_blind(c) else 0, other_data=other_persons_source(c)))


def _train(ctx: Context, stage: str, dit_k: int = 0, replicate: int = 0) -> None:
    ctx.owner.claim(ctx.paths.train)
    run_train_job(train_job(ctx.cfg, ctx.paths, stage, dit_k, replicate), ctx.parent_run_id, ctx.verified)


def train(stage: str) -> Callable[[Context], None]:
    def run(ctx: Context) -> None:
        _train(ctx, stage)  # the train job prints the VA-VAE's reconstruction identity ratio
    return run


def dit(ctx: Context) -> None:
    """The DiTs of every generator k and replicate, each trained on its own k-subset of the train images. A DiT
    this stage finished before it was interrupted (same stage key) is kept; an unfinished one resumes from its last
    epoch (ray_train.RunMarker)."""
    ctx.owner.claim(ctx.paths.train)
    ctx.owner.clear(ctx.paths.output_of("dit"))
    finished = {(k, r): ctx.paths.dit(k, r).parent / "finished_in_stage" for k, r in generators(ctx.cfg)}
    for (k, r), marker in finished.items():
        key = f"{ctx.key}:{k}:{r}"
        if marker.is_file() and marker.read_text() == key and ctx.paths.dit(k, r).is_file():
            ctx.echo(f"DiT k={k_label(k)} replicate {r}: finished before the interruption with these settings, kept")
            continue
        _train(ctx, "dit", k, r)  # the train job prints the DiT's identity ratio
        write_text(marker, key)
    write_text(ctx.paths.output_of("dit"), ",".join(map(str, ctx.cfg.dit_ks)))
    for marker in finished.values():  # the stage is done: a later run of it (new settings, --from) trains anew
        marker.unlink(missing_ok=True)


def sampling_settings(ctx: Context) -> SamplingConfig:
    """The configured settings, overridden by the sweep's best ones."""
    return replace(ctx.cfg.sampling, **yaml.safe_load(ctx.paths.output_of("sweep").read_text()))


def sweep(ctx: Context) -> None:
    """The sampling sweep on the smallest k's DiT; its folder is kept, so a rerun after a kill resumes the sweep.
    Then that DiT with the best settings is registered as the generator (`register_generator`)."""
    if ctx.cfg.sweep.trials == 0:
        ctx.owner.clear(ctx.paths.sweep).mkdir(parents=True)
        write_text(ctx.paths.output_of("sweep"), yaml.safe_dump({}))
        ctx.echo(f"sweep off (trials = 0): sampling with {asdict(ctx.cfg.sampling)}")
    else:
        ctx.owner.claim(ctx.paths.sweep)
        tune = ctx.paths.uri(ctx.paths.sweep / "tune") if ctx.cfg.storage else None
        run_sweep(ctx.paths.uri(ctx.paths.dit(ctx.cfg.dit_ks[0])), None, ctx.paths.sweep, ctx.cfg.sweep,
                  experiment=ctx.cfg.experiment, tracking_dir=ctx.paths.out, parent_run_id=ctx.parent_run_id,
                  tune_root=tune, resource_wait_s=ctx.cfg.resource_wait_s)
        for name in SWEEP_OUTPUTS:  # beside Tune's folder there
            publish_output(ctx, ctx.paths.sweep / name)
    register_generator(ctx)


def register_generator(ctx: Context) -> None:
    """The swept DiT with the sweep's best settings as a new version of the registered generator, aliased `best`
    (a rerun after a kill registers another version and moves the alias to it)."""
    k = ctx.cfg.dit_ks[0]
    with mlflow_run(ctx.paths.out, ctx.cfg.experiment, "register-generator", {"stage": "register-generator"},
                    ctx.parent_run_id) as (client, run_id):
        mv = log_generator(client, run_id, ctx.paths.uri(ctx.paths.dit(k)), sampling_settings(ctx))
    ctx.echo(f"registered the DiT k={k_label(k)} with the best sampling settings as models:/{MODEL_NAME}@{ALIAS} "
             f"(version {mv.version})")


def generate(ctx: Context) -> None:
    """A generated set per generator k and replicate (synthetic/k5, synthetic/k5_r1, …), with its identity ratios
    and memorisation figures."""
    # finished sets of earlier settings go; an interrupted run's .k5.partial is resumed (restarted if they differ)
    ctx.owner.claim(ctx.paths.synthetic)
    for old in ctx.paths.synthetic.glob("[!.]*"):
        ctx.owner.clear(old)
    per_generator, _ = counts_needed(ctx.cfg, Manifest.load(ctx.paths.manifest))
    for k, r in generators(ctx.cfg):
        per_person = per_generator[k]
        run_generate_job(ctx.paths.uri(ctx.paths.dit(k, r)), ctx.paths.synthetic_k(k, r), per_person,
                         sampling_settings(ctx), workers=ctx.cfg.workers or 2, experiment=ctx.cfg.experiment,
                         tracking_dir=ctx.paths.out, parent_run_id=ctx.parent_run_id,
                         resource_wait_s=ctx.cfg.resource_wait_s, echo=ctx.echo,
                         label=f"generator k={k_label(k)} replicate {r}: ", training_summary=False)
        publish_output(ctx, ctx.paths.synthetic_k(k, r))


def evaluate(ctx: Context) -> None:
    c = ctx.cfg
    oracle = None
    if c.data is None:  # simulated data: fresh recordings of the same persons are the oracle
        _, n = counts_needed(c, Manifest.load(ctx.paths.manifest))
        fresh = replace(c.sim, first_sample=c.sim.first_sample + c.sim.per_person, per_person=n)
        simulate_dataset(ctx.owner.clear(ctx.paths.oracle), fresh, progress=False)
        oracle = str(ctx.paths.oracle)
    ctx.owner.clear(ctx.paths.eval)
    folders = tuple(str(p) for p in sorted(ctx.paths.synthetic.iterdir()) if p.is_dir())
    cfg = replace(c.evaluation, data=str(ctx.paths.manifest), synthetic=folders, oracle=oracle,
                  out=str(ctx.paths.eval), experiment=c.experiment)
    run_evaluation(cfg, tracking_dir=ctx.paths.out, parent_run_id=ctx.parent_run_id, echo=ctx.echo,
                   resource_wait_s=c.resource_wait_s, echo_verdict=False)  # printed once, when the pipeline ends
    publish_output(ctx, ctx.paths.eval)


def report(ctx: Context) -> None:
    write_bytes(ctx.owner.claim(ctx.paths.report), (ctx.paths.eval / "report.html").read_bytes())
    publish_output(ctx, ctx.paths.report)


STAGE_FUNCTIONS: dict[str, Callable[[Context], None]] = {
    "simulate": simulate, "validate": validate_stage, "split": split, "classifier": train("classifier"),
    "vae": train("vae"), "latents": train("latents"), "dit": dit, "sweep": sweep, "generate": generate,
    "evaluate": evaluate, "report": report,
}
