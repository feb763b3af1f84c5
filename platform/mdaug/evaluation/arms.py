"""The arms of the evaluation and the training set of each run.

At one k every arm trains on the same real images: the first k train images of each person in the split's
order (the nested `mdaug split --train-per-person k` subsets), for every seed — exactly what a generator for
that k may have seen. A seed fixes the classifier's initialisation (shared by the arms of that seed, so
arm − comparator is a paired difference), its batch draws and which added images are drawn; the A/A arm
repeats `real` with an independent seed stream, so its difference is pure training noise."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mdaug.evaluation.config import ALL, EvalConfig, k_label
from mdaug.evaluation.sets import EvalData, ImageSet

REAL, CLASSIC, SYNTHETIC, COMBINED, TSTR, ORACLE, NEGATIVE, AA = (
    "real", "real+classic", "real+synthetic", "real+synthetic+classic", "synthetic-only", "oracle", "random-labels",
    "A/A")
ARM_HELP = {
    REAL: "k real images per person (the baseline)",
    SYNTHETIC: "real plus r × k generated images per person; at the reference ratio: the pre-registered primary "
               "comparison against real",
    CLASSIC: "real with classic augmentation (time shift, time/frequency masks sparing the torso band, gain, noise)",
    COMBINED: "real plus generated images, with classic augmentation; compared with real+classic",
    TSTR: "k generated images per person only, tested on real (train-synthetic-test-real)",
    ORACLE: "real plus fresh simulator images of the same persons: the ceiling of a perfect generator (control)",
    NEGATIVE: "real plus the generated images with random labels: a harm check (label noise must not help)",
    AA: "real again with an independent seed stream: its gain over real must be non-significant (control of the "
        "primary test's false-positive rate)",
}
ALL_ARMS = tuple(ARM_HELP)
COMPARATOR = {CLASSIC: REAL, SYNTHETIC: REAL, COMBINED: CLASSIC, TSTR: REAL, ORACLE: REAL, NEGATIVE: REAL, AA: REAL}
RATIO_ARMS = (COMBINED, ORACLE, NEGATIVE)  # run at the reference ratio only


@dataclass(frozen=True)
class RunSpec:
    arm: str
    k: int
    seed: int
    ratio: float = 0.0  # images added per real image (0: none)

    @property
    def name(self) -> str:
        """Arm name with its ratio, e.g. real+synthetic@1."""
        return f"{self.arm}@{self.ratio:g}" if self.ratio and self.arm != TSTR else self.arm

    @property
    def classic(self) -> bool:
        return self.arm in (CLASSIC, COMBINED)

    @property
    def train_seed(self) -> int:
        """The classifier's seed: shared by the arms of one seed, another stream for A/A."""
        return self.seed + (1_000_003 if self.arm == AA else 0)


def plan_runs(cfg: EvalConfig, has_oracle: bool) -> list[RunSpec]:
    """Every (arm, k, seed) to train: the primary pair at every k, the other arms at cfg.control_ks; the oracle
    arm only when oracle images are given."""
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
    return [RunSpec(arm, k, seed, ratio) for k in cfg.ks for arm, ratio in arms for seed in range(cfg.seeds)
            if (arm, ratio) in primary or k in controls]


def primary_name(cfg: EvalConfig) -> str:
    return RunSpec(SYNTHETIC, 0, 0, cfg.reference_ratio).name


def _pick(indices: np.ndarray, n: int, seed: int, label: int, source: int) -> np.ndarray:
    order = np.random.default_rng([seed, label, source]).permutation(len(indices))
    return indices[order[:n]]


def real_counts(train_counts: np.ndarray, k: int) -> np.ndarray:
    """Real images per person a run at this k uses (all of them for k = ALL or persons with fewer)."""
    return train_counts if k == ALL else np.minimum(train_counts, k)


def real_subset(train: ImageSet, num_classes: int, k: int) -> np.ndarray:
    """Indices of the first k train images of each person, in the split's order (the nested subsets)."""
    counts = real_counts(train.counts(num_classes), k)
    return np.concatenate([train.indices_of(label)[:counts[label]] for label in range(num_classes)])


def source_of(arm: str) -> str | None:
    """Which added set an arm draws from: 'oracle', 'synthetic', or None (real only)."""
    return None if arm in (REAL, CLASSIC, AA) else "oracle" if arm == ORACLE else "synthetic"


def added_count(arm: str, ratio: float, real: np.ndarray) -> np.ndarray:
    """Images per person an arm draws from its added set, given its real counts."""
    if source_of(arm) is None:
        return np.zeros_like(real)
    return real if arm == TSTR else np.ceil(real * ratio).astype(int)


def images_needed(specs: list[RunSpec], train_counts: np.ndarray) -> dict[str, dict[int, int]]:
    """Most images of one person any run at each k draws, per added set ('synthetic', 'oracle')."""
    need: dict[str, dict[int, int]] = {"synthetic": {}, "oracle": {}}
    for s in specs:
        source = source_of(s.arm)
        if source is not None:
            n = int(added_count(s.arm, s.ratio, real_counts(train_counts, s.k)).max())
            need[source][s.k] = max(need[source].get(s.k, 0), n)
    return need


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
    for arm, k, ratio in dict.fromkeys((s.arm, s.k, s.ratio) for s in specs):
        what = source_of(arm)
        if what is None:
            continue
        source = data.oracle if what == "oracle" else data.synthetic[k]
        want = added_count(arm, ratio, real_counts(train_counts, k))
        have = source.counts(data.num_classes)
        lacking = np.flatnonzero(have < want)
        if len(lacking):
            i = lacking[0]
            raise ValueError(f"{arm} at k={k_label(k)} needs {want[i]} {what} images of person ID_{data.person_of[i]}"
                             f" but {source.root} has {have[i]} ({len(lacking)} persons short); make more "
                             f"(e.g. jobs/generate.py --per-person {int(want.max())}) or lower ks / ratios")
    return sorted(notes)


def training_set(data: EvalData, spec: RunSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and labels the run trains on."""
    real = real_subset(data.train, data.num_classes, spec.k)
    need = real_counts(data.train.counts(data.num_classes), spec.k)
    added = added_count(spec.arm, spec.ratio, need)
    what = source_of(spec.arm)
    parts: list[tuple[ImageSet, np.ndarray, np.ndarray]] = []
    if spec.arm != TSTR:
        parts.append((data.train, real, data.train.labels[real]))
    if what is not None:
        source = data.oracle if what == "oracle" else data.synthetic[spec.k]
        for label in range(data.num_classes):
            extra = _pick(source.indices_of(label), int(added[label]), spec.seed, label, 1)
            labels = source.labels[extra]
            if spec.arm == NEGATIVE:
                labels = np.random.default_rng([spec.seed, label, 2]).integers(0, data.num_classes, len(extra))
            parts.append((source, extra, labels))
    x = torch.cat([s.images[torch.from_numpy(i)] for s, i, _ in parts])
    y = torch.from_numpy(np.concatenate([lab for _, _, lab in parts])).long()
    return x, y
