"""Range checks for the configuration's dataclasses (their `__post_init__`), so a setting out of range is refused
when the configuration loads, before any work. A refusal is a `SettingError` (a ValueError) naming the key relative
to its dataclass; mdaug.config.load_config prefixes the section path, so the user reads `train.vae.lr=nan: …`.

Caps are generous: no real run comes near them; they stop a typo (10**12 recordings, a seed of −1) from running
out of memory or time hours later."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

SEED_MAX = 2**32 - 1  # numpy's and torch's portable seed range
COUNT_MAX = 10**7  # optimizer steps, epochs × steps, resamples
PER_PERSON_MAX = 100_000  # images per person (k, generated or simulated)
BATCH_MAX = 65_536
WIDTH_MAX = 4096  # channels
WORKERS_MAX = 1024
CPUS_MAX = 1024.0
GPUS_MAX = 64.0
WAIT_MAX_S = 86_400.0  # one day
LR_MAX = 10.0
CFG_MAX = 100.0  # classifier-free guidance scale
SHIFT_MAX = 100.0  # timestep shift
SAMPLER_STEPS_MAX = 10_000


class SettingError(ValueError):
    """A setting out of its range. `text` names keys relative to the dataclass `owner` after the marker `{at}`,
    which `message` replaces with the owner's path in the whole configuration (e.g. `train.vae.`)."""

    def __init__(self, owner: object, key: str, text: str) -> None:
        self.owner, self.key, self.text = type(owner), key, text
        super().__init__(self.message(""))

    def message(self, at: str) -> str:
        """The error with its keys as the user writes them: `at` is the owner's dotted path plus '.' (or '')."""
        return self.text.replace("{at}", at)


def refuse(owner: object, key: str, value: Any, allowed: str) -> SettingError:
    """The error for `key` = `value`, which must be `allowed` (e.g. 'must be an integer from 1 to 10')."""
    return SettingError(owner, key, f"{{at}}{key}={_show(value)}: {allowed}")


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ",".join(_show(v) for v in value) + "]"
    return "null" if value is None else str(value)


def _real(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _span(lo: float, hi: float, lo_open: bool, hi_open: bool) -> str:
    return f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"


def integer(owner: object, key: str, lo: int, hi: int, note: str = "") -> None:
    """getattr(owner, key) is an integer in [lo, hi]."""
    value = getattr(owner, key)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise refuse(owner, key, value, f"must be an integer from {lo} to {hi}{note}")


def integers(owner: object, key: str, lo: int, hi: int, note: str = "", optional: bool = False) -> None:
    """getattr(owner, key) is a non-empty tuple of integers in [lo, hi] (or None when optional)."""
    value = getattr(owner, key)
    if value is None and optional:
        return
    if not value or any(isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi for v in value):
        raise refuse(owner, key, value, f"must be a non-empty list of integers from {lo} to {hi}{note}")


def real(owner: object, key: str, lo: float, hi: float, lo_open: bool = False, hi_open: bool = False,
         note: str = "") -> None:
    """getattr(owner, key) is a finite number in the interval lo…hi (open ends as asked)."""
    value = getattr(owner, key)
    if not _real(value) or value < lo or value > hi or (lo_open and value == lo) or (hi_open and value == hi):
        raise refuse(owner, key, value, f"must be a finite number in {_span(lo, hi, lo_open, hi_open)}{note}")


def reals(owner: object, key: str, lo: float, hi: float, lo_open: bool = False, note: str = "") -> None:
    """getattr(owner, key) is a non-empty tuple of finite numbers in lo…hi."""
    value = getattr(owner, key)
    if not value or any(not _real(v) or v < lo or v > hi or (lo_open and v == lo) for v in value):
        raise refuse(owner, key, value, f"must be a non-empty list of finite numbers in "
                                              f"{_span(lo, hi, lo_open, False)}{note}")


def interval(owner: object, key: str, lo: float, hi: float, lo_open: bool = False, ints: bool = False,
             note: str = "") -> None:
    """getattr(owner, key) is a pair [a, b] of finite numbers (integers if ints) with lo ≤ a ≤ b ≤ hi."""
    value = getattr(owner, key)
    kind = "integers" if ints else "finite numbers"
    ok = (isinstance(value, tuple) and len(value) == 2 and all(_real(v) and lo <= v <= hi for v in value)
          and value[0] <= value[1] and not (lo_open and value[0] == lo)
          and not (ints and not all(isinstance(v, int) for v in value)))
    if not ok:
        raise refuse(owner, key, value, f"must be a range [low, high] of {kind} with low ≤ high, both in "
                                              f"{_span(lo, hi, lo_open, False)}{note}")


def choice(owner: object, key: str, options: Iterable[str]) -> None:
    """getattr(owner, key) is one of options."""
    value, options = getattr(owner, key), list(options)
    if value not in options:
        raise refuse(owner, key, value, f"must be one of {', '.join(options)}")


def named(owner: object, key: str) -> None:
    """getattr(owner, key) is a non-empty name."""
    value = getattr(owner, key)
    if not isinstance(value, str) or not value.strip():
        raise refuse(owner, key, repr(value), "must be a non-empty name")
