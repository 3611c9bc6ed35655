"""Few-shot image selection for detection data sets (``DATASETS.FEW_SHOT``)."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["select_few_shot"]


def select_few_shot(
    image_ids: Sequence[Any],
    categories_of_image: Mapping[Any, Sequence[Any]],
    shots: int,
    seed: int | None = None,
) -> list[Any]:
    """Greedy k-shot subset: keep an image if one of its categories still needs examples.

    Images are visited in the given order (upstream: sorted ids); an image is kept when any of its
    categories has quota left, and then every category in it uses one unit of quota (so a category can end
    with more than ``shots`` boxes/images, as upstream).

    Seed rule: ``seed`` None, 0 or negative keeps upstream's deterministic order (upstream's CocoGrounding
    ignores ``DATASETS.SHUFFLE_SEED`` altogether); any positive seed shuffles the visiting order with
    ``random.Random(seed)`` first, so ``finetune.py --shuffle_seeds 3,30,300`` gives different subsets.

    Args:
        image_ids: candidate images, in visiting order.
        categories_of_image: image id -> category ids of its (non-crowd) boxes.
        shots: k (> 0).
        seed: shuffle seed (see above).

    Returns:
        The kept image ids, in the (possibly shuffled) visiting order.
    """
    if shots <= 0:
        raise ValueError(f"DATASETS.FEW_SHOT must be > 0 to select a subset, got {shots}")
    order = list(image_ids)
    if seed is not None and seed > 0:
        random.Random(seed).shuffle(order)
    quota: dict[Any, int] = {}
    kept = []
    for img_id in order:
        cats = set(categories_of_image.get(img_id, ()))
        if not cats:
            continue
        if any(quota.get(c, shots) > 0 for c in cats):
            kept.append(img_id)
            for c in cats:
                quota[c] = quota.get(c, shots) - 1
    return kept
