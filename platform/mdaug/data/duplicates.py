"""Near-duplicate thresholds calibrated on the data set at hand, and the pairs below them.

The reference is what is known to be distinct: images of different persons, and — where recording groups are
declared (`mdaug split --group`) — images of different recordings. Each image's nearest known-distinct fingerprint
distance is taken; the threshold is FRACTION × their QUANTILE-quantile, never below COPY_FLOOR. A low quantile,
not the minimum: one mislabelled or copied image among thousands does not move it; and the reference never
includes pairs of a possibly leaky split. COPY_FLOOR sits above what a re-encode or a small resize does to a
fingerprint (≤ 0.025, mdaug.data.fingerprint) and below distinct recordings on alike data (≥ 0.044)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from mdaug.data.fingerprint import VERSION

FRACTION = 0.5  # a pair closer than half of what distinct recordings come to is a copy
QUANTILE = 0.01  # of the per-image nearest known-distinct distances
COPY_FLOOR = 0.035  # re-encoded + resized copies ≤ 0.025; distinct alike recordings ≥ 0.044 (measured)


@dataclass(frozen=True)
class Calibration:
    """A near-duplicate threshold and what it was calibrated on."""

    threshold: float
    reference: float | None  # QUANTILE-quantile of the nearest known-distinct distances (None: no reference)
    reference_kind: str  # "cross-person", "cross-person and cross-group" or "none"
    images: int  # images with a known-distinct neighbour
    pairs: int  # known-distinct pairs compared
    fraction: float = FRACTION
    quantile: float = QUANTILE
    floor: float = COPY_FLOOR
    fingerprint: str = VERSION

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        if self.reference is None:
            return (f"near-duplicate threshold {self.threshold:.4f} (the copy floor: no known-distinct pair to "
                    "calibrate on)")
        ruled = "the copy floor" if self.threshold == self.floor else f"{self.fraction:g} × the reference"
        return (f"near-duplicate threshold {self.threshold:.4f} ({ruled}; reference: the {self.quantile:.0%} quantile "
                f"{self.reference:.4f} of {self.images} images' nearest {self.reference_kind} distances, "
                f"floor {self.floor:g})")

    def alike_warning(self) -> str | None:
        """A note when distinct recordings of this data set come as close as copies do."""
        if self.reference is not None and self.reference < self.floor:
            return (f"distinct recordings of this data set sit as close as {self.reference:.4f} (below the copy floor "
                    f"{self.floor:g}): some pairs reported as near-duplicates may be distinct recordings")
        return None


def _distinct(persons: torch.Tensor, groups: list[str], rows: slice) -> torch.Tensor:
    """Mask (rows × all) of pairs known to be distinct: other person, or both grouped and in other groups."""
    mask = persons[rows, None] != persons[None, :]
    if any(groups):
        codes = {g: i for i, g in enumerate(sorted(set(groups) - {""}), start=1)}
        g = torch.tensor([codes.get(x, 0) for x in groups])
        mask |= (g[rows, None] != g[None, :]) & (g[rows, None] > 0) & (g[None, :] > 0)
    return mask


def calibrate(prints: torch.Tensor, persons: list[int], groups: list[str] | None = None,
              chunk: int = 1024) -> Calibration:
    """The threshold for `prints` (N, D) of images of `persons` (and recording `groups`, "" = undeclared)."""
    groups = list(groups) if groups is not None else [""] * len(prints)
    if not (len(prints) == len(persons) == len(groups)):
        raise ValueError(f"calibrate: {len(prints)} fingerprints, {len(persons)} persons and {len(groups)} groups "
                         "must be one per image")
    person_t = torch.tensor(list(persons))
    nearest, pairs = [], 0
    for i in range(0, len(prints), chunk):
        rows = slice(i, i + chunk)
        mask = _distinct(person_t, groups, rows)
        d = torch.cdist(prints[rows].float(), prints.float()).masked_fill(~mask, float("inf"))
        nearest.append(d.min(1).values)
        pairs += int(mask.sum())
    near = torch.cat(nearest) if nearest else torch.zeros(0)
    near = near[torch.isfinite(near)]
    kind = "cross-person and cross-group" if any(groups) else "cross-person"
    if len(near) == 0:
        return Calibration(COPY_FLOOR, None, "none", 0, 0)
    reference = float(torch.quantile(near, QUANTILE))
    return Calibration(max(FRACTION * reference, COPY_FLOOR), reference, kind, len(near), pairs // 2)


def near_duplicates(a_prints: torch.Tensor, b_prints: torch.Tensor, threshold: float,
                    chunk: int = 1024) -> list[tuple[int, int, float]]:
    """Every pair (index in a, index in b, distance) closer than `threshold`, ordered by a then b."""
    out = []
    if len(b_prints) == 0:
        return out
    for i in range(0, len(a_prints), chunk):
        d = torch.cdist(a_prints[i:i + chunk].float(), b_prints.float())
        for r, c in torch.nonzero(d < threshold).tolist():
            out.append((i + r, c, float(d[r, c])))
    return out
