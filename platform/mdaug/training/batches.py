"""Batches from tensors held in memory, in a fresh random order every epoch on every worker.

Each epoch is `steps` batches drawn from successive random permutations of the whole data set (seeded by
seed, epoch and pass), each worker taking every world-th index of a permutation — DistributedSampler's
rule, so workers see disjoint rows within a pass. The order depends only on (seed, epoch, rank, world):
the same seed repeats it; Lightning calls `set_epoch` before every epoch, so a resumed run continues it."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler

from mdaug.seeds import hash_seed


class TensorDict(Dataset):
    """Rows of equally long tensors; a list of indices fetches one batch (a dict of tensors) at once."""

    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        lengths = {len(t) for t in tensors.values()}
        if len(lengths) != 1:
            raise ValueError(f"columns of unequal length: { {k: len(t) for k, t in tensors.items()} }")
        self.tensors = tensors

    def __len__(self) -> int:
        return len(next(iter(self.tensors.values())))

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: t[i] for k, t in self.tensors.items()}

    def __getitems__(self, idx: list[int]) -> dict[str, torch.Tensor]:
        index = torch.as_tensor(idx)
        return {k: t[index] for k, t in self.tensors.items()}


class EpochShuffle(Sampler[int]):
    """`per_epoch` indices for this rank: concatenated shares of fresh permutations."""

    def __init__(self, n: int, per_epoch: int, seed: int, rank: int = 0, world: int = 1) -> None:
        if n < world:
            raise ValueError(f"{n} rows cannot be shared by {world} workers")
        self.n, self.per_epoch, self.seed, self.rank, self.world = n, per_epoch, seed, rank, world
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.per_epoch

    def __iter__(self) -> Iterator[int]:
        left, rounds = self.per_epoch, 0
        while left > 0:
            g = torch.Generator().manual_seed(hash_seed(self.seed, self.epoch, rounds))
            share = torch.randperm(self.n, generator=g)[self.rank::self.world][:left].tolist()
            yield from share
            left -= len(share)
            rounds += 1


def shuffled_loader(tensors: dict[str, torch.Tensor], batch_size: int, steps: int, seed: int, rank: int = 0,
                    world: int = 1) -> DataLoader:
    """`steps` full batches per epoch, freshly shuffled every epoch (see the module docstring)."""
    sampler = EpochShuffle(len(next(iter(tensors.values()))), steps * batch_size, seed, rank, world)
    return DataLoader(TensorDict(tensors), batch_sampler=BatchSampler(sampler, batch_size, drop_last=True),
                      collate_fn=_as_is, generator=_own_generator(seed))


def ordered_loader(tensors: dict[str, torch.Tensor], batch_size: int, rank: int = 0, world: int = 1) -> DataLoader:
    """This rank's every world-th row, in order (validation)."""
    mine = {k: t[rank::world] for k, t in tensors.items()}
    return DataLoader(TensorDict(mine), batch_sampler=BatchSampler(range(len(TensorDict(mine))), batch_size, False),
                      collate_fn=_as_is, generator=_own_generator(0))


def _own_generator(seed: int) -> torch.Generator:
    """A loader draws a seed each time it is iterated; from its own generator, not torch's global one, so when
    Lightning starts an epoch's iterator (before the epoch's seeding on a resumed run, after it otherwise) does
    not change the epoch's random numbers (training.epoch_seed)."""
    return torch.Generator().manual_seed(seed)


def _as_is(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return batch
