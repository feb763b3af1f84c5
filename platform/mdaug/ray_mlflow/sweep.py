"""Ray Tune sweep of sampling settings: each trial generates images for every person and is scored on the
real validation split (which the generator never trained on): by default the accuracy there of a classifier trained
on the trial's images alone (train on synthetic, test on real), with the person classifier's Fréchet distance,
conditional accuracy and diversity beside it. Trials run on
a GPU when given one; a rerun resumes an interrupted sweep of the same inputs (sweep_resume.py)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import numpy as np
import ray
import torch
import yaml
from mlflow.entities import RunTag
from mlflow.tracking import MlflowClient
from ray import tune

from mdaug.console import verbose
from mdaug.data.images import load_rows, load_split
from mdaug.data.manifest import Manifest
from mdaug.flow.sampler import SamplingConfig
from mdaug.generation import Generator, image_seed
from mdaug.imaging import save_figure
from mdaug.locks import locks_output
from mdaug.memorisation import memorisation
from mdaug.metrics import fidelity, synthetic_to_real_accuracy
from mdaug.models.classifier import load_classifier
from mdaug.ray_mlflow.config import SweepConfig
from mdaug.ray_mlflow.preflight import check_placeable
from mdaug.ray_mlflow.ray_session import connect_ray
from mdaug.ray_mlflow.sweep_resume import resumable_tuner, tune_storage
from mdaug.ray_mlflow.tracking import log_params, mlflow_run, run_outcome, tracking_uri
from mdaug.storage import absolute, file_sha256, write_text
from mdaug.tables import markdown_table

NEW_OUTPUT = "RAY_AIR_NEW_OUTPUT"  # Tune's console engine: 0 = the legacy one, silent at verbosity 0


def search_space(c: SweepConfig) -> dict:
    return {"cfg_scale": tune.uniform(*c.cfg_scale), "steps": tune.lograndint(c.steps[0], c.steps[1] + 1),
            "cfg_interval_start": tune.uniform(*c.cfg_interval_start),
            "timestep_shift": tune.uniform(*c.timestep_shift)}


def search_algorithm(name: str, seed: int = 0):
    """The search, seeded: the same sweep configuration tries the same settings."""
    if name == "random":
        from ray.tune.search.basic_variant import BasicVariantGenerator

        return BasicVariantGenerator(random_state=seed)
    if name == "optuna":
        if importlib.util.find_spec("optuna") is None:
            raise ValueError("search=optuna needs the optuna package (pip install '.[optuna]'); or use search=random")
        from ray.tune.search.optuna import OptunaSearch

        return OptunaSearch(seed=seed)
    raise ValueError(f"unknown search {name!r}; use random or optuna")


SETTINGS = ("cfg_scale", "steps", "cfg_interval_start", "timestep_shift")
OUTPUTS = ("trials.csv", "trials.md", "trials.png", "best_sampling.yaml")
OBJECTIVES = {"tstr": ("tstr_accuracy", "max"), "frechet": ("frechet", "min")}  # objective → (metric, mode)


def trial_device() -> str:
    """cuda when Ray gave this trial a GPU, else cpu."""
    return "cuda" if ray.get_gpu_ids() else "cpu"


def trial(config: dict, ctx: dict) -> None:
    """One Tune trial: generate, score, report, as one MLflow child run (with the device and the Ray resources it
    got) that ends FINISHED, or FAILED with the error. `ctx` (tune.with_parameters) is the running sweep's: a
    resumed sweep passes its own."""
    torch.set_num_threads(1)
    device = trial_device()
    client, run_id = trial_run(config, ctx, device)
    with run_outcome(client, run_id):
        metrics = score_trial(config, ctx, device)
        for k, v in metrics.items():
            client.log_metric(run_id, k, v)
    tune.report(metrics)


def trial_run(config: dict, ctx: dict, device: str) -> tuple[MlflowClient, str]:
    """The trial's MLflow run, exactly one per Tune trial: a trial a restored sweep runs again (it was cut off)
    takes up the run it started before (found by its Tune folder), now under the running sweep's run."""
    client = MlflowClient(ctx["tracking_uri"])
    key = hashlib.sha256(str(tune.get_context().get_trial_dir()).encode()).hexdigest()[:16]
    tags = {"mlflow.parentRunId": ctx["parent_run_id"], "mlflow.runName": f"trial-{tune.get_context().get_trial_id()}",
            "stage": "sweep-trial", "device": device, "tune_trial": key,
            "ray_resources": json.dumps(ray.get_runtime_context().get_assigned_resources(), sort_keys=True)}
    found = client.search_runs([ctx["experiment_id"]], f"tags.tune_trial = '{key}'", max_results=1)
    if found:
        run_id = found[0].info.run_id
        client.update_run(run_id, status="RUNNING")
        client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
    else:
        run_id = client.create_run(ctx["experiment_id"], tags=tags).info.run_id
    log_params(client, run_id, {k: config[k] for k in SETTINGS})
    return client, run_id


