"""Running the stages in order under one MLflow parent run; a stage is skipped when its output exists and
was made with the same configuration as now, including everything upstream of it (chained hashes)."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from mdaug.config import to_yaml
from mdaug.console import verbose
from mdaug.evaluation.verdict import headline
from mdaug.locks import OutputLocked, exclusive  # noqa: F401 - OutputLocked: importable from here
from mdaug.pipeline.config import PipelineConfig
from mdaug.pipeline.ownership import Ownership, check_claimable
from mdaug.pipeline.stages import STAGES
from mdaug.pipeline.steps import (
    STAGE_FUNCTIONS,
    Context,
    Paths,
    generator_for,
    generators,
    other_persons_source,
    train_job,
)
from mdaug.ray_mlflow.cluster_check import check_shared
from mdaug.ray_mlflow.preflight import check_vae_files
from mdaug.ray_mlflow.ray_session import connect_ray, quiet_library_noise
from mdaug.ray_mlflow.ray_train import NOT_RESULTS
from mdaug.ray_mlflow.tracking import DESCRIPTION, folder_store, mlflow_run, ui_hint
from mdaug.storage import exists, join, write_text


def _hash(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _folder_fingerprint(root: Path) -> list:
    """Names, sizes and modification times of every file under root: a changed data folder is revalidated."""
    return [(p.relative_to(root).as_posix(), p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()] if root.is_dir() else []


def training_settings(cfg: PipelineConfig, paths: Paths) -> dict:
    """Of the training jobs the stages run (steps.train_job), what changes their results: the settings every stage
    shares (workers, resources per worker, seed) and each stage's own."""
    job = asdict(train_job(cfg, paths, "classifier"))
    shared = {k: v for k, v in job.items() if k not in ("classifier", "vae", "dit", *NOT_RESULTS)}
    return {"shared": shared, "classifier": job["classifier"], "vae": job["vae"],
            "dits": [asdict(job.dit) | {"seed": job.seed}
                     for job in (train_job(cfg, paths, "dit", k, r) for k, r in generators(cfg))]}


def stage_keys(cfg: PipelineConfig, paths: Paths, stages: list[str]) -> dict[str, str]:
    """Each stage's key hashes its own settings and the key of the stage before it."""
    train = training_settings(cfg, paths)
    own = {
        "simulate": [asdict(cfg.sim), asdict(cfg.aux) if cfg.aux else None],
        "validate": [str(paths.data), asdict(cfg.sim) if cfg.data is None else _folder_fingerprint(paths.data)],
        # a new storage: every artifact made anew; "move" (the default) keeps the key of folders split before it
        # was a setting, "refuse" splits again (and stops if a near-duplicate pair would span two splits)
        "split": [cfg.val, cfg.test, cfg.split_seed, cfg.storage,
                  *([cfg.split_on_duplicates] if cfg.split_on_duplicates != "move" else [])],
        "classifier": [train["shared"], train["classifier"], train["vae"]["architecture"]],  # trains at its size
        "vae": [train["vae"]],
        "latents": [], "dit": [train["dits"]],
        "sweep": [asdict(cfg.sweep), asdict(cfg.sampling)],
        "generate": [asdict(cfg.evaluation), cfg.generator_ks],  # the evaluation decides how many per person
        "evaluate": [asdict(cfg.evaluation)],
        "report": [],
    }
    keys, previous = {}, ""
    for stage in stages:
        previous = keys[stage] = _hash([previous, stage, own[stage]])
    return keys


class StageLog:
    """stages.json in the output folder: per stage, the key its output was made with."""

    def __init__(self, out: Path) -> None:
        self.path = out / "stages.json"
        self.done: dict[str, dict] = json.loads(self.path.read_text()) if self.path.exists() else {}

    def fresh(self, stage: str, key: str) -> bool:
        return self.done.get(stage, {}).get("hash") == key

    def record(self, stage: str, key: str, seconds: float, later: list[str]) -> None:
        """Record `stage`; stages after it are stale now (they were made from its previous output)."""
        self.done[stage] = {"hash": key, "seconds": round(seconds, 2), "finished": time.strftime("%FT%T")}
        for s in later:
            self.done.pop(s, None)
        write_text(self.path, json.dumps(self.done, indent=1))  # whole or not at all


def close_killed_runs(client, out: Path, experiment: str, current: str, echo: Callable[[str], None]) -> None:
    """Runs a killed pipeline left RUNNING in this folder's own MLflow store end KILLED (this run holds the
    folder's lock, so nothing else writes there); a shared tracking server is left alone."""
    if not folder_store():
        return
    exp = client.get_experiment_by_name(experiment)
    stale = [r for r in client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'", max_results=10000)
             if r.info.run_id != current] if exp else []
    for r in stale:
        client.set_terminated(r.info.run_id, "KILLED")
    if stale:
        echo(f"marked {len(stale)} MLflow runs of an interrupted pipeline KILLED")


