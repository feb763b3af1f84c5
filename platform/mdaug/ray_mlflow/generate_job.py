"""`jobs/generate.py`: generation spread over Ray actors (one per GPU, or CPU actors), progress bar,
atomic output folder, one MLflow run with a real | generated grid per person."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import ray
import torch
from tqdm import tqdm

from mdaug.assessment import INDEPENDENT, QUALITY, assess, read_quality, require_judge
from mdaug.data.images import load_image, open_image
from mdaug.data.manifest import Manifest
from mdaug.evaluation.leakage import LeakageError, check_generated, findings_message
from mdaug.flow.sampler import SamplingConfig
from mdaug.generation import (
    GenerationJob,
    Generator,
    check_job,
    chunk_files,
    chunk_targets,
    file_name,
    finish_output,
    manifest_for,
    prepare_output,
    write_chunk,
)
from mdaug.imaging import labelled_grid, save_image, tensor_image
from mdaug.locks import locks_output
from mdaug.models.vavae import vae_record
from mdaug.ray_mlflow.preflight import check_placeable
from mdaug.ray_mlflow.ray_session import connect_ray
from mdaug.ray_mlflow.tracking import log_params, mlflow_run
from mdaug.storage import exists, write_text

ACTOR_RESTARTS = 3  # a lost actor (its node gone, its process killed) is restarted and its chunk run again


@ray.remote(max_restarts=ACTOR_RESTARTS, max_task_retries=ACTOR_RESTARTS)
class GeneratorActor:
    """Generates chunks with the driver's loaded generator, fetched from Ray's object store at its first chunk (an
    actor on any node reads no file; a restarted one fetches it again), and returns the encoded image files. A
    chunk's images follow from its fixed seeds, so a retry returns the same bytes."""

    def __init__(self) -> None:  # no constructor argument in the object store: a restart needs none (ray#53727)
        self.gen: Generator | None = None
        self.device = "cuda" if torch.cuda.is_available() else "cpu"

    def run(self, gen: list[ray.ObjectRef], job: GenerationJob, chunk: list[tuple[int, int]]) -> list[bytes]:
        """`gen`: [the generator's reference] (in a list, so that Ray passes the reference, not the model)."""
        if self.gen is None:
            self.gen = ray.get(gen[0])
        return chunk_files(self.gen, job, chunk, self.device)


def comparison_grid(gen: Generator, folder: Path, job: GenerationJob, per_row: int = 4):
    """One row per person: up to per_row real training images | the same number of generated ones."""
    rows = []
    manifest_uri = gen.info.get("training_manifest")
    real = Manifest.load(manifest_uri) if manifest_uri and exists(manifest_uri) else None
    fmt = gen.info["image_format"]
    for p in job.persons:
        imgs = []
        if real is not None:
            train = [r for r in real.split("train") if r.person == p][:per_row]
            imgs += [tensor_image(torch.from_numpy(load_image(real.file(r), real.channels)), real.channels)
                     for r in train]
        imgs += [open_image(folder / file_name(p, i, fmt)) for i in range(min(per_row, job.per_person))]
        rows.append((f"ID {p}", imgs))
    return labelled_grid(rows, cell=64)


def _training_identity(gen: Generator) -> dict:
    """The identity ratios its VA-VAE and its DiT reached at their last training epoch, where recorded."""
    vae = vae_record(gen.info["vae_uri"]).get("identity_metrics") or {}
    dit = gen.info.get("identity_metrics") or {}
    words = ([f"VA-VAE reconstruction identity ratio {vae['recon_identity_ratio']:.2f}"] if vae else []) + \
        ([f"DiT identity ratio {dit['identity_ratio']:.2f} (its exported epoch's preview samples)"] if dit else [])
    return {"training_identity": {"vae": vae, "dit": dit}, "training_summary": "; ".join(words)}


def assessable(gen: Generator, classifier: str | None) -> bool:
    """Whether the identity classifier and the training manifest are at hand; with the classifier, its independent
    judge (judge.pt beside it) must be too: a FileNotFoundError naming it, before any image is generated."""
    manifest_uri = gen.info.get("training_manifest")
    if not classifier or not exists(classifier) or not manifest_uri or not exists(manifest_uri):
        return False
    require_judge(classifier)
    return True


def refuse_leaks(gen: Generator, folder: Path) -> None:
    """A generated image that is a copy (content or pixel fingerprint) of a test image of the generator's training
    manifest stops the job before the set is published, naming both files."""
    manifest_uri = gen.info.get("training_manifest")
    if not manifest_uri or not exists(manifest_uri):
        return
    manifest = Manifest.load(manifest_uri)
    findings = check_generated(folder, manifest)
    if findings:
        raise LeakageError(findings_message(findings, manifest.root))


def assess_output(gen: Generator, out: Path, classifier: str | None) -> dict | None:
    """quality.json of the finished set (identity by both judges, memorisation), when assessable; None otherwise.
    A quality.json from before the independent judge is measured again."""
    if not assessable(gen, classifier):
        return None
    quality = read_quality(out)
    if quality is None or INDEPENDENT not in quality:
        manifest = Manifest.load(gen.info["training_manifest"])
        quality = assess(out, manifest, gen.seen_rows(manifest), classifier, require_judge(classifier)) \
            | _training_identity(gen)
        write_text(out / QUALITY, json.dumps(quality, indent=1))
    return quality


