"""Equal real-data budgets: the generator behind the arms at k may have seen, of the task's persons, only the
real images those arms train on (the k-subset of each person its generator was trained on: mdaug.data.subsets;
the first k train images for a generator of subset seed 0). Data of other persons is allowed
and recorded. Verified from the generator's provenance (the content hashes of what its VA-VAE and its DiT
trained on, carried in the generated set's manifest.json) before any training."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mdaug.data.manifest import Manifest
from mdaug.data.subsets import k_subset
from mdaug.evaluation.config import k_label
from mdaug.evaluation.sets import subset_seed, synthetic_info


class BudgetError(ValueError):
    """A generator saw more real images of the task's persons than the arms it serves."""


@dataclass
class Budget:
    """What one generated set's generator saw, measured against the k-subset."""

    folder: str
    k: int
    seen: dict[int, int] = field(default_factory=dict)  # person id → task train images the generator trained on
    outside: dict[int, int] = field(default_factory=dict)  # person id → of those, images outside the k-subset
    other_images: int = 0  # images of persons the task does not have (e.g. an autoencoder's other walkers)
    unverifiable: bool = False  # the set carries no provenance

    @property
    def equal(self) -> bool:
        return not self.unverifiable and not any(self.outside.values())

    def describe(self) -> str:
        if self.unverifiable:
            return f"{self.folder}: no provenance, what its generator saw is unknown"
        most = max(self.seen.values(), default=0)
        return (f"{self.folder}: its generator saw at most {most} real train images of any task person "
                f"(k={k_label(self.k)}) and {self.other_images} images of other persons")


def generator_images(info: dict) -> set[str] | None:
    """Content hashes of every image the generator (VA-VAE and DiT) trained on; None without provenance."""
    prov = info.get("provenance")
    if not prov:
        return None
    return {h for part in prov.values() for h in part.get("images", [])}


def budget_of(manifest: Manifest, folder: str, info: dict, k: int) -> Budget:
    seen = generator_images(info)
    if seen is None:
        return Budget(folder, k, unverifiable=True)
    allowed = {r.sha256 for r in k_subset(manifest, k, subset_seed(info))}  # k = ALL (0): every train image
    task = {r.sha256: r for r in manifest.rows}
    budget = Budget(folder, k, other_images=len(seen - task.keys()))
    for h in seen & task.keys():
        person = task[h].person
        budget.seen[person] = budget.seen.get(person, 0) + 1
        if h not in allowed:
            budget.outside[person] = budget.outside.get(person, 0) + 1
    return budget


def _refusal(manifest: Manifest, k: int, budgets: list[Budget]) -> str:
    lines = [f"no generated set has an equal real-data budget for k={k_label(k)}: the arms at k train on the first "
             f"{k_label(k)} train images of each person, and the generator may have seen only those."]
    for b in budgets:
        if b.unverifiable:
            lines.append(f"  {b.folder}: its manifest.json carries no provenance (regenerate with jobs/generate.py)")
            continue
        per = ", ".join(f"ID_{p} {b.seen.get(p, 0)} vs {k_label(k)}" for p in sorted(manifest.labels)
                        if b.outside.get(p))
        lines.append(f"  {b.folder}: images the generator saw per person vs k: {per}")
    lines.append("Train a generator on the k-subset (`jobs/train.py --stage dit dit.train_per_person=K`, as the "
                 "pipeline does), or set allow_generator_extra_data=true to compare at the generator's budget, "
                 "labelled so.")
    return "\n".join(lines)


def assign_generators(manifest: Manifest, folders: list[str], ks: tuple[int, ...],
                      allow_extra: bool = False) -> tuple[dict[int, list[str]], dict[int, list[Budget]]]:
    """For every k, its generator replicates: the generated folders whose generator saw the most task images
    within its own k-subset and none outside it. Without one: BudgetError naming
    per person what the generator saw vs k, or (allow_extra) the folder with the fewest images outside, its
    budget recorded so the arms can be labelled."""
    if not folders:
        raise ValueError("no generated folder given (--synthetic)")
    infos = {f: synthetic_info(Path(f)) for f in folders}
    chosen: dict[int, list[str]] = {}
    budgets: dict[int, list[Budget]] = {}
    for k in ks:
        options = [budget_of(manifest, f, infos[f], k) for f in folders]
        fair = [b for b in options if b.equal]
        if fair:
            most = max(sum(b.seen.values()) for b in fair)
            picked = [b for b in fair if sum(b.seen.values()) == most]
        elif allow_extra:
            picked = [min(options, key=lambda b: (b.unverifiable, sum(b.outside.values())))]
        else:
            raise BudgetError(_refusal(manifest, k, options))
        chosen[k], budgets[k] = [b.folder for b in picked], picked
    return chosen, budgets
