"""COCO-format detection data set (COCO val, ODinW val/test, and the base of the grounding variants)."""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from ...structures.bounding_box import BoxList
from ..image_io import read_image
from .few_shot import check_few_shot_subset, select_few_shot
from .json_annotations import CocoStyleAnnotations, CocoStyleSamples, image_path_from_record

__all__ = ["COCODataset", "load_image", "has_valid_annotation"]

logger = logging.getLogger(__name__)


def load_image(path: str, where: str = "") -> Image.Image:
    """Open an image as 8-bit RGB through :func:`maskrcnn_benchmark.data.image_io.read_image`.

    A missing file raises FileNotFoundError, an unreadable one ``ImageReadError`` (a ValueError and an
    OSError), both naming ``where`` and the path.
    """
    return read_image(path, where)


def has_valid_annotation(anns: Sequence[dict[str, Any]]) -> bool:
    """Upstream rule for training images: some box is larger than 1 pixel in both directions."""
    if not anns:
        return False
    return any(a["bbox"][2] > 1 and a["bbox"][3] > 1 for a in anns)


class COCODataset(CocoStyleSamples, torch.utils.data.Dataset):
    """COCO JSON detection data set with contiguous labels.

    ``__getitem__(idx)`` returns ``(image, target, idx)``: the transformed image and a ``BoxList`` (xyxy,
    +1 convention: ``x2 = x + w - 1``) with fields ``labels`` (int64[N], contiguous 1..K in the file's
    category order) and ``orig_size`` ((h, w)). Crowd boxes are left out; boxes are clipped to the image and
    empty ones removed.

    Args:
        ann_file: COCO JSON path.
        root: image folder (``img_dir`` in the catalog); image path = root / file_name.
        remove_images_without_annotations: drop images without a usable box (training).
        transforms: ``transforms(image, target) -> (image, target)``.
        override_category: list of {"id", "name", ...} replacing the file's categories
            (``DATASETS.OVERRIDE_CATEGORY`` with ``USE_OVERRIDE_CATEGORY``).
        few_shot: k > 0 keeps a greedy k-shot subset (see :func:`select_few_shot`).
        shuffle_seed: seed of the few-shot visiting order (``DATASETS.SHUFFLE_SEED``; "seeded" subsets only).
        few_shot_subset: ``DATASETS.FEW_SHOT_SUBSET``: "seeded" (each seed its own subset) or "upstream"
            (upstream's subset: greedy over sorted ids, seed ignored, crowd boxes' categories counted).
        is_train: training split (informative; grounding subclasses use it).
        ignore_crowd: leave crowd boxes out (``not DATASETS.USE_CROWD``).
        max_box: if > 0, keep at most this many boxes per image, chosen at random per sample
            (``DATASETS.MAX_BOX``).
    """

    prefer_coco_url = False  # LVIS uses coco_url paths

    def __init__(
        self,
        ann_file: str,
        root: str,
        remove_images_without_annotations: bool = False,
        transforms: Any = None,
        override_category: Sequence[dict[str, Any]] | None = None,
        few_shot: int = 0,
        shuffle_seed: int | None = None,
        few_shot_subset: str = "seeded",
        is_train: bool = False,
        ignore_crowd: bool = True,
        max_box: int = -1,
        **unused: Any,
    ):
        if unused:
            logger.debug("%s ignores arguments %s", type(self).__name__, sorted(unused))
        self.ann_file = str(ann_file)
        self.root = str(root)
        self.is_train = is_train
        self.ignore_crowd = bool(ignore_crowd)
        self.max_box = int(max_box)
        self._transforms = transforms
        self.annotations = CocoStyleAnnotations(self.ann_file, override_categories=override_category)
        self.json_category_id_to_contiguous_id = self._contiguous_mapping()
        self.contiguous_category_id_to_json_id = {v: k for k, v in self.json_category_id_to_contiguous_id.items()}
        ids = sorted(self.annotations.images)
        if remove_images_without_annotations:
            # Upstream (COCODataset and CocoGrounding alike) tests every box here, crowd boxes included, so an
            # image whose only boxes are crowd boxes stays in the data set and becomes a sample without boxes
            # (the crowd boxes are dropped when it is loaded); the trainer then skips the batch holding it
            # (SOLVER.MAX_NEG_PER_BATCH rule, engine/trainer.py).
            ids = [i for i in ids if has_valid_annotation(self.annotations.anns_by_image[i])]
        if few_shot and few_shot > 0:
            ids = self._few_shot_subset(ids, few_shot, shuffle_seed, few_shot_subset)
        self.ids: list[Any] = ids
        self.id_to_img_map = dict(enumerate(ids))

    def _few_shot_subset(self, ids: list[Any], shots: int, seed: int | None, subset: str) -> list[Any]:
        if check_few_shot_subset(subset) == "upstream":
            # Upstream counts the categories of every box, crowd boxes included (getAnnIds(iscrowd=None)), and
            # sizes its quota by the largest category id of the file (before any OVERRIDE_CATEGORY).
            cats = {i: [a["category_id"] for a in self.annotations.anns_by_image[i]] for i in ids}
            numeric = [c for c in self.annotations.file_category_ids if isinstance(c, int)]
            kept = select_few_shot(ids, cats, shots, seed, subset="upstream", max_category_id=max(numeric, default=0))
        else:
            cats = {i: [a["category_id"] for a in self._usable_anns(i)] for i in ids}
            kept = select_few_shot(ids, cats, shots, seed, subset="seeded")
        seed_note = "seed ignored" if subset == "upstream" else f"seed {seed}"
        logger.info("%s: %d-shot subset (%s, %s) keeps %d of %d images", self.ann_file, shots, subset, seed_note,
                    len(kept), len(ids))
        return kept

    # ------------------------------------------------------------------ catalog data
    def _contiguous_mapping(self) -> dict[Any, int]:
        return {cat_id: i + 1 for i, cat_id in enumerate(self.annotations.category_ids())}

    def categories(self) -> dict[int, str]:
        """Contiguous label -> category name (sorted by label)."""
        names = {}
        for json_id, label in self.json_category_id_to_contiguous_id.items():
            names[label] = self.annotations.cats[json_id]["name"]
        return dict(sorted(names.items()))

    def image_path(self, idx: int) -> str:
        """Where the image of sample ``idx`` is read from."""
        info = self.get_img_info(idx)
        path = image_path_from_record(self.root, info, self.prefer_coco_url)
        if not os.path.isfile(path) and info.get("coco_url") and info.get("file_name"):
            # LVIS files name images either way (file_name with or without the split folder, or coco_url).
            other = image_path_from_record(self.root, info, not self.prefer_coco_url)
            if os.path.isfile(other):
                return other
        return path

    # ------------------------------------------------------------------ samples
    def _usable_anns(self, img_id: Any) -> list[dict[str, Any]]:
        anns = self.annotations.anns_by_image[img_id]
        if not self.ignore_crowd:
            return list(anns)
        return [a for a in anns if not a.get("iscrowd", 0)]

    def _load(self, idx: int) -> tuple[Image.Image, BoxList]:
        img_id = self.ids[idx]
        info = self.annotations.images[img_id]
        image = load_image(self.image_path(idx), self._where(idx))
        if image.size != (int(info["width"]), int(info["height"])):
            logger.debug("%s: image %s is %s, the file says %sx%s", self.ann_file, img_id, image.size,
                         info["width"], info["height"])
        anns = self._usable_anns(img_id)
        if 0 < self.max_box < len(anns):
            anns = [anns[i] for i in sorted(random.sample(range(len(anns)), self.max_box))]
        boxes = torch.as_tensor([a["bbox"] for a in anns], dtype=torch.float32).reshape(-1, 4)
        target = BoxList(boxes, image.size, mode="xywh").convert("xyxy")
        labels = [self.json_category_id_to_contiguous_id[a["category_id"]] for a in anns]
        target.add_field("labels", torch.tensor(labels, dtype=torch.int64))
        target = target.clip_to_image(remove_empty=True)
        target.add_field("orig_size", (int(info["height"]), int(info["width"])))
        return image, target

    def __getitem__(self, idx: int) -> tuple[Any, BoxList, int]:
        image, target = self._load(idx)
        if self._transforms is not None:
            image, target = self._transforms(image, target)
        return image, target, idx