def score_trial(config: dict, ctx: dict, device: str) -> dict[str, float]:
    """Generate `per_person` images per person with the trial's settings and score them on real validation."""
    gen = Generator.load(ctx["dit"], ctx["vae"])
    clf, info = load_classifier(ctx["classifier"])
    clf.to(device)
    real, real_labels, seen = ctx["val"]
    real, seen = real.to(device), seen.to(device)
    sampling = SamplingConfig(steps=int(config["steps"]), cfg_scale=float(config["cfg_scale"]),
                              cfg_interval_start=float(config["cfg_interval_start"]),
                              timestep_shift=float(config["timestep_shift"]))
    persons = sorted(gen.labels)
    items = [(p, i) for p in persons for i in range(ctx["per_person"])]
    t0 = time.perf_counter()
    fake = gen.images([gen.labels[p] for p, _ in items], [image_seed(ctx["seed"], p, i) for p, i in items], sampling,
                      device=device)
    rate = len(items) / (time.perf_counter() - t0)
    if fake.shape[1] != real.shape[1]:
        fake = fake.mean(1, keepdim=True) if real.shape[1] == 1 else fake.expand(-1, real.shape[1], -1, -1)
    fake = fake.to(device)
    fake_labels = np.array([gen.labels[p] for p, _ in items])
    fid = fidelity(clf, real, real_labels.numpy(), fake, fake_labels)
    copies = memorisation(clf, seen, real, fake)
    tstr = synthetic_to_real_accuracy(fake, fake_labels, real, real_labels.numpy(), clf.head.out_features,
                                      ctx["tstr_steps"], seed=ctx["seed"])
    return {**fid.to_dict(), "tstr_accuracy": tstr, "identity_ratio": fid.conditional_accuracy / info["val_accuracy"],
            "memorisation_feature_ratio": copies.feature_ratio, "memorisation_pixel_ratio": copies.pixel_ratio,
            "near_copies": copies.feature_near_copies, "images_per_s": rate}


def trial_bundle(cfg: SweepConfig) -> dict[str, float]:
    """The Ray resources of one trial."""
    return {k: v for k, v in (("CPU", cfg.cpus_per_trial), ("GPU", cfg.gpus_per_trial)) if v > 0}


def check_trial_resources(cfg: SweepConfig, wait_s: float) -> None:
    """A trial the cluster cannot place would wait forever (Tune only warns): an error now, after giving an
    autoscaling cluster wait_s seconds to add a node for it."""
    check_placeable("a sweep trial", trial_bundle(cfg), 1, wait_s, "cpus_per_trial / gpus_per_trial (the sweep "
                    "section)", f"--resource-wait-s SECONDS (resource_wait_s in the pipeline; now {wait_s:g})")


def sweep_inputs(cfg: SweepConfig, gen: Generator, classifier: str, manifest: Manifest) -> dict:
    """What a resumed sweep must share with the interrupted one: its whole configuration (search, budget, seed,
    images per person, trial resources, which Tune keeps with each restored trial), the DiT, its VAE, the identity
    classifier and the data."""
    return {"sweep": asdict(cfg), "dit": gen.info["dit_sha256"], "vae": gen.stats.vae_identity,
            "classifier": file_sha256(classifier), "manifest": manifest.content_hash()}


