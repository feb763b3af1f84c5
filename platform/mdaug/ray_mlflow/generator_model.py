"""The generator as one MLflow model: a pyfunc whose artifacts are the DiT checkpoint (EMA weights and latent
statistics inside) and its VA-VAE, whose model config holds the sampling settings and the batch size, registered
under a name with an alias. Rows of a request that share a seed and a count are one `GenerationJob`, so their
images are the bytes `jobs/generate.py --persons … --per-person count --seed seed` writes with the same batch.
An MLflow 3 logged model from code (`generator_code.py`) with the mdaug package as its code path and pinned
requirements for what loading it imports, so `mlflow models serve` runs it where mdaug is not installed."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path

import mlflow
import pandas as pd
import torch
from mlflow.entities import LoggedModelStatus
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import Model, ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.tracking._model_registry import utils as registry_utils
from mlflow.tracking._tracking_service import utils as tracking_utils
from mlflow.types import ColSpec, Schema

import mdaug
from mdaug.console import verbose
from mdaug.flow.sampler import SamplingConfig
from mdaug.generation import GenerationJob, Generator, check_job, chunk_files
from mdaug.storage import read_bytes

MODEL_NAME = "mdaug-generator"
ALIAS = "best"
ARTIFACT_PATH = "generator"  # the logged model's name in its run
MODEL_CODE = Path(__file__).with_name("generator_code.py")
# what loading the model imports, directly (the rest comes with these; psutil: lightning's CPU accelerator imports
# it where installed); tests/test_generator_model.py checks it
SERVING_PACKAGES = ("mlflow", "torch", "lightning", "torchmetrics", "numpy", "pillow", "pandas", "pyarrow", "PyYAML",
                    "scipy", "matplotlib", "tqdm", "transformers", "rich", "fsspec", "psutil")
INPUT_EXAMPLE = pd.DataFrame({"person": [1], "count": [1], "seed": [0]})
SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("long", "person"), ColSpec("long", "count"), ColSpec("long", "seed", required=False)]),
    outputs=Schema([ColSpec("long", "person"), ColSpec("long", "index"), ColSpec("long", "seed"),
                    ColSpec("binary", "image")]))


@contextmanager
def actor_threads(device: str) -> Iterator[None]:
    """On CPU, one torch thread while inside, as in `jobs/generate.py`'s Ray actors (num_cpus=1): CPU kernels
    round differently with more threads, enough to change a pixel by 1."""
    threads = torch.get_num_threads()
    if device == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class GeneratorModel(mlflow.pyfunc.PythonModel):
    """predict(DataFrame person, count[, seed = 0]) → DataFrame person, index, seed (the run seed), image (the
    encoded file: PNG or the training data's format and channel mode)."""

    def load_context(self, context) -> None:
        self.gen = Generator.load(context.artifacts["dit"], context.artifacts["vae"])  # no vae_uri is followed
        config = context.model_config
        self.batch = int(config["batch"])
        self.sampling = SamplingConfig(**config["sampling"])
        self.device = "cuda" if torch.cuda.is_available() else "cpu"

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        requests = model_input.assign(seed=model_input["seed"] if "seed" in model_input else 0)
        with actor_threads(self.device):
            rows = self._generate(requests)
        return pd.DataFrame(rows, columns=["person", "index", "seed", "image"])

    def _generate(self, requests: pd.DataFrame) -> list[tuple[int, int, int, bytes]]:
        rows = []
        for (seed, count), group in requests.groupby(["seed", "count"], sort=False):
            persons = check_job(self.gen, int(count), [int(p) for p in group["person"]])
            job = GenerationJob(int(count), persons, int(seed), self.sampling, self.batch)
            for chunk in job.chunks():
                files = chunk_files(self.gen, job, chunk, self.device)
                rows += [(p, i, int(seed), f) for (p, i), f in zip(chunk, files, strict=True)]
        return rows


def version_tags(gen: Generator, dit: str, sampling: SamplingConfig) -> dict[str, str]:
    """What a registered version was made from: its training manifest (content hash and location), the DiT
    (location and sha256), the VA-VAE (identity and location) and the sampling settings."""
    info = gen.info
    return {"manifest_hash": str(info["training_manifest_hash"]), "manifest_uri": str(info["training_manifest"]),
            "dit_uri": dit, "dit_sha256": info["dit_sha256"], "vae_identity": str(info["vae_identity"]),
            "vae_uri": info["vae_uri"], "sampling": json.dumps(asdict(sampling), sort_keys=True)}


@contextmanager
def tracking_at(uri: str) -> Iterator[None]:
    """MLflow's fluent API pointed at `uri` (tracking and registry) while inside (Model.log and the registry store
    read the global URI); after, the globals and the environment variables MLflow's setters write are as before."""
    before = tracking_utils._tracking_uri, registry_utils._registry_uri  # as MLflow's own _use_tracking_uri reads it
    env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before[0])
        mlflow.set_registry_uri(before[1])
        for k, v in env.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def serving_requirements() -> list[str]:
    """SERVING_PACKAGES pinned to the versions installed here."""
    return [f"{p}=={version(p)}" for p in SERVING_PACKAGES]