def check_settings(cfg: PipelineConfig, out: Path, start: str | None = None, only: str | None = None) -> list[str]:
    """Everything about the settings that can be checked before any stage runs, writing nothing (the sections'
    own bounds were checked when the configuration loaded); returns the stages this pipeline runs."""
    if cfg.data is not None:
        data = Path(cfg.data).resolve()
        if not data.is_dir():
            raise FileNotFoundError(f"--data {data} is not a folder (expected ROOT/ID_1 … ROOT/ID_31)")
        if out == data or data in out.parents:
            raise ValueError(f"--out {out} is inside --data {data}: the pipeline would read its own outputs as "
                             "images; choose an output folder outside the data")
    check_vae_files(cfg.train.vae, "train.vae.")  # now, not after the stages before the VA-VAE's
    other = other_persons_source(cfg)  # refuses other_share > 0 without other persons' recordings
    if cfg.train.dit.other_data and not exists(other):
        raise FileNotFoundError(f"train.dit.other_data={cfg.train.dit.other_data}: no such manifest (a split manifest "
                                "of other persons' recordings, mdaug split)")
    for k in cfg.evaluation.ks:
        generator_for(cfg, k)  # every evaluated k has a generator
    stages = [s for s in STAGES if not (s == "simulate" and cfg.data is not None)]
    for name in (start, only):
        if name is not None and name not in stages:
            raise ValueError(f"unknown or inactive stage {name!r}; stages: {', '.join(stages)}")
    check_claimable(out)
    if os.environ.get("RAY_ADDRESS"):  # a Ray cluster: with several nodes, MLflow and storage must be shared
        connect_ray()
        check_shared(cfg.storage, out)
    return stages


def run_pipeline(cfg: PipelineConfig, start: str | None = None, only: str | None = None,
                 echo: Callable[[str], None] = print) -> dict[str, Path]:
    """Run (or resume) the pipeline; returns where its outputs are. `start` forces that stage and every later
    one; `only` runs one stage (forced). Every setting is checked before anything is written; the output folder
    must be new, empty or an earlier pipeline's (ownership.py); a second pipeline on it is refused at once."""
    out = Path(cfg.out).resolve()
    stages = check_settings(cfg, out, start, only)
    out.mkdir(parents=True, exist_ok=True)
    with exclusive(out):
        return _run(cfg, out, stages, start, only, echo)


def _run(cfg: PipelineConfig, out: Path, stages: list[str], start: str | None, only: str | None,
         echo: Callable[[str], None]) -> dict[str, Path]:
    check_claimable(out)  # again, under the lock
    quiet_library_noise(verbose())  # before the MLflow store is first opened
    owner = Ownership(out)
    storage = join(cfg.storage, f"{out.name}-{owner.id}") if cfg.storage else ""  # this pipeline's own prefix
    paths = Paths(out, Path(cfg.data).resolve() if cfg.data else out / "data", storage)
    keys, log = stage_keys(cfg, paths, stages), StageLog(out)
    t_all, forced, ran = time.perf_counter(), False, []
    tags = {"kind": "pipeline", "config": cfg.name}
    with mlflow_run(out, cfg.experiment, "pipeline", tags) as (client, run_id):
        client.log_text(run_id, to_yaml(cfg), "config.yaml")  # the resolved configuration
        exp = client.get_run(run_id).info.experiment_id
        close_killed_runs(client, out, cfg.experiment, run_id, echo)
        ctx = Context(cfg, paths, run_id, echo, owner)
        for stage in stages:
            forced = forced or stage == start
            if only is not None and stage != only:
                continue
            if not (forced or stage == only) and stage != "report" and log.fresh(stage, keys[stage]) \
                    and paths.output_of(stage).exists():
                echo(f"[{stage}] up to date, skipped")
                continue
            echo(f"[{stage}] running")
            t0 = time.perf_counter()
            ctx.key = keys[stage]
            STAGE_FUNCTIONS[stage](ctx)
            log.record(stage, keys[stage], time.perf_counter() - t0, stages[stages.index(stage) + 1:])
            client.log_metric(run_id, f"seconds.{stage}", time.perf_counter() - t0)
            ran.append(stage)
        wall = time.perf_counter() - t_all
        client.log_metric(run_id, "wall_time_s", wall)
        client.set_tag(run_id, "stages_run", ",".join(ran) or "none")
        verdict = paths.eval / "verdict.txt"
        if verdict.is_file():
            client.log_artifact(run_id, str(verdict))
            lines = verdict.read_text().splitlines()  # the look, then every primary line
            client.set_tag(run_id, "verdict", "\n".join(lines[:1] + [x for x in lines if " · primary " in x])[:5000])
            client.set_tag(run_id, DESCRIPTION, verdict.read_text())
    echo(f"pipeline finished in {wall:.0f} s (ran: {', '.join(ran) or 'nothing'})")
    if verdict.is_file():
        echo("verdict:")
        for line in headline(verdict.read_text().splitlines()):
            echo(f"  {line}")
        echo(f"report: {paths.report} (the whole verdict: per-person gains, the real-image worth, step budgets; "
             "figures)")
    echo(f"MLflow: {ui_hint(out, exp)}   (experiment {cfg.experiment!r}; or python eval/compare.py "
         f"--experiment {cfg.experiment} --tracking-dir {out})")
    return {"out": out, "data": paths.data, "manifest": paths.manifest, "report": paths.report}