@contextmanager
def tune_console() -> Iterator[None]:
    """Without MDAUG_VERBOSE=1, Tune's legacy console engine at verbosity 0 while the sweep runs: it prints nothing,
    where the default engine prints an experiment box and TensorBoard advice at every verbosity (the per-trial
    lines come from TrialLines)."""
    if verbose():
        yield
        return
    before = os.environ.get(NEW_OUTPUT)
    os.environ[NEW_OUTPUT] = "0"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(NEW_OUTPUT, None)
        else:
            os.environ[NEW_OUTPUT] = before


def settings_words(config: dict) -> str:
    """The sampling settings of a trial's config, as the console shows them: "cfg_scale 3.95 · steps 28 · …"."""
    return " · ".join(f"{k} {config[k]:.3g}" for k in SETTINGS if k in config)


class TrialLines(tune.Callback):
    """On the driver: one console line per finished or failed trial, its settings and objective (Tune's own tables
    only with MDAUG_VERBOSE=1)."""

    def __init__(self, trials: int, metric: str) -> None:
        self.trials, self.metric = trials, metric

    def _line(self, trials: list, trial, outcome: str) -> None:
        done = sum(t is trial or t.status in ("TERMINATED", "ERROR") for t in trials)
        print(f"[sweep] trial {done}/{self.trials} · {settings_words(trial.config)} · {outcome}", flush=True)

    def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
        result = trial.last_result or {}
        self._line(trials, trial, f"{self.metric} {result.get(self.metric, float('nan')):.3f} · "
                                  f"{result.get('time_total_s', 0):.0f} s")

    def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
        self._line(trials, trial, "failed (the sweep names its error when it ends)")


METRIC_LABELS = {"tstr_accuracy": "real val accuracy of a classifier trained on the samples (higher is better)",
                 "frechet": "Fréchet distance (classifier features, lower is better)"}


def plot_trials(df, path: Path, metric: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, ("config/cfg_scale", "config/steps"), strict=True):
        sc = ax.scatter(df[key], df[metric], c=df["conditional_accuracy"], cmap="viridis", vmin=0, vmax=1)
        ax.set_xlabel(key.split("/")[1])
        ax.set_ylabel(METRIC_LABELS[metric])
        if key.endswith("steps"):
            ax.set_xscale("log")
    fig.colorbar(sc, ax=axes, label="conditional accuracy")
    save_figure(fig, path, dpi=100, bbox_inches="tight")
    plt.close(fig)