REGISTRY_NOTICES = re.compile(r"Successfully registered model |Registered model .* already exists\. |Created version ")


@contextmanager
def registry_notices() -> Iterator[None]:
    """MLflow's own notices of a registration (the caller prints the version it made) kept off the console
    unless MDAUG_VERBOSE=1; anything else MLflow writes to stderr meanwhile still shows."""
    buffer = io.StringIO()
    try:
        with redirect_stderr(buffer):
            yield
    finally:
        kept = [x for x in buffer.getvalue().splitlines(keepends=True) if verbose() or not REGISTRY_NOTICES.match(x)]
        sys.stderr.write("".join(kept))


def log_generator(client: MlflowClient, run_id: str, dit: str, sampling: SamplingConfig, name: str = MODEL_NAME,
                  alias: str = ALIAS, batch: int = 64) -> ModelVersion:
    """Log the DiT `dit` (a path or storage URI), the VA-VAE it names and `sampling` as an MLflow logged model of
    the run, register it as a new version of `name` tagged with its provenance, and point `alias` at it."""
    gen = Generator.load(dit)  # refuses a DiT without statistics or whose VA-VAE does not match
    # created here, in the run's experiment: Model.log alone would put it in the fluent API's active experiment
    run = client.get_run(run_id)  # its user and source tags: the logged model page's "Created by", "Logged from"
    context = {k: v for k, v in run.data.tags.items() if k == "mlflow.user" or k.startswith("mlflow.source.")}
    model = client.create_logged_model(run.info.experiment_id, ARTIFACT_PATH, run_id, tags=context,
                                       model_type="generator")
    with tempfile.TemporaryDirectory() as tmp, tracking_at(client.tracking_uri):
        files = {"dit": Path(tmp) / "dit.pt", "vae": Path(tmp) / "vae.pt"}
        files["dit"].write_bytes(read_bytes(dit))
        files["vae"].write_bytes(read_bytes(gen.info["vae_uri"]))
        code = shutil.copytree(Path(mdaug.__file__).parent, Path(tmp) / "code" / "mdaug",
                               ignore=shutil.ignore_patterns("__pycache__"))
        Model.log(None, name=ARTIFACT_PATH, flavor=mlflow.pyfunc, run_id=run_id, model_id=model.model_id,
                  python_model=str(MODEL_CODE), artifacts={k: str(v) for k, v in files.items()},
                  model_config={"sampling": asdict(sampling), "batch": batch}, signature=SIGNATURE,
                  input_example=INPUT_EXAMPLE, code_paths=[str(code)], pip_requirements=serving_requirements())
        if client.get_logged_model(model.model_id).status != LoggedModelStatus.READY:
            client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
        try:
            client.create_registered_model(name, description="mdaug generator: DiT (EMA) + VA-VAE + sampling settings")
        except MlflowException as err:
            if err.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        # the fluent call links the version to the logged model both ways (the UI's Models tab shows it)
        with registry_notices():
            mv = mlflow.register_model(model.model_uri, name, tags=version_tags(gen, dit, sampling))
    client.set_registered_model_alias(name, alias, mv.version)
    return mv


@dataclass(frozen=True)
class RegisteredGenerator:
    """A registered generator's files, downloaded, and its sampling settings."""

    name: str
    version: str
    dit: Path
    vae: Path
    sampling: dict
    batch: int


def parse_model_uri(uri: str) -> tuple[str, str | None, str | None]:
    """models:/NAME@ALIAS or models:/NAME/VERSION → (name, alias, version)."""
    m = re.fullmatch(r"models:/([^/@]+)(?:@([^/]+)|/(\d+))", uri)
    if m is None:
        raise ValueError(f"--model {uri!r} is not models:/NAME@ALIAS or models:/NAME/VERSION "
                         f"(e.g. models:/{MODEL_NAME}@{ALIAS})")
    return m.group(1), m.group(2), m.group(3)


def download_generator(uri: str, tracking: str, dst: Path) -> RegisteredGenerator:
    """Resolve a models:/ URI in the registry at `tracking` and download the model into `dst` (replaced)."""
    name, alias, number = parse_model_uri(uri)
    client = MlflowClient(tracking, registry_uri=tracking)
    try:
        mv = client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, number)
    except MlflowException as err:
        known = ", ".join(m.name for m in client.search_registered_models()) or "none"
        raise ValueError(f"--model {uri}: {err.message} in the registry {tracking} (registered models: {known}; "
                         "point --tracking-dir or MLFLOW_TRACKING_URI at the pipeline's store)") from err
    shutil.rmtree(dst, ignore_errors=True)
    model_id = mv.source.removeprefix("models:/") if mv.source.startswith("models:/m-") else None  # else pre-MLflow 3
    source = client.get_logged_model(model_id).artifact_location if model_id else mv.source
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(dst), tracking_uri=tracking))
    flavor = Model.load(local).flavors["python_function"]
    config = flavor["config"]
    return RegisteredGenerator(name, mv.version, local / flavor["artifacts"]["dit"]["path"],
                               local / flavor["artifacts"]["vae"]["path"], config["sampling"], int(config["batch"]))
