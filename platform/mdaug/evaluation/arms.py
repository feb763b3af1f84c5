"""The arms of the evaluation and the training set of each run.

For one (k, seed) every arm starts from the same real subset, so arm − real is a paired difference.
Images are picked per person with generators seeded by (seed, label, source): reproducible, and the
picks for a smaller k are the first images of a larger one."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mdaug.evaluation.config import ALL, EvalConfig, k_label
from mdaug.evaluation.sets import EvalData, ImageSet

REAL, CLASSIC, SYNTHETIC, COMBINED, TSTR, ORACLE, NEGATIVE = (
    "real", "real+classic", "real+synthetic", "real+synthetic+classic", "synthetic-only", "oracle", "negative")
ARM_HELP = {
    REAL: "real images only (the baseline)",
    CLASSIC: "real with classic augmentation (time shift, masks, gain, noise)",
    SYNTHETIC: "real plus r × (real count) generated images per person",
    COMBINED: "real plus generated images, with classic augmentation",
    TSTR: "generated images only, tested on real (train-synthetic-test-real)",
    ORACLE: "real plus fresh simulator images of the same persons: the ceiling of a perfect generator",
    NEGATIVE: "real plus generated images with random labels: carries no person information, must not help",
}


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


def plan_runs(cfg: EvalConfig, has_oracle: bool) -> list[RunSpec]:
    """Every (arm, k, seed) to train; the oracle arm only when oracle images are given."""
    ref = cfg.reference_ratio
    arms = [(REAL, 0.0), (CLASSIC, 0.0), *((SYNTHETIC, r) for r in cfg.ratios), (COMBINED, ref), (TSTR, 1.0)]
    arms += [(ORACLE, ref)] if has_oracle else []
    arms += [(NEGATIVE, ref)]
    return [RunSpec(arm, k, seed, ratio) for k in cfg.ks for arm, ratio in arms for seed in range(cfg.seeds)]


def _pick(indices: np.ndarray, n: int, seed: int, label: int, source: int) -> np.ndarray:
    order = np.random.default_rng([seed, label, source]).permutation(len(indices))
    return indices[order[:n]]


def real_counts(train_counts: np.ndarray, k: int) -> np.ndarray:
    """Real images per person a run at this k uses (all of them for k = ALL or persons with fewer)."""
    return train_counts if k == ALL else np.minimum(train_counts, k)


def source_of(arm: str) -> str | None:
    """Which added set an arm draws from: 'oracle', 'synthetic', or None (real only)."""
    return None if arm in (REAL, CLASSIC) else "oracle" if arm == ORACLE else "synthetic"


def added_count(arm: str, ratio: float, real: np.ndarray) -> np.ndarray:
    """Images per person an arm draws from its added set, given its real counts."""
    if source_of(arm) is None:
        return np.zeros_like(real)
    return real if arm == TSTR else np.ceil(real * ratio).astype(int)


def is_generated_arm(name: str) -> bool:
    """Arms that add generated images to the real ones (the candidates for a gain)."""
    return name.startswith((SYNTHETIC + "@", COMBINED))


def images_needed(specs: list[RunSpec], train_counts: np.ndarray) -> dict[str, int]:
    """Most images of one person any run draws, per added set ('synthetic', 'oracle')."""
    need = {"synthetic": 0, "oracle": 0}
    for s in specs:
        source = source_of(s.arm)
        if source is not None:
            need[source] = max(need[source], int(added_count(s.arm, s.ratio, real_counts(train_counts, s.k)).max()))
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
        source = data.oracle if what == "oracle" else data.synthetic
        want = added_count(arm, ratio, real_counts(train_counts, k))
        have = source.counts(data.num_classes)
        lacking = np.flatnonzero(have < want)
        if len(lacking):
            i = lacking[0]
            raise ValueError(f"{arm} at k={k_label(k)} needs {want[i]} {what} images of person ID_{data.person_of[i]}"
                             f" but {source.root} has {have[i]} ({len(lacking)} persons short); make more "
                             f"(e.g. jobs/generate.py --per-person {int(want.max())}) or lower --k / --ratios")
    return sorted(notes)


def training_set(data: EvalData, spec: RunSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and labels the run trains on."""
    need = real_counts(data.train.counts(data.num_classes), spec.k)
    added = added_count(spec.arm, spec.ratio, need)
    source = data.oracle if source_of(spec.arm) == "oracle" else data.synthetic
    parts: list[tuple[ImageSet, np.ndarray, np.ndarray]] = []
    for label in range(data.num_classes):
        real = _pick(data.train.indices_of(label), int(need[label]), spec.seed, label, 0)
        if spec.arm != TSTR:
            parts.append((data.train, real, data.train.labels[real]))
        if source_of(spec.arm) is None:
            continue
        extra = _pick(source.indices_of(label), int(added[label]), spec.seed, label, 1)
        labels = source.labels[extra]
        if spec.arm == NEGATIVE:
            labels = np.random.default_rng([spec.seed, label, 2]).integers(0, data.num_classes, len(extra))
        parts.append((source, extra, labels))
    x = torch.cat([s.images[torch.from_numpy(i)] for s, i, _ in parts])
    y = torch.from_numpy(np.concatenate([lab for _, _, lab in parts])).long()
    return x, y
