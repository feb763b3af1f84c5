"""The arms of the evaluation and the training set of each run.

An evaluation replicate draws jointly everything that varies: the generator replicate at k (its own random
k-subset and DiT seed: mdaug.data.subsets), the real k-subset that generator saw (every arm of the replicate
trains on exactly those real images), the classifier seed and the added images — disjoint per classifier seed,
so no two seeds train on the same generated or oracle image. A run is (arm, k, replicate, seed, classifier
architecture). The arms of one (replicate, seed, architecture) share the classifier's initialisation, so
arm − comparator is a paired difference; the A/A arm repeats `real` with an independent seed stream. Seeds
derive from the pre-registration's hash (`RunSpec.base`), so a run with more seeds is not an extension of one
with fewer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mdaug.data.subsets import person_order
from mdaug.evaluation.config import ALL, EvalConfig, k_label
from mdaug.evaluation.sets import AddedKey, EvalData, ImageSet
from mdaug.seeds import hash_seed

REAL, CLASSIC, SYNTHETIC, COMBINED, TSTR, ORACLE, NEGATIVE, AA, PLACEBO, PERMUTED = (
    "real", "real+classic", "real+synthetic", "real+synthetic+classic", "synthetic-only", "oracle", "random-labels",
    "A/A", "placebo", "permuted-persons")
ARM_HELP = {
    REAL: "k real images per person (the baseline)",
    SYNTHETIC: "real plus r × k generated images per person; at the reference ratio: the pre-registered primary "
               "comparison against real",
    PLACEBO: "real plus r × k copies of the same real images (the primary's batch composition without new "
             "images): the primary's negative control — its gain over real must be nil",
    PERMUTED: "real plus the primary's generated images with the persons permuted (every generated image of one "
              "person labelled as another): compared with the primary, a gain that needs identity must lose here",
    CLASSIC: "real with classic augmentation (time shift, time/frequency masks sparing the torso band, gain, noise)",
    COMBINED: "real plus generated images, with classic augmentation; compared with real+classic",
    TSTR: "k generated images per person only, tested on real (train-synthetic-test-real)",
    ORACLE: "real plus fresh simulator images of the same persons: the ceiling of a perfect generator (control)",
    NEGATIVE: "real plus the generated images with random labels: a harm check (label noise must not help)",
    AA: "real again with an independent seed stream: a noise reference (significant in ~5 % of runs by design)",
}
ALL_ARMS = tuple(ARM_HELP)
COMPARATOR = {CLASSIC: REAL, SYNTHETIC: REAL, COMBINED: CLASSIC, TSTR: REAL, ORACLE: REAL, NEGATIVE: REAL, AA: REAL,
              PLACEBO: REAL, PERMUTED: SYNTHETIC}
RATIO_ARMS = (COMBINED, ORACLE, NEGATIVE, PLACEBO, PERMUTED)  # run at the reference ratio only


@dataclass(frozen=True)
class RunSpec:
    arm: str
    k: int
    seed: int  # the classifier seed's index within its replicate
    ratio: float = 0.0  # images added per real image (0: none)
    replicate: int = 0  # the generator replicate at k (its own k-subset); index into EvalData.subset_seeds[k]
    arch: str = "temporal"  # the classifier's architecture (mdaug.models.classifier)
    base: int = 0  # the pre-registration's seed base: every seed derives from it
    steps_factor: float = 1.0  # ≠ 1: a sensitivity run of the primary pair at this multiple of the chosen steps

    @property
    def name(self) -> str:
        """Arm name with its ratio, e.g. real+synthetic@1."""
        return f"{self.arm}@{self.ratio:g}" if self.ratio and self.arm != TSTR else self.arm

    @property
    def classic(self) -> bool:
        return self.arm in (CLASSIC, COMBINED)

    @property
    def row(self) -> tuple[int, int]:
        """(replicate, seed): the evaluation replicate this run belongs to."""
        return self.replicate, self.seed

    @property
    def train_seed(self) -> int:
        """The classifier's seed: shared by the arms of one (replicate, seed, architecture); another stream for
        A/A."""
        return hash_seed("classifier", self.base, self.replicate, self.seed, self.arch, self.arm == AA) % 2**31


def plan_runs(cfg: EvalConfig, has_oracle: bool, replicates: dict[int, int] | None = None,
              base: int = 0) -> list[RunSpec]:
    """Every run to train: the primary pair at every k, for every classifier architecture; the other arms at
    cfg.control_ks with the first architecture; the oracle arm only when oracle images are given.
    `replicates`: generator replicates per k (default 1)."""
    arms: list[tuple[str, float]] = []
    for arm in cfg.arm_list:
        if arm == SYNTHETIC:
            arms += [(SYNTHETIC, r) for r in cfg.ratios]
        elif arm in RATIO_ARMS:
            arms += [(arm, cfg.reference_ratio)] if arm != ORACLE or has_oracle else []
        else:
            arms.append((arm, 1.0 if arm == TSTR else 0.0))
    primary = {(REAL, 0.0), (SYNTHETIC, cfg.reference_ratio)}
    controls = set(cfg.ks if cfg.control_ks is None else cfg.control_ks)
    reps = replicates or {}
    return [RunSpec(arm, k, seed, ratio, rep, arch, base)
            for arch in cfg.classifiers for k in cfg.ks for arm, ratio in arms
            if (arm, ratio) in primary or (k in controls and arch == cfg.classifiers[0])
            for rep in range(reps.get(k, 1)) for seed in range(cfg.seeds)]


STEP_FACTORS = (0.5, 2.0)  # the primary's sensitivity to the step budget


def plan_sensitivity(cfg: EvalConfig, replicates: dict[int, int] | None = None, base: int = 0) -> list[RunSpec]:
    """The primary pair again at half and double the chosen steps: first classifier, every k, every generator
    replicate, cfg.sensitivity_seeds seeds (the first ones: their generated draws and initialisations)."""
    reps = replicates or {}
    return [RunSpec(arm, k, seed, ratio, rep, cfg.classifiers[0], base, factor)
            for factor in STEP_FACTORS for k in cfg.ks for arm, ratio in ((REAL, 0.0), (SYNTHETIC, cfg.reference_ratio))
            for rep in range(reps.get(k, 1)) for seed in range(cfg.sensitivity_seeds)]


def primary_name(cfg: EvalConfig) -> str:
    return RunSpec(SYNTHETIC, 0, 0, cfg.reference_ratio).name


def real_counts(train_counts: np.ndarray, k: int) -> np.ndarray:
    """Real images per person a run at this k uses (all of them for k = ALL or persons with fewer)."""
    return train_counts if k == ALL else np.minimum(train_counts, k)


def real_subset(data: EvalData, k: int, replicate: int = 0) -> np.ndarray:
    """Indices into data.train of the replicate's k-subset (its generator's subset seed: mdaug.data.subsets)."""
    seed = data.subset_seeds.get(k, [0])[replicate]
    parts = []
    for label in range(data.num_classes):
        idx = data.train.indices_of(label)
        order = person_order(len(idx), data.person_of[label], seed)
        parts.append(np.sort(idx[order if k == ALL else order[:k]]))
    return np.concatenate(parts)


def source_of(arm: str) -> str | None:
    """Which added set an arm draws from: 'oracle', 'synthetic', 'real' (copies), or None (real only)."""
    return {REAL: None, CLASSIC: None, AA: None, ORACLE: "oracle", PLACEBO: "real"}.get(arm, "synthetic")


def added_count(arm: str, ratio: float, real: np.ndarray) -> np.ndarray:
    """Images per person an arm draws from its added set, given its real counts."""
    if source_of(arm) is None:
        return np.zeros_like(real)
    return real if arm == TSTR else np.ceil(real * ratio).astype(int)


def images_needed(specs: list[RunSpec], train_counts: np.ndarray) -> dict[str, dict[int, int]]:
    """Images of one person each added set ('synthetic' per generated folder, 'oracle') must hold at each k: the
    largest draw of one run × the classifier seeds (every seed draws its own images)."""
    need: dict[str, dict[int, int]] = {"synthetic": {}, "oracle": {}}
    seeds = 1 + max((s.seed for s in specs), default=0)
    for s in specs:
        source = source_of(s.arm)
        if source in need:
            n = int(added_count(s.arm, s.ratio, real_counts(train_counts, s.k)).max()) * seeds
            need[source][s.k] = max(need[source].get(s.k, 0), n)
    return need


def added_key(spec: RunSpec) -> AddedKey:
    """Which of EvalData's added sets a run draws from: 'oracle', its (k, replicate) generated set, or None."""
    what = source_of(spec.arm)
    return (spec.k, spec.replicate) if what == "synthetic" else "oracle" if what == "oracle" else None


