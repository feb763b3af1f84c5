"""The k-subsets a generator and the evaluation's arms at k train on: per person, the first k train images of an
order. Subset seed 0 keeps the split's order (the first k, as `mdaug split --train-per-person` writes them); seed
s > 0 draws a random order per person, so generator replicates see different images. For one seed the subsets
are nested (the k=5 subset lies inside the k=10 one), so a generator for k serves every k' ≥ k."""

from __future__ import annotations

import numpy as np

from mdaug.seeds import hash_seed


def person_order(n: int, person: int, subset_seed: int) -> np.ndarray:
    """The order in which a person's n train images (in the split's order) enter the k-subsets."""
    if subset_seed == 0:
        return np.arange(n)
    return np.random.default_rng(hash_seed("k-subset", subset_seed, person)).permutation(n)


def subset_positions(persons: list[int], k: int, subset_seed: int = 0) -> list[int]:
    """Positions (into `persons`, the train rows' persons in the split's order) of the k-subset, in that order
    (every position for k = 0)."""
    by_person: dict[int, list[int]] = {}
    for i, p in enumerate(persons):
        by_person.setdefault(p, []).append(i)
    chosen: list[int] = []
    for p, positions in by_person.items():
        order = person_order(len(positions), p, subset_seed)
        chosen += [positions[j] for j in (order if not k else order[:k])]
    return sorted(chosen)


def k_subset(manifest, k: int, subset_seed: int = 0) -> list:
    """The manifest's train rows of the k-subset (all for k = 0), in the split's order."""
    rows = manifest.split("train")
    return [rows[i] for i in subset_positions([r.person for r in rows], k, subset_seed)]
