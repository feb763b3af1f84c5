"""Figures of an evaluation: accuracy vs k per arm with CI bands, per-person gain, confusion matrices,
and a real | generated sample grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image

from mdaug.data.images import load_image
from mdaug.evaluation.arms import REAL
from mdaug.evaluation.config import k_label
from mdaug.evaluation.per_person import PersonGains
from mdaug.evaluation.scoring import RunResult
from mdaug.evaluation.sets import EvalData
from mdaug.evaluation.stats import ArmRow
from mdaug.imaging import labelled_grid, save_figure, tensor_image
from mdaug.storage import join


def _save(fig: Figure, path: Path) -> None:
    save_figure(fig, path, dpi=110)


def accuracy_vs_k(rows: list[ArmRow], path: Path) -> Path:
    ks = list(dict.fromkeys(r.k for r in rows))
    fig = Figure(figsize=(7, 4.2))
    ax = fig.subplots()
    for arm in dict.fromkeys(r.arm for r in rows):
        pts = [r for k in ks for r in rows if r.arm == arm and r.k == k]  # controls may run at fewer k
        x = np.array([ks.index(p.k) for p in pts])
        acc = np.array([p.accuracy for p in pts])
        style = {"lw": 2.5, "color": "black"} if arm == REAL else {"lw": 1.4}
        line, = ax.plot(x, acc, marker="o", label=arm, **style)
        ax.fill_between(x, [p.accuracy_lo for p in pts], [p.accuracy_hi for p in pts], color=line.get_color(),
                        alpha=0.12)
    ax.set_xticks(range(len(ks)), ks)
    ax.set(xlabel="real train images per person (k)", ylabel="test accuracy (%)",
           title="Person identification accuracy (95 % CI: generator replicates × test images)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    _save(fig, path)
    return path


def per_person_gain(gains: PersonGains, person_of: dict[int, int], title: str, path: Path) -> Path:
    """Each person's gain: raw (grey dot) and shrunk toward the mean with its 95 % interval, sorted."""
    order = sorted(gains.persons, key=lambda p: p.gain)
    x = np.arange(len(order))
    fig = Figure(figsize=(max(7, 0.28 * len(order)), 3.6))
    ax = fig.subplots()
    g = np.array([p.gain for p in order])
    ax.errorbar(x, g, yerr=[g - [p.lo for p in order], [p.hi for p in order] - g], fmt="o", ms=4, capsize=2,
                label="shrunk, 95 % interval")
    ax.scatter(x, [p.raw for p in order], s=10, color="grey", zorder=3, label="raw (its test images' mean)")
    ax.axhline(0, color="black", lw=0.8)
    ax.axhline(gains.mean, color="tab:blue", lw=0.8, ls="--")
    ax.set_xticks(x, [f"{person_of[p.label]}" for p in order], fontsize=7)
    ax.set(xlabel="person id", ylabel="accuracy gain (points)", title=f"{title}: τ = {gains.tau:.1f} points")
    ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)
    return path


def confusion_pair(results: list[RunResult], arms: list[str], k: int, path: Path) -> Path:
    fig = Figure(figsize=(4.2 * len(arms), 4))
    axes = fig.subplots(1, len(arms))
    for ax, arm in zip(np.atleast_1d(axes), arms, strict=True):
        cm = np.sum([r.confusion for r in results if r.spec.name == arm and r.spec.k == k], axis=0)
        ax.imshow(cm / np.maximum(cm.sum(1, keepdims=True), 1), cmap="viridis", vmin=0, vmax=1)
        ax.set(title=f"{arm}, k={k_label(k)} (all seeds)", xlabel="predicted", ylabel="true")
    fig.tight_layout()
    _save(fig, path)
    return path


def sample_grid(data: EvalData, k: int, path: Path, per_row: int = 4, cell: int = 64) -> Path:
    """One row per person: real train images | images of the generator serving k."""
    rows = []
    channels = data.manifest.channels
    for label in range(data.num_classes):
        imgs: list[Image.Image] = []
        for s in (data.train, data.synthetic[(k, 0)]):
            for i in s.indices_of(label)[:per_row]:
                arr = load_image(join(s.root, s.paths[i]), channels, cell)
                imgs.append(tensor_image(torch.from_numpy(arr), channels))
        rows.append((f"ID {data.person_of[label]}", imgs))
    labelled_grid(rows, cell, out=path)
    return path
