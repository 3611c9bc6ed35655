"""Deterministic, shardable sampler (one process or many)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sized

import torch
from torch.utils.data import Sampler

__all__ = ["DistributedSampler"]


class DistributedSampler(Sampler[int]):
    """Each of ``num_replicas`` processes draws a disjoint slice of a per-epoch permutation.

    The permutation of epoch ``e`` is ``torch.randperm(n, generator=manual_seed(seed + e))``: it depends only
    on (seed, epoch), so a resumed run regenerates exactly the orders of the original run. With ``pad`` the
    index list is padded (repeating from its start) to a multiple of ``num_replicas``, as torch's sampler
    does (training: every process gets as many batches); without it every index is visited exactly once
    (evaluation: no duplicated predictions; shards may differ in size by one).

    Args:
        dataset: anything with ``len``.
        num_replicas: number of processes (default: the distributed world size, else 1).
        rank: this process (default: the distributed rank, else 0).
        shuffle: permute per epoch (else dataset order).
        seed: base seed.
        pad: repeat indices so that all shards have the same length.
    """

    def __init__(
        self,
        dataset: Sized,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        pad: bool = True,
    ):
        if num_replicas is None or rank is None:
            dist_ok = torch.distributed.is_available() and torch.distributed.is_initialized()
            if num_replicas is None:
                num_replicas = torch.distributed.get_world_size() if dist_ok else 1
            if rank is None:
                rank = torch.distributed.get_rank() if dist_ok else 0
        if not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler: rank {rank} is not in [0, {num_replicas})")
        self.dataset = dataset
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.epoch = 0
        self.pad = bool(pad)
        if self.pad:
            self.num_samples = int(math.ceil(len(dataset) / self.num_replicas))
            self.total_size = self.num_samples * self.num_replicas
        else:
            self.num_samples = len(range(self.rank, len(dataset), self.num_replicas))
            self.total_size = len(dataset)

    def indices_for_epoch(self, epoch: int) -> list:
        """The indices this rank visits in ``epoch``."""
        n = len(self.dataset)
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + int(epoch))
            indices = torch.randperm(n, generator=g).tolist()
        else:
            indices = list(range(n))
        if self.pad and n and len(indices) < self.total_size:
            reps = (self.total_size - len(indices) + n - 1) // n
            indices += (indices * reps)[: self.total_size - len(indices)]
        return indices[self.rank : self.total_size : self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices_for_epoch(self.epoch))

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation used by the next ``__iter__``."""
        self.epoch = int(epoch)
