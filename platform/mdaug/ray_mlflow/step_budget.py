"""The classifier's step budget, chosen arm-blind: per architecture, a convergence probe on `real` at the
largest k (the same real images every arm of that k trains on, no generated image), averaged over
cfg.probe_seeds seeds of their own stream, scored on the validation split (never a test image). Every arm then
trains exactly that many steps, so no arm's budget was tuned on it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import ray
import torch

from mdaug.evaluation.arms import REAL, RunSpec
from mdaug.evaluation.config import ALL, EvalConfig, k_label
from mdaug.evaluation.scoring import train_run
from mdaug.evaluation.sets import EvalData
from mdaug.models.classifier import build_classifier
from mdaug.training.classifier import accuracy

PROBE_REPLICATE = -1  # the probe's seeds are a stream of their own, never an evaluation run's


@dataclass
class StepBudget:
    arch: str
    steps: int
    curve: list[tuple[int, float]]  # (steps, mean validation accuracy over the probe seeds)
    converged: bool

    def describe(self, cfg: EvalConfig) -> str:
        points = ", ".join(f"{acc:.1%} after {n}" for n, acc in self.curve)
        return (f"{self.steps} steps for the {self.arch} classifier (mean validation accuracy of real over "
                f"{cfg.probe_seeds} probe seeds: {points}"
                + ("" if self.converged else "; fixed, converge=false" if not cfg.converge
                   else f"; NOT converged within {cfg.max_steps} steps: raise max_steps") + ")")


def _probe(data: EvalData, spec: RunSpec, cfg: EvalConfig, steps: int) -> tuple[float, dict]:
    """Validation accuracy of the spec's classifier after `steps` steps, and its weights."""
    torch.set_num_threads(max(1, int(cfg.cpus_per_run)))
    net, _ = train_run(data, spec, cfg, steps)
    return accuracy(net, data.val.images, data.val.labels), {"config": net.config, "state": net.state_dict()}


def largest_k(ks: tuple[int, ...]) -> int:
    return max(ks, key=lambda k: (k == ALL, k))


def choose_steps(real_ref: ray.ObjectRef, cfg: EvalConfig, base: int,
                 echo) -> tuple[dict[str, StepBudget], torch.nn.Module]:
    """Per architecture: start at cfg.steps and double while doubling raises the probe's mean validation accuracy
    by more than cfg.convergence_points, up to cfg.max_steps. Returns the budgets and the first architecture's
    probe net (seed 0, at its budget) for the leakage check's features. `real_ref`: the real sets
    (EvalData.real_only() in the object store; the probe adds no image)."""
    task = ray.remote(_probe).options(num_cpus=cfg.cpus_per_run, num_gpus=cfg.gpus_per_run)
    k = largest_k(cfg.ks)
    budgets: dict[str, StepBudget] = {}
    first_net = None
    for arch in cfg.classifiers:
        specs = [RunSpec(REAL, k, j, replicate=PROBE_REPLICATE, arch=arch, base=base) for j in range(cfg.probe_seeds)]
        steps, curve = cfg.steps, {}
        while True:
            todo = [n for n in ((steps, 2 * steps) if cfg.converge else (steps,))
                    if n not in curve and n <= max(cfg.max_steps, steps)]
            refs = {n: [task.remote(real_ref, s, cfg, n) for s in specs] for n in todo}
            for n, pending in refs.items():
                runs = ray.get(pending)
                curve[n] = (float(np.mean([acc for acc, _ in runs])), runs[0][1])
            grew = 2 * steps in curve and (curve[2 * steps][0] - curve[steps][0]) * 100 > cfg.convergence_points
            if not (cfg.converge and grew):
                break
            steps *= 2
        converged = 2 * steps in curve and (curve[2 * steps][0] - curve[steps][0]) * 100 <= cfg.convergence_points
        budgets[arch] = StepBudget(arch, steps, sorted((n, acc) for n, (acc, _) in curve.items()), converged)
        if first_net is None:
            state = curve[steps][1]
            first_net = build_classifier(state["config"])
            first_net.load_state_dict(state["state"])
    echo(f"classifier budget at k={k_label(k)}: " + "; ".join(b.describe(cfg) for b in budgets.values()))
    return budgets, first_net.eval()
