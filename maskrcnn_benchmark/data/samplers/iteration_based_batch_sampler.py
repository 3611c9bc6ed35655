"""Iteration-based batch sampler with exact resume and per-sample seeds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from torch.utils.data import Sampler

__all__ = ["IterationBasedBatchSampler", "SampleKey", "sample_seed"]


class SampleKey(NamedTuple):
    """A dataset index plus the seed its random augmentations use (see ``data.build.SeededDataset``)."""

    index: int
    seed: int


def sample_seed(base_seed: int, epoch: int, index: int) -> int:
    """Deterministic 63-bit seed for one (epoch, dataset index) visit."""
    value = (int(base_seed) * 1_000_003 + int(epoch)) * 2_654_435_761 + int(index) * 40_503
    return value % (2**63 - 1)


class IterationBasedBatchSampler(Sampler[list]):
    """Repeat a batch sampler over epochs until ``num_iterations`` batches were produced.

    Before each epoch ``e`` (0, 1, ...) the wrapped sampler gets ``set_epoch(e)``, so with a seeded sampler
    (``DistributedSampler``) the sequence of batches is a function of (seed, iteration) only. Resuming at
    ``start_iter`` replays the index sequence without loading data and yields exactly the batches
    ``start_iter, start_iter+1, ...`` of an uninterrupted run. (Upstream calls ``set_epoch(iteration)``,
    which makes the order after a resume differ from the uninterrupted run.)

    Args:
        batch_sampler: yields lists of dataset indices for one epoch.
        num_iterations: total number of batches (``SOLVER.MAX_ITER``).
        start_iter: first iteration to yield (resume).
        seed_samples: if not None, yield :class:`SampleKey` (index, seed) items instead of plain indices,
            with seeds derived from (seed_samples, epoch, index).
    """

    def __init__(
        self, batch_sampler: Sampler, num_iterations: int, start_iter: int = 0, seed_samples: int | None = None
    ):
        if num_iterations < 0 or start_iter < 0:
            raise ValueError(f"num_iterations ({num_iterations}) and start_iter ({start_iter}) must be >= 0")
        self.batch_sampler = batch_sampler
        self.num_iterations = int(num_iterations)
        self.start_iter = int(start_iter)
        self.seed_samples = seed_samples

    def _set_epoch(self, epoch: int) -> None:
        target = self.batch_sampler
        if hasattr(target, "set_epoch"):
            target.set_epoch(epoch)
        elif hasattr(getattr(target, "sampler", None), "set_epoch"):
            target.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[list]:
        iteration = 0
        epoch = 0
        while iteration < self.num_iterations:
            self._set_epoch(epoch)
            produced = False
            for batch in self.batch_sampler:
                produced = True
                if iteration >= self.start_iter:
                    if self.seed_samples is None:
                        yield batch
                    else:
                        yield [SampleKey(int(i), sample_seed(self.seed_samples, epoch, i)) for i in batch]
                iteration += 1
                if iteration >= self.num_iterations:
                    return
            if not produced:
                raise ValueError(
                    "IterationBasedBatchSampler: an epoch produced no batch - the data set (or each aspect-ratio "
                    "group) has fewer images than one per-process batch; lower SOLVER.IMS_PER_BATCH or set "
                    "DATALOADER.ASPECT_RATIO_GROUPING False"
                )
            epoch += 1

    def __len__(self) -> int:
        return max(0, self.num_iterations - self.start_iter)