def actor_slots(workers: int, gpus_per_worker: float) -> int:
    """CPU slots a local Ray needs for the actors (GPU actors ask for no CPU)."""
    return 0 if gpus_per_worker else workers


def check_actors(workers: int, gpus_per_worker: float, wait_s: float) -> None:
    """Every actor gets chunks, so all must be placed at once: a ValueError now rather than a wait forever."""
    connect_ray(actor_slots(workers, gpus_per_worker))
    kind, amount = ("GPU", gpus_per_worker) if gpus_per_worker else ("CPU", 1.0)
    check_placeable(f"generation ({workers} actors × {amount:g} {kind})", {kind: amount}, workers, wait_s,
                    "--workers / --gpus-per-worker" if gpus_per_worker else "--workers (workers in the pipeline)",
                    f"--resource-wait-s SECONDS (now {wait_s:g})")


@locks_output("out", inside=False)  # .NAME.mdaug.lock beside it: the folder appears only when complete
def run_generate_job(dit: str, out: Path, per_person: int, sampling: SamplingConfig, persons: list[int] | None = None,
                     seed: int = 0, vae: str | None = None, workers: int = 2, gpus_per_worker: float = 0.0,
                     experiment: str = "mdaug", tracking_dir: Path | None = None, batch: int = 64,
                     parent_run_id: str | None = None, classifier: str | None = None,
                     resource_wait_s: float = 0.0, echo: Callable[[str], None] = print, label: str = "",
                     training_summary: bool = True) -> Path:
    """Generate per_person images of every (or each given) person into `out` (a local folder: actors return the
    files); then measure the set's identity ratio (by the identity classifier, default: the one the DiT checkpoint
    names, and by the independent judge beside it, judge.pt) and memorisation into out/quality.json. `dit`, `vae`,
    `classifier`: local paths or URIs. Actors the cluster cannot place are refused before anything is read (after
    giving an autoscaling cluster resource_wait_s seconds to add nodes). One line through `echo` when done, after
    `label`: the set and its measures (with its VA-VAE's and DiT's training identity ratios if `training_summary`)."""
    if not Path(out).exists():  # a finished folder needs no actors
        check_actors(workers, gpus_per_worker, resource_wait_s)
    gen = Generator.load(dit, vae)
    job = GenerationJob(per_person, check_job(gen, per_person, persons), seed, sampling, batch)
    expected = manifest_for(gen, job)
    out = Path(out).resolve()
    classifier = classifier or gen.info.get("classifier_uri")
    assessable(gen, classifier)  # a missing judge is refused before generating
    partial = prepare_output(out, expected)
    if partial is None:
        echo(f"{label}{out} already holds this generation ({len(expected['images'])} images); nothing to do")
        assess_output(gen, out, classifier)
        return out
    tracking_dir = tracking_dir or out.parent
    tags = {"stage": "generate", "dit_sha256": gen.info["dit_sha256"],
            "manifest_hash": str(gen.info["training_manifest_hash"])}
    with mlflow_run(tracking_dir, experiment, "generate", tags, parent_run_id) as (client, run_id):
        log_params(client, run_id, {"per_person": per_person, "seed": seed, "persons": len(job.persons),
                                    **{f"sampling.{k}": v for k, v in expected["sampling"].items()}})
        t0 = time.perf_counter()
        connect_ray(actor_slots(workers, gpus_per_worker))
        resources = {"num_gpus": gpus_per_worker} if gpus_per_worker else {"num_cpus": 1}
        gen_ref = ray.put(gen)
        actors = [GeneratorActor.options(**resources).remote() for _ in range(workers)]
        targets = [chunk_targets(gen, c, partial) for c in job.chunks()]
        todo = [(c, t) for c, t in zip(job.chunks(), targets, strict=True) if not all(p.exists() for p in t)]
        pending = {actors[i % workers].run.remote([gen_ref], job, c): t for i, (c, t) in enumerate(todo)}
        try:
            with tqdm(total=len(job.items()), initial=len(job.items()) - sum(len(t) for _, t in todo),
                      desc="generate", unit="img") as bar:
                while pending:
                    done, _ = ray.wait(list(pending), num_returns=1)
                    chunk = pending.pop(done[0])
                    write_chunk(chunk, ray.get(done[0]))
                    bar.update(len(chunk))
        finally:  # a failed job leaves no actor behind on a long-lived cluster
            for a in actors:
                ray.kill(a)
        refuse_leaks(gen, partial)
        finish_output(partial, out, expected)
        seconds = time.perf_counter() - t0
        client.log_metric(run_id, "images_per_s", len(job.items()) / seconds)
        grid = out.parent / f"{out.name}_grid.png"
        save_image(comparison_grid(gen, out, job), grid)
        client.log_artifact(run_id, str(grid))
        client.log_artifact(run_id, str(out / "manifest.json"))
        quality = assess_output(gen, out, classifier)
        if quality is not None:
            client.log_artifact(run_id, str(out / QUALITY))
            measured = {k: quality[k] for k in ("identity_ratio", "identity_accuracy", INDEPENDENT,
                                                "independent_identity_accuracy")}
            for k, v in (measured | {f"memorisation.{m}": x for m, x in quality["memorisation"].items()}).items():
                client.log_metric(run_id, k, float(v))
    words = [f"{label}wrote {len(job.items())} images to {out} in {seconds:.0f} s"]
    if quality is not None:
        words += [quality.get("training_summary") if training_summary else "", f"generated set's {quality['summary']}"]
    echo("; ".join(x for x in words if x))
    return out