def added_set(data: EvalData, spec: RunSpec) -> ImageSet | None:
    if source_of(spec.arm) == "real":
        return data.train
    return data.added_sets().get(added_key(spec))


def check_plan(data: EvalData, specs: list[RunSpec]) -> list[str]:
    """Every run must find the images it needs; fail before training, naming the shortfall and the fix.
    Returns notes (persons with fewer real images than k)."""
    train_counts = data.train.counts(data.num_classes)
    notes = []
    for k in dict.fromkeys(s.k for s in specs):
        short = np.flatnonzero(train_counts < (1 if k == ALL else k))
        if len(short):
            notes.append(f"k={k_label(k)}: persons {[data.person_of[i] for i in short]} have fewer real train "
                         f"images than k (they use all they have)")
    seeds = 1 + max((s.seed for s in specs), default=0)
    for spec in dict.fromkeys(RunSpec(s.arm, s.k, 0, s.ratio, s.replicate) for s in specs):
        what = source_of(spec.arm)
        if what in (None, "real"):
            continue
        source = added_set(data, spec)
        want = added_count(spec.arm, spec.ratio, real_counts(train_counts, spec.k)) * seeds
        have = source.counts(data.num_classes)
        lacking = np.flatnonzero(have < want)
        if len(lacking):
            i = lacking[0]
            raise ValueError(f"{spec.arm} at k={k_label(spec.k)} needs {want[i]} {what} images of person "
                             f"ID_{data.person_of[i]} ({seeds} classifier seeds, each with its own images) but "
                             f"{source.root} has {have[i]} ({len(lacking)} persons short); make more (e.g. "
                             f"jobs/generate.py --per-person {int(want.max())}) or lower seeds / ks / ratios")
    return sorted(notes)


