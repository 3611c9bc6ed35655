"""LVIS v1 detection data set for evaluation (``LvisDetection``, upstream-facts.md 6.2)."""

from __future__ import annotations

from typing import Any

from .coco import COCODataset

__all__ = ["LvisDetection"]


class LvisDetection(COCODataset):
    """LVIS v1 JSON (val, minival, ``lvis_od_val.json``) as a detection data set.

    Differences from :class:`COCODataset`: labels are the LVIS category ids themselves (1..1203, no
    remapping), so ``categories()`` is LVIS id -> name; the image path is ``img_dir`` + the last two
    components of ``coco_url`` (``val2017/000000397133.jpg``), falling back to ``file_name``. LVIS has no
    crowd boxes. Image records keep ``neg_category_ids`` / ``not_exhaustive_category_ids`` for the evaluator.

    Args: as :class:`COCODataset` (``root`` is the folder holding ``train2017/`` and ``val2017/``).
    """

    prefer_coco_url = True

    def _contiguous_mapping(self) -> dict[Any, int]:
        return {cat_id: int(cat_id) for cat_id in sorted(self.annotations.category_ids())}
