"""One typed configuration for the augmentation-gain evaluation, with presets."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from mdaug.augment import AugmentConfig

ALL = 0  # k = ALL: every real train image of each person


@dataclass(frozen=True)
class EvalConfig:
    """What `eval/augmentation_gain.py` trains and compares.

    data: split manifest of the real data; its test split is the only test set.
    synthetic: a generated folder (jobs/generate.py) with its manifest.json.
    oracle: an ID_k folder of fresh simulator images of the same persons (simulated data only), or None.
    ks: real train images per person; ALL (0) = all of them.
    seeds: repetitions of every (arm, k); a seed fixes the real subset, the added images and the init.
    ratios: real+synthetic@r adds r × (real count) generated images per person.
    reference_ratio: the ratio of the combined, oracle and negative arms (must be one of `ratios`).
    steps: optimizer steps per training, the same for every arm (more data is not more compute).
    image_size: classifier input size (images are resized); None = the data's own size.
    """

    data: str = ""
    synthetic: str = ""
    out: str = "runs/eval"
    oracle: str | None = None
    ks: tuple[int, ...] = (5, 10, 20, ALL)
    seeds: int = 5
    ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    reference_ratio: float = 1.0
    steps: int = 300
    batch_size: int = 32
    lr: float = 4e-3
    width: int = 16
    image_size: int | None = None
    cpus_per_run: float = 1.0
    gpus_per_run: float = 0.0
    experiment: str = "mdaug-eval"
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        if self.seeds < 2:
            raise ValueError(f"--seeds must be ≥ 2 for a confidence interval, got {self.seeds}")
        if not self.ks or any(k < 0 for k in self.ks):
            raise ValueError(f"--k takes positive counts or 'all', got {self.ks}")
        if not self.ratios or any(r <= 0 for r in self.ratios):
            raise ValueError(f"--ratios must be > 0, got {self.ratios}")
        if self.reference_ratio not in self.ratios:
            raise ValueError(f"reference ratio {self.reference_ratio} is not one of --ratios {self.ratios}")


PRESETS: dict[str, dict] = {
    # 2-core CPU, about a minute of training: 32² inputs, a narrow net, two small k.
    "tiny": {"ks": (5, 10), "seeds": 3, "ratios": (1.0,), "steps": 150, "width": 8, "image_size": 32},
    "default": {},
}


def eval_config(preset: str = "default", **values) -> EvalConfig:
    """A preset, then explicit values (None = not given)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown evaluation preset {preset!r}; use one of {', '.join(PRESETS)}")
    given = {k: v for k, v in values.items() if v is not None}
    if "ratios" in given and "reference_ratio" not in given:
        given["reference_ratio"] = 1.0 if 1.0 in given["ratios"] else given["ratios"][0]
    return replace(EvalConfig(**PRESETS[preset]), **given)


def parse_ks(text: str) -> tuple[int, ...]:
    """'5,10,all' → (5, 10, ALL)."""
    out = []
    for part in text.split(","):
        part = part.strip().lower()
        if part == "all":
            out.append(ALL)
        elif part.isdigit() and int(part) > 0:
            out.append(int(part))
        else:
            raise ValueError(f"--k: {part!r} is neither a positive count nor 'all'")
    return tuple(out)


def k_label(k: int) -> str:
    return "all" if k == ALL else str(k)
