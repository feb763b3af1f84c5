"""Seeds derived from several integers, stable across processes, machines and runs."""

from __future__ import annotations

import hashlib


def hash_seed(*parts: int | str) -> int:
    """A 63-bit seed from the parts (e.g. run seed, person, image index)."""
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:8], "big") >> 1
