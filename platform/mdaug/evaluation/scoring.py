"""One evaluation run: train the person classifier on an arm's training set, score it on the real test split."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from sklearn.metrics import confusion_matrix, f1_score

from mdaug.evaluation.arms import RunSpec, training_set
from mdaug.evaluation.config import EvalConfig
from mdaug.evaluation.sets import EvalData
from mdaug.training.classifier import predict, train_classifier


@dataclass
class RunResult:
    spec: RunSpec
    accuracy: float
    macro_f1: float
    per_person: list[float]  # accuracy per label
    confusion: list[list[int]]  # rows: true label, columns: predicted
    train_images: int
    seconds: float
    correct: list[int] = field(default_factory=list)  # 1/0 per test image, in the test split's order

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> RunResult:
        return cls(**(d | {"spec": RunSpec(**d["spec"])}))


def score(pred: np.ndarray, truth: np.ndarray, num_classes: int) -> tuple[float, float, list[float], np.ndarray]:
    """Top-1 accuracy, macro-F1, per-person accuracy, confusion matrix."""
    cm = confusion_matrix(truth, pred, labels=np.arange(num_classes))
    support = cm.sum(1)
    per_person = np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan)
    f1 = f1_score(truth, pred, labels=np.arange(num_classes), average="macro", zero_division=0)
    return float((pred == truth).mean()), float(f1), per_person.tolist(), cm


def train_run(data: EvalData, spec: RunSpec, cfg: EvalConfig, steps: int) -> tuple[torch.nn.Module, int]:
    """The classifier of one run, trained on its arm's set; with the number of training images."""
    x, y = training_set(data, spec)
    net = train_classifier(x, y, data.num_classes, steps=steps, batch_size=cfg.batch_size,
                           augment_cfg=cfg.augment if spec.classic else None, seed=spec.train_seed, lr=cfg.lr,
                           width=cfg.width, arch=spec.arch)
    return net, len(x)


def train_and_score(data: EvalData, spec: RunSpec, cfg: EvalConfig, steps: int, threads: int = 1) -> RunResult:
    t0 = time.perf_counter()
    torch.set_num_threads(max(1, threads))
    net, n = train_run(data, spec, cfg, steps)
    pred = predict(net, data.test.images)
    acc, f1, per_person, cm = score(pred, data.test.labels, data.num_classes)
    return RunResult(spec, acc, f1, per_person, cm.tolist(), n, time.perf_counter() - t0,
                     (pred == data.test.labels).astype(int).tolist())
