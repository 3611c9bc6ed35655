"""Batch collation: pad images into an ``ImageList`` and gather targets and positive maps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..structures.image_list import to_image_list

__all__ = ["BatchCollator", "fraction_without_boxes"]


class BatchCollator:
    """Collate ``(image, target, idx)`` samples (upstream-facts.md 1.2).

    Returns ``(images, targets, img_ids, positive_map, positive_map_eval)``:

    * images: ``ImageList`` zero-padded at bottom/right to the batch max size rounded up to a multiple of
      ``size_divisible``;
    * targets: tuple of ``BoxList`` (or None);
    * img_ids: tuple of dataset indices;
    * positive_map: ``Tensor[sum N_i, L]`` binary float (image-major, then box order), the rows of every
      target's "positive_map" field cast to bool then float; None when no target has one;
    * positive_map_eval: list with each target's "positive_map_eval" (``Tensor[P_i, L]``) or None per image;
      None when no target has one.

    Args:
        size_divisible: ``DATALOADER.SIZE_DIVISIBILITY`` (32 for Swin).
    """

    def __init__(self, size_divisible: int = 0):
        self.size_divisible = int(size_divisible)

    def __call__(self, batch: Sequence[tuple[torch.Tensor, Any, int]]) -> tuple[Any, ...]:
        images, targets, img_ids = zip(*batch)
        image_list = to_image_list(list(images), self.size_divisible)
        positive_map = self._positive_map(targets)
        positive_map_eval = self._positive_map_eval(targets)
        return image_list, tuple(targets), tuple(img_ids), positive_map, positive_map_eval

    @staticmethod
    def _positive_map(targets: Sequence[Any]) -> torch.Tensor | None:
        maps = [t.get_field("positive_map") for t in targets if t is not None and t.has_field("positive_map")]
        if not maps:
            return None
        if len(maps) != len(targets):
            raise ValueError(
                f"BatchCollator: only {len(maps)} of {len(targets)} targets carry a positive_map; "
                "grounding and detection samples cannot share a batch"
            )
        # UPSTREAM-QUIRK: 1.16 - targets store row-normalised maps; the model receives them binarised.
        return torch.cat(maps, dim=0).bool().float()

    @staticmethod
    def _positive_map_eval(targets: Sequence[Any]) -> list[torch.Tensor | None] | None:
        out = [
            t.get_field("positive_map_eval") if t is not None and t.has_field("positive_map_eval") else None
            for t in targets
        ]
        return out if any(m is not None for m in out) else None


def fraction_without_boxes(targets: Sequence[Any]) -> float:
    """Fraction of targets with no box (the trainer skips a batch above ``SOLVER.MAX_NEG_PER_BATCH``)."""
    if not targets:
        return 0.0
    empty = sum(1 for t in targets if t is None or len(t) == 0)
    return empty / len(targets)
