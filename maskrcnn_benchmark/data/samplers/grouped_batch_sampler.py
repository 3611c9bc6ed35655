"""Batches whose images share an aspect-ratio group (upstream ``GroupedBatchSampler``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from torch.utils.data import Sampler

__all__ = ["GroupedBatchSampler"]


class GroupedBatchSampler(Sampler[list[int]]):
    """Wrap a sampler so that every batch holds indices of one group only.

    Indices are taken in the wrapped sampler's order and collected per group; a batch is emitted as soon as a
    group has ``batch_size`` indices. Left-over partial batches are emitted at the end (in the order their
    first index was drawn) unless ``drop_uneven``.

    Args:
        sampler: yields dataset indices (its ``set_epoch`` is forwarded).
        group_ids: group id of every dataset index (e.g. 0 for landscape, 1 for portrait/square).
        batch_size: images per batch.
        drop_uneven: drop incomplete batches.
    """

    def __init__(self, sampler: Sampler, group_ids: Sequence[int], batch_size: int, drop_uneven: bool = False):
        if batch_size <= 0:
            raise ValueError(f"GroupedBatchSampler: batch_size must be positive, got {batch_size}")
        self.sampler = sampler
        self.group_ids = [int(g) for g in group_ids]
        self.batch_size = int(batch_size)
        self.drop_uneven = bool(drop_uneven)

    def __iter__(self) -> Iterator[list[int]]:
        buffers: dict[int, list[int]] = {}
        first_drawn: dict[int, int] = {}  # group -> draw position of its buffer's first index
        for position, idx in enumerate(self.sampler):
            group = self.group_ids[idx]
            buf = buffers.setdefault(group, [])
            if not buf:
                first_drawn[group] = position
            buf.append(idx)
            if len(buf) == self.batch_size:
                yield list(buf)
                buf.clear()
        if not self.drop_uneven:
            leftovers = [g for g, b in buffers.items() if b]
            for group in sorted(leftovers, key=first_drawn.__getitem__):
                yield list(buffers[group])

    def __len__(self) -> int:
        counts: dict[int, int] = {}
        for idx in self.sampler:
            counts[self.group_ids[idx]] = counts.get(self.group_ids[idx], 0) + 1
        if self.drop_uneven:
            return sum(c // self.batch_size for c in counts.values())
        return sum((c + self.batch_size - 1) // self.batch_size for c in counts.values())

    def set_epoch(self, epoch: int) -> None:
        """Forward to the wrapped sampler."""
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)