@locks_output("out")  # a second sweep writing the same --out is refused at once
def run_sweep(dit: str, data: str | None, out: Path, cfg: SweepConfig, vae: str | None = None,
              experiment: str = "mdaug", tracking_dir: Path | None = None, parent_run_id: str | None = None,
              classifier: str | None = None, tune_root: str | None = None, resource_wait_s: float = 0.0) -> dict:
    """Returns the best sampling settings (also written to out/best_sampling.yaml). `classifier`: the identity
    classifier (default: the one the DiT checkpoint names); scored on the real validation split, which neither
    the generator nor that classifier trained on. The Tune experiment lives under `tune_root` (default
    tune_storage(out)): rerun with the same inputs, an interrupted sweep resumes (when its Tune state files are the
    ones out/tune_state.sha256.json records: sweep_resume.py); with others, it starts afresh.
    `dit`, `vae`, `classifier`, `tune_root`: local paths or URIs every node reaches."""
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    gen = Generator.load(dit, vae)
    data = data or gen.info.get("training_manifest")
    if not data:
        raise ValueError(f"{dit} records no training manifest; pass --data MANIFEST")
    manifest = Manifest.load(data)
    classifier = classifier or gen.info.get("classifier_uri")
    if not classifier:
        raise ValueError(f"{dit} names no identity classifier; pass --classifier")
    _, info = load_classifier(classifier)
    val_x, val_y = load_split(manifest, "val", info["size"], info["channels"])
    seen_x, _ = load_rows(manifest, gen.seen_rows(manifest), info["size"], info["channels"])
    tracking_dir = tracking_dir or out
    tune_root = tune_root or tune_storage(out)
    metric, mode = OBJECTIVES[cfg.objective]
    connect_ray()
    check_trial_resources(cfg, resource_wait_s)
    with mlflow_run(tracking_dir, experiment, "sweep-sampling", {"stage": "sweep"}, parent_run_id) as (client, run_id):
        log_params(client, run_id, {f"sweep.{k}": v for k, v in cfg.__dict__.items()})
        ctx = {"dit": absolute(dit), "vae": vae and absolute(vae), "classifier": absolute(classifier),
               "val": (val_x, val_y, seen_x), "per_person": cfg.per_person, "seed": cfg.seed,
               "tstr_steps": cfg.tstr_steps,
               "tracking_uri": tracking_uri(tracking_dir), "parent_run_id": run_id,
               "experiment_id": client.get_run(run_id).info.experiment_id}
        os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
        trainable = tune.with_resources(tune.with_parameters(trial, ctx=ctx),
                                        {"cpu": cfg.cpus_per_trial, "gpu": cfg.gpus_per_trial})
        tuner, resumed = resumable_tuner(
            trainable, search_space(cfg),
            tune.TuneConfig(metric=metric, mode=mode, num_samples=cfg.trials,
                            search_alg=search_algorithm(cfg.search, cfg.seed)),
            tune_root, sweep_inputs(cfg, gen, classifier, manifest), record_dir=out,
            callbacks=(TrialLines(cfg.trials, metric),))
        client.set_tag(run_id, "resumed", str(resumed).lower())
        if resumed:
            print(f"resuming the interrupted sweep in {tune_root}: its finished trials are kept", flush=True)
        else:
            for f in OUTPUTS:  # an earlier sweep's results must not outlive it
                (out / f).unlink(missing_ok=True)
        t0 = time.perf_counter()
        with tune_console():
            results = tuner.fit()
        errors = [r.error for r in results if r.error]
        if errors:
            raise RuntimeError(f"{len(errors)} of {cfg.trials} trials failed; first: {errors[0]}. Rerun to retry "
                               "them (the finished ones are kept)")
        # ties (tstr's accuracies are counts over few images) are broken by Fréchet, then by the settings: the
        # same trials give the same best settings whatever order they finished in (a resumed sweep's included)
        keys = list(dict.fromkeys([metric, "frechet", *(f"config/{k}" for k in SETTINGS)]))
        df = results.get_dataframe().sort_values(keys, ascending=[mode == "min"] + [True] * (len(keys) - 1),
                                                 kind="mergesort")
        cols = [f"config/{k}" for k in SETTINGS] + [
            "tstr_accuracy", "frechet", "conditional_accuracy", "identity_ratio", "diversity_ratio",
            "memorisation_feature_ratio", "near_copies", "images_per_s"]
        table = df[cols].rename(columns=lambda c: c.replace("config/", ""))
        write_text(out / "trials.csv", table.to_csv(index=False))
        write_text(out / "trials.md", markdown_table(table.to_dict("records")))
        plot_trials(df, out / "trials.png", metric)
        best = {k: df.iloc[0][f"config/{k}"] for k in SETTINGS}
        best_settings = {k: (int(best[k]) if k == "steps" else float(best[k])) for k in SETTINGS}
        write_text(out / "best_sampling.yaml", yaml.safe_dump(best_settings, sort_keys=True))
        for f in OUTPUTS:
            client.log_artifact(run_id, str(out / f))
        client.log_metric(run_id, f"best_{metric}", float(df.iloc[0][metric]))
        client.log_metric(run_id, "sweep_wall_time_s", time.perf_counter() - t0)
    if verbose():
        print(table.to_string(index=False))
    print(f"[sweep] best: {settings_words(best_settings)} ({metric} {float(df.iloc[0][metric]):.3f}; every trial's "
          f"figures in {out / 'trials.md'}) → {out / 'best_sampling.yaml'}")
    return best_settings
