"""The pipeline's typed configuration: the schema of configs/*.yaml (tiny: 2-core CPU; small: one GPU; paper:
GPUs), whose sections are the other entry points' configurations (mdaug.config loads it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mdaug.bounds import (
    PER_PERSON_MAX,
    SEED_MAX,
    WAIT_MAX_S,
    WORKERS_MAX,
    SettingError,
    choice,
    integer,
    integers,
    named,
    real,
)
from mdaug.data.split import ON_DUPLICATES
from mdaug.evaluation.config import ALL, EvalConfig
from mdaug.flow.sampler import SamplingConfig
from mdaug.ray_mlflow.config import SweepConfig, TrainJobConfig
from mdaug.sim import SimConfig


@dataclass(frozen=True)
class PipelineConfig:
    """What the pipeline runs. data=None simulates the embedded 31-person data set (and, for the evaluation's
    oracle arm, fresh recordings of the same persons).

    name: the configuration's name (an MLflow tag of the pipeline run).
    sim: the simulated task data (data=None); `mdaug simulate`'s section.
    aux: walkers who are not among the task's persons (simulated data only), for the autoencoder: it then
    sees no image of a task person. None, or user data: it trains on the smallest evaluated k-subset.
    train: the training stages' settings (jobs/train.py's section); the pipeline sets stage, data, out, storage,
    experiment and (when given here) workers and resource_wait_s.
    split_on_duplicates: near-duplicate recordings (calibrated on the data set's cross-person distances) that the
    split drew into two splits are moved into one ("move") or the split is refused, naming the pairs ("refuse").
    generator_ks: a DiT per k, trained on the first k train images per person (None: one per evaluated k);
    the evaluation's arms at k use the generator whose budget is the largest k' ≤ k.
    generator_replicates: DiTs per generator k, replicate r trained on its own k-subset (subset seed r; 0: the
    split's first k) with its own seed (train.seed + r): the evaluation replicates the primary over them.
    sweep: the sampling sweep's budget and trial resources (run on the smallest k's DiT); sampling: settings used
    when the sweep is skipped (sweep.trials = 0); jobs/generate.py's section.
    resource_wait_s: seconds an autoscaling cluster gets to add the nodes a training stage or a sweep trial needs
    before the stage is refused (0: at once; TrainJobConfig.resource_wait_s).
    evaluation: the evaluation's arms, k, seeds and budget (data/synthetic/out are filled in by the pipeline).
    storage: where the artifacts live that Ray workers read and write (the images, VA-VAE, latents, checkpoints,
    the sweep's trials) and where every stage's outputs are copied: a location every node reaches (s3://bucket/
    prefix, an NFS folder). "" = the output folder, enough on one machine; `out` stays the driver's working
    folder (stage records, the lock, and the MLflow store when MLFLOW_TRACKING_URI names no server).
    """

    name: str = "tiny"
    out: Path = Path("runs/pipeline")
    data: Path | None = None
    sim: SimConfig = field(default_factory=SimConfig)
    aux: SimConfig | None = None
    val: float = 0.15
    test: float = 0.15
    split_seed: int = 0
    split_on_duplicates: str = "move"
    train: TrainJobConfig = field(default_factory=TrainJobConfig)
    workers: int | None = None  # Ray Train workers (None: train.workers) and generator actors (None: 2)
    resource_wait_s: float = 0.0
    generator_ks: tuple[int, ...] | None = None
    generator_replicates: int = 1
    sweep: SweepConfig = field(default_factory=SweepConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    evaluation: EvalConfig = field(default_factory=EvalConfig)
    experiment: str = "mdaug"
    storage: str = ""

    def __post_init__(self) -> None:
        named(self, "name")
        named(self, "experiment")
        real(self, "val", 0.0, 1.0, lo_open=True, hi_open=True, note=" (a fraction of each person's images)")
        real(self, "test", 0.0, 1.0, lo_open=True, hi_open=True, note=" (a fraction of each person's images)")
        if self.val + self.test >= 1:
            raise SettingError(self, "val", f"{{at}}val={self.val} + {{at}}test={self.test} = {self.val + self.test:g}:"
                                            " the validation and test fractions must leave train images (sum < 1)")
        integer(self, "split_seed", 0, SEED_MAX)
        choice(self, "split_on_duplicates", ON_DUPLICATES)
        if self.workers is not None:
            integer(self, "workers", 1, WORKERS_MAX, " (null: train.workers)")
        real(self, "resource_wait_s", 0.0, WAIT_MAX_S, note=" seconds (0: refuse at once)")
        integers(self, "generator_ks", 0, PER_PERSON_MAX, " (0: all; null: one per evaluated k)", optional=True)
        integer(self, "generator_replicates", 1, 100, " (DiTs per generator k)")
        # every evaluated k having a generator is the pipeline's check (runner.check_settings): the evaluation's
        # own entry point loads this schema too, with generated folders of its own

    @property
    def dit_ks(self) -> tuple[int, ...]:
        return tuple(sorted(self.generator_ks or self.evaluation.ks, key=lambda k: (k == ALL, k)))
