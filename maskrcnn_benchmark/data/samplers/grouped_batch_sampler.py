"""Batches whose images share an aspect-ratio group (upstream ``GroupedBatchSampler``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from torch.utils.data import Sampler

__all__ = ["GroupedBatchSampler", "grouped_batches"]


def grouped_batches(indices: Sequence[int], group_ids: Sequence[int], batch_size: int,
                    drop_uneven: bool = False) -> list[list[int]]:
    """Upstream's batch order for one pass of a sampler.

    The indices are split by group, keeping the sampler's order inside each group; each group's list is cut
    into consecutive batches of ``batch_size`` (its last batch may be shorter); all batches are then ordered
    by the position, in ``indices``, of their first element. ``drop_uneven`` removes the short batches.

    Example: ``indices = range(10)``, ``group_ids = [0, 0, 1, 0, 1, 1, 0, 1, 1, 0]``, ``batch_size = 3``
    gives ``[[0, 1, 3], [2, 4, 5], [6, 9], [7, 8]]``.

    Args:
        indices: dataset indices in the order the sampler drew them. An index drawn twice (a padded
            distributed shard) is kept twice; upstream keeps it once, at its last position.
        group_ids: group id of every dataset index.
        batch_size: images per batch.
        drop_uneven: drop batches shorter than ``batch_size``.

    Returns:
        The batches, as lists of dataset indices.
    """
    per_group: dict[int, list[tuple[int, int]]] = {}  # group -> [(draw position, index)] in draw order
    for position, idx in enumerate(indices):
        per_group.setdefault(int(group_ids[idx]), []).append((position, int(idx)))
    keyed: list[tuple[int, list[int]]] = []
    for members in per_group.values():
        for start in range(0, len(members), batch_size):
            chunk = members[start:start + batch_size]
            if drop_uneven and len(chunk) < batch_size:
                continue
            keyed.append((chunk[0][0], [idx for _, idx in chunk]))
    keyed.sort(key=lambda item: item[0])
    return [batch for _, batch in keyed]


class GroupedBatchSampler(Sampler[list[int]]):
    """Wrap a sampler so that every batch holds indices of one group only, in upstream's order.

    Each pass draws the whole epoch from the wrapped sampler, then orders the batches as
    :func:`grouped_batches` describes, so with the same sampler order the batches are upstream's.

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
        yield from grouped_batches(list(self.sampler), self.group_ids, self.batch_size, self.drop_uneven)

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