def derangement(n: int, seed: int) -> np.ndarray:
    """A permutation of range(n) that moves every element (n ≥ 2)."""
    rng = np.random.default_rng(seed)
    while True:
        p = rng.permutation(n)
        if n < 2 or not np.any(p == np.arange(n)):
            return p


def training_set(data: EvalData, spec: RunSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and labels the run trains on."""
    real = real_subset(data, spec.k, spec.replicate)
    need = real_counts(data.train.counts(data.num_classes), spec.k)
    added = added_count(spec.arm, spec.ratio, need)
    source = added_set(data, spec)
    parts: list[tuple[ImageSet, np.ndarray, np.ndarray]] = []
    if spec.arm != TSTR:
        parts.append((data.train, real, data.train.labels[real]))
    if source is not None:
        persons = derangement(data.num_classes, hash_seed("permuted", spec.base, spec.replicate, spec.seed))
        for label in range(data.num_classes):
            n = int(added[label])
            if source is data.train:  # the placebo: the person's real subset repeated
                extra = np.resize(real[data.train.labels[real] == label], n)
            else:  # every seed its own slice of one fixed order: disjoint across seeds
                pool = source.indices_of(label)
                order = np.random.default_rng(hash_seed("draw", spec.base, spec.replicate, label)).permutation(pool)
                extra = order[spec.seed * n:(spec.seed + 1) * n]
            labels = source.labels[extra]
            if spec.arm == NEGATIVE:
                noise = np.random.default_rng(hash_seed("noise", spec.base, spec.replicate, spec.seed, label))
                labels = noise.integers(0, data.num_classes, len(extra))
            elif spec.arm == PERMUTED:
                labels = persons[labels]
            parts.append((source, extra, labels))
    x = torch.cat([s.images[torch.from_numpy(i)] for s, i, _ in parts])
    y = torch.from_numpy(np.concatenate([lab for _, _, lab in parts])).long()
    return x, y
