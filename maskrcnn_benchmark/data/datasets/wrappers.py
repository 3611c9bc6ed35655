"""Data set wrappers: repetition (``*_COPY``), concatenation, per-sample seeding."""

from __future__ import annotations

import bisect
import random
from typing import Any

import torch

from ..samplers.iteration_based_batch_sampler import SampleKey

__all__ = ["RepeatedDataset", "ConcatDataset", "SeededDataset"]


class RepeatedDataset(torch.utils.data.Dataset):
    """``copies`` repetitions of a data set (upstream ``create_duplicate_dataset``).

    Index ``i`` reads sample ``i % len(dataset)``; the returned index is the inner one, as upstream.
    Other attributes (``categories``, ``ann_file``, ...) are those of the wrapped data set.
    """

    def __init__(self, dataset: Any, copies: int):
        if copies < 1:
            raise ValueError(f"RepeatedDataset: copies must be >= 1, got {copies}")
        self.dataset = dataset
        self.copies = int(copies)

    def __len__(self) -> int:
        return len(self.dataset) * self.copies

    def __getitem__(self, idx: int) -> Any:
        return self.dataset[idx % len(self.dataset)]

    def get_img_info(self, idx: int) -> dict[str, Any]:
        return self.dataset.get_img_info(idx % len(self.dataset))

    def __getattr__(self, name: str) -> Any:
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)


class ConcatDataset(torch.utils.data.ConcatDataset):
    """``torch`` concatenation that also answers ``get_img_info`` (needed for aspect-ratio grouping)."""

    def locate(self, idx: int) -> tuple[int, int]:
        """(data set number, index inside it) of global index ``idx``."""
        if idx < 0:
            idx += len(self)
        which = bisect.bisect_right(self.cumulative_sizes, idx)
        inner = idx if which == 0 else idx - self.cumulative_sizes[which - 1]
        return which, inner

    def get_img_info(self, idx: int) -> dict[str, Any]:
        which, inner = self.locate(idx)
        return self.datasets[which].get_img_info(inner)


class SeededDataset(torch.utils.data.Dataset):
    """Make every sample's random augmentation a function of its :class:`SampleKey` seed.

    ``dataset[SampleKey(i, s)]`` runs ``inner[i]`` with Python's ``random`` state set from ``s`` and
    restores the previous state afterwards (the transforms and caption builders only use ``random``).
    The result no longer depends on worker processes or on where a run was resumed. Plain integer indices
    pass through unchanged.
    """

    def __init__(self, dataset: Any):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: Any) -> Any:
        if not isinstance(key, SampleKey):
            return self.dataset[key]
        state = random.getstate()
        random.seed(key.seed)
        try:
            return self.dataset[key.index]
        finally:
            random.setstate(state)

    def get_img_info(self, idx: int) -> dict[str, Any]:
        return self.dataset.get_img_info(idx)

    def __getattr__(self, name: str) -> Any:
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)
