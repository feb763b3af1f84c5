"""The typed configuration of the augmentation-gain evaluation (the `evaluation` section of configs/*.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field

from mdaug.augment import AugmentConfig
from mdaug.bounds import (
    BATCH_MAX,
    COUNT_MAX,
    CPUS_MAX,
    GPUS_MAX,
    LR_MAX,
    PER_PERSON_MAX,
    WIDTH_MAX,
    SettingError,
    integer,
    integers,
    named,
    real,
    reals,
)

ALL = 0  # k = ALL: every real train image of each person
CLASSIFIERS = ("temporal", "cnn2d")
EVAL_TAG = "evaluation"  # the MLflow tag `kind` of an evaluation's parent run  # mdaug.models.classifier architectures


@dataclass(frozen=True)
class EvalConfig:
    """What `eval/augmentation_gain.py` trains and compares.

    data: split manifest of the real data; its test split is the only test set (set by --data, or the pipeline).
    synthetic: generated folders (jobs/generate.py), each with its manifest.json naming what its generator saw;
      the arms at k use the one whose generator saw, of the task's persons, only images of the k-subset.
    oracle: an ID_k folder of fresh simulator images of the same persons (simulated data only), or None.
    ks: real train images per person (the first k of each person in the split's order); ALL (0) = all.
    control_ks: the k values at which the controls and secondary arms run (None: every k); the primary
      comparison (real+synthetic@reference vs real) runs at every k.
    seeds: classifier seeds per generator replicate (each with its own generated draw); a generator replicate is
      a generated folder per k-subset seed (the pipeline's generator_replicates). The primary test and its CI come
      from one crossed model over generator replicates × test images (evaluation/variance.py).
    ratios: real+synthetic@r adds r × k generated images per person.
    reference_ratio: the pre-registered primary comparison is real+synthetic@reference_ratio vs real; also the
      ratio of the combined, oracle and random-label arms (must be one of `ratios`).
    arms: which arms to run (None: all; real and real+synthetic always).
    classifiers: the classifier architectures the primary comparison is reported for ("temporal": the 1-D
      temporal convolution net, "cnn2d": a plain 2-D CNN); the controls run with the first. A gain is called
      robust only when every architecture shows it.
    margin: the pre-registered equivalence margin in accuracy points: a primary whose 90 % CI lies within
      ±margin is "equivalent" (TOST), not merely "not significant".
    probe_seeds: seeds of the arm-blind step-budget probe (on `real` at the largest k, per architecture).
    sensitivity_seeds: classifier seeds per generator replicate of the primary pair (first classifier, every k)
      trained again at half and at double the chosen steps: the primary's sensitivity to the step budget, reported
      beside it, not tested (0: none; at most `seeds`, whose generated draws it reuses).
    steps: optimizer steps per training, the same for every arm (more data is not more compute); with
      `converge`, doubled (up to max_steps) until the largest arm's validation accuracy stops rising by more
      than `convergence_points` (a probe on the validation split, before any test image is scored).
    image_size: classifier input size (images are resized); None = the data's own size.
    allow_generator_extra_data: compare arms whose generator saw more real images than k anyway, labelled
      with the generator's budget, instead of refusing.
    """

    data: str = ""
    synthetic: tuple[str, ...] = ()
    out: str = "runs/eval"
    oracle: str | None = None
    ks: tuple[int, ...] = (5, 10, 20, ALL)
    control_ks: tuple[int, ...] | None = None
    seeds: int = 4
    ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    reference_ratio: float = 1.0
    arms: tuple[str, ...] | None = None
    classifiers: tuple[str, ...] = ("temporal", "cnn2d")
    margin: float = 2.0
    probe_seeds: int = 3
    sensitivity_seeds: int = 1
    steps: int = 300
    converge: bool = True
    max_steps: int = 1200
    convergence_points: float = 1.0
    batch_size: int = 32
    lr: float = 4e-3
    width: int = 128
    image_size: int | None = None
    allow_generator_extra_data: bool = False
    cpus_per_run: float = 1.0
    gpus_per_run: float = 0.0
    experiment: str = "mdaug-eval"
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        from mdaug.evaluation.arms import ALL_ARMS, REAL, SYNTHETIC

        integers(self, "ks", 0, PER_PERSON_MAX, " (0: all)")
        integers(self, "control_ks", 0, PER_PERSON_MAX, " (0: all; null: every k)", optional=True)
        integer(self, "seeds", 1, 1000, " (classifier seeds per generator replicate)")
        reals(self, "ratios", 0.0, 100.0, lo_open=True)
        real(self, "reference_ratio", 0.0, 100.0, lo_open=True)
        if self.control_ks is not None and not set(self.control_ks) <= set(self.ks):
            raise SettingError(self, "control_ks", f"{{at}}control_ks {self.control_ks} must be among {{at}}ks "
                                                   f"{self.ks}: set {{at}}control_ks too")
        if self.reference_ratio not in self.ratios:
            raise SettingError(self, "reference_ratio", f"{{at}}reference_ratio {self.reference_ratio} is not one of "
                                                        f"{{at}}ratios {self.ratios}: set {{at}}reference_ratio too")
        integer(self, "steps", 1, COUNT_MAX)
        real(self, "margin", 0.0, 100.0, lo_open=True, note=" accuracy points")
        integer(self, "probe_seeds", 1, 100)
        integer(self, "sensitivity_seeds", 0, self.seeds, f" (at most seeds={self.seeds}; 0: no sensitivity runs)")
        if not self.classifiers or set(self.classifiers) - set(CLASSIFIERS) or \
                len(set(self.classifiers)) != len(self.classifiers):
            raise SettingError(self, "classifiers", f"{{at}}classifiers={list(self.classifiers)}: one or more of "
                                                    f"{', '.join(CLASSIFIERS)}, each once")
        if self.converge:
            integer(self, "max_steps", self.steps, COUNT_MAX, f" (at least steps={self.steps}, with converge)")
        real(self, "convergence_points", 0.0, 100.0, note=" accuracy points")
        integer(self, "batch_size", 1, BATCH_MAX)
        real(self, "lr", 0.0, LR_MAX, lo_open=True)
        integer(self, "width", 1, WIDTH_MAX)
        if self.image_size is not None:
            integer(self, "image_size", 8, 1024, " pixels (null: the data's own size)")
        real(self, "cpus_per_run", 0.0, CPUS_MAX, lo_open=True)
        real(self, "gpus_per_run", 0.0, GPUS_MAX)
        named(self, "experiment")
        unknown = set(self.arms or ()) - set(ALL_ARMS)
        if unknown:
            raise ValueError(f"unknown arms {sorted(unknown)}; arms: {', '.join(ALL_ARMS)}")
        if self.arms is not None and not {REAL, SYNTHETIC} <= set(self.arms):
            raise ValueError(f"arms must include {REAL!r} and {SYNTHETIC!r} (the primary comparison)")

    @property
    def arm_list(self) -> tuple[str, ...]:
        from mdaug.evaluation.arms import ALL_ARMS

        return tuple(a for a in ALL_ARMS if self.arms is None or a in self.arms)


def k_label(k: int) -> str:
    return "all" if k == ALL else str(k)
