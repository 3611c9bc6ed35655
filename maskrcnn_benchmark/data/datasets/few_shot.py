"""Few-shot image selection for detection data sets (``DATASETS.FEW_SHOT``, ``DATASETS.FEW_SHOT_SUBSET``)."""

from __future__ import annotations

import random
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

__all__ = ["FEW_SHOT_SUBSETS", "select_few_shot", "check_few_shot_subset"]

# "seeded": each DATASETS.SHUFFLE_SEED > 0 draws its own subset (ours, the default).
# "upstream": upstream's CocoGrounding subset, the same for every seed (reproduces published few-shot numbers).
FEW_SHOT_SUBSETS = ("seeded", "upstream")


def check_few_shot_subset(subset: str) -> str:
    """Return ``subset`` if it is a known ``DATASETS.FEW_SHOT_SUBSET`` value, else raise ValueError."""
    if subset not in FEW_SHOT_SUBSETS:
        raise ValueError(f"DATASETS.FEW_SHOT_SUBSET must be one of {FEW_SHOT_SUBSETS}, got {subset!r}")
    return subset


def _upstream_slot(category_id: Any, num_slots: int) -> Hashable:
    """Upstream's quota cell of a category: ``cats_freq[category_id - 1]`` in a list of ``num_slots`` cells.

    UPSTREAM-QUIRK: 6.2 - the quota list has max(category id) cells and is indexed with ``id - 1``, so category
    id 0 (the Roboflow super-category of ODinW exports) reads cell -1, i.e. shares the quota of the largest id.
    """
    if not isinstance(category_id, int) or num_slots <= 0:
        return category_id
    slot = category_id - 1
    if slot < 0:
        slot += num_slots
    if not 0 <= slot < num_slots:
        raise ValueError(f"category id {category_id} has no few-shot quota cell (upstream sizes the quota by the "
                         f"largest category id, {num_slots})")
    return slot


def select_few_shot(
    image_ids: Sequence[Any],
    categories_of_image: Mapping[Any, Sequence[Any]],
    shots: int,
    seed: int | None = None,
    subset: str = "seeded",
    max_category_id: int = 0,
) -> list[Any]:
    """Greedy k-shot subset: keep an image if one of its categories still needs examples.

    Images are visited in the given order (sorted ids); an image is kept when any of its categories has quota
    left, and then every category in it uses one unit of quota (so a category can end with more than ``shots``
    images, as upstream).

    ``subset`` (``DATASETS.FEW_SHOT_SUBSET``):

    * ``"seeded"`` (default): ``seed`` None, 0 or negative keeps the given order; a positive seed shuffles the
      visiting order with ``random.Random(seed)`` first, so ``finetune.py --shuffle_seeds 3,30,300`` trains on
      three different subsets. Each category has its own quota.
    * ``"upstream"``: upstream's CocoGrounding (the class of ODinW / COCO / LVIS fine-tuning) ignores
      ``DATASETS.SHUFFLE_SEED`` (it is swallowed by ``**kwargs``), so every seed gets the greedy pass over the
      sorted ids; quota cells are indexed by ``category id - 1`` (see :func:`_upstream_slot`).

    Args:
        image_ids: candidate images, in visiting order.
        categories_of_image: image id -> category ids of its boxes (the caller decides whether crowd boxes
            count: upstream counts them).
        shots: k (> 0).
        seed: shuffle seed (``"seeded"`` only).
        subset: ``"seeded"`` or ``"upstream"``.
        max_category_id: largest category id of the file (the size of upstream's quota list).

    Returns:
        The kept image ids, in visiting order.
    """
    if shots <= 0:
        raise ValueError(f"DATASETS.FEW_SHOT must be > 0 to select a subset, got {shots}")
    check_few_shot_subset(subset)
    order = list(image_ids)
    if subset == "seeded" and seed is not None and seed > 0:
        random.Random(seed).shuffle(order)
    if subset == "upstream":
        def cell(c: Any) -> Hashable:
            return _upstream_slot(c, max_category_id)
    else:
        def cell(c: Any) -> Hashable:
            return c
    quota: dict[Hashable, int] = {}
    kept = []
    for img_id in order:
        cats = set(categories_of_image.get(img_id, ()))
        if any(quota.get(cell(c), shots) > 0 for c in cats):
            kept.append(img_id)
            for c in cats:  # per category: ids 0 and max share one cell and use it twice, as upstream
                quota[cell(c)] = quota.get(cell(c), shots) - 1
    return kept
