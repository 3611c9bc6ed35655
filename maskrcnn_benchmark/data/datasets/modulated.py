"""MDETR-style grounding data sets: Flickr30k (separateGT), RefCOCO/+/g, mixed (GoldG) (upstream-facts 6.2).

Annotation files: ``final_flickr_separateGT_{train,val,test}.json``, ``finetune_refcoco*_{split}.json``,
``final_mixed_train_no_coco.json``. Each image record is one (image, caption) pair with ``caption`` and,
for evaluation, ``tokens_positive_eval`` (one list of spans per phrase); each annotation is a box (xywh)
with ``tokens_positive`` spans into the caption.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from ...structures.bounding_box import BoxList
from ..prompts import DEFAULT_MAX_QUERY_LEN, count_long_captions, create_positive_map
from .coco import has_valid_annotation, load_image
from .coco_grounding import add_positive_map, resolve_tokenizer
from .json_annotations import CocoStyleAnnotations, CocoStyleSamples, image_path_from_record

__all__ = ["ModulatedDataset", "FlickrDataset", "RefExpDataset", "MixedDataset"]

logger = logging.getLogger(__name__)


class ModulatedDataset(CocoStyleSamples, torch.utils.data.Dataset):
    """MDETR-format grounding data set.

    ``__getitem__(idx)`` returns ``(image, target, idx)`` with target fields: ``labels`` (int64[N], 1..N),
    ``caption`` (str), ``tokens_positive`` (per box list of [start, end) spans), ``positive_map``
    (float[N, L], rows normalised), ``orig_size``; in evaluation mode (``is_train`` False) when the image
    record has ``tokens_positive_eval``: ``tokens_positive_eval``, ``positive_map_eval`` (float[P, L], one
    normalised row per phrase) and ``nb_eval`` (P).

    Boxes: xywh -> xyxy with the +1 convention (``x2 = x + w - 1``), clamped to [0, W-1] x [0, H-1],
    degenerate boxes dropped with their spans. Images without a box larger than 1 pixel are skipped
    (upstream does the same, for every split).

    Args:
        img_folder: image folder (``img_dir`` / ``img_folder`` in the catalog).
        ann_file: MDETR JSON path.
        transforms: ``transforms(image, target)``.
        tokenizer: fast tokenizer or a name/folder for ``build_tokenizer``.
        is_train: training split (no eval maps).
        max_query_len: token columns of the positive maps.
        disable_clip_to_image: ``DATASETS.DISABLE_CLIP_TO_IMAGE``.
    """

    def __init__(
        self,
        img_folder: str,
        ann_file: str,
        transforms: Any = None,
        tokenizer: Any = None,
        is_train: bool = False,
        max_query_len: int = DEFAULT_MAX_QUERY_LEN,
        disable_clip_to_image: bool = False,
        **unused: Any,
    ):
        if unused:
            logger.debug("%s ignores arguments %s", type(self).__name__, sorted(unused))
        self.root = str(img_folder)
        self.ann_file = str(ann_file)
        self._transforms = transforms
        self.tokenizer = resolve_tokenizer(tokenizer)
        self.is_train = bool(is_train)
        self.max_query_len = int(max_query_len)
        self.disable_clip_to_image = bool(disable_clip_to_image)
        self.annotations = CocoStyleAnnotations(self.ann_file, require_categories=False, grounding=True)
        ids = sorted(self.annotations.images, key=lambda i: (str(type(i)), i))
        self.ids: list[Any] = [i for i in ids if has_valid_annotation(self.annotations.anns_by_image[i])]
        dropped = len(ids) - len(self.ids)
        if dropped:
            logger.info("%s: skipped %d images without a usable box", self.ann_file, dropped)
        self.long_captions = self._count_long_captions()

    def _count_long_captions(self) -> int:
        """Counts the captions longer than ``max_query_len`` tokens and warns once for the data set.

        The model sees only the first ``max_query_len`` tokens; a phrase reaching past them gets no token in
        the positive maps (:func:`create_positive_map`), so its boxes have no text target.
        """
        if self.tokenizer is None or not self.ids:
            return 0
        captions = [self.annotations.images[i]["caption"] for i in self.ids]
        count, first, length = count_long_captions(self.tokenizer, captions, self.max_query_len)
        if count:
            logger.warning(
                "%s: %d of %d captions are longer than MODEL.LANGUAGE_BACKBONE.MAX_QUERY_LEN = %d tokens (e.g. "
                "image %s: %d tokens); they are truncated there and phrases past the cut get no token",
                self.ann_file, count, len(captions), self.max_query_len, self.ids[first], length)
        return count

    def image_path(self, idx: int) -> str:
        """Where the image of sample ``idx`` is read from."""
        return image_path_from_record(self.root, self.get_img_info(idx))

    def _target(self, idx: int, size: tuple[int, int]) -> BoxList:
        info = self.get_img_info(idx)
        width, height = size
        anns = [a for a in self.annotations.anns_by_image[self.ids[idx]] if not a.get("iscrowd", 0)]
        boxes = torch.as_tensor([a["bbox"] for a in anns], dtype=torch.float32).reshape(-1, 4)
        # UPSTREAM-QUIRK: 6.2 - xywh -> xyxy with the +1 convention, clamp to [0, W-1], [0, H-1].
        boxes[:, 2:] += boxes[:, :2] - 1
        boxes[:, 0::2].clamp_(min=0, max=width - 1)
        boxes[:, 1::2].clamp_(min=0, max=height - 1)
        keep = (boxes[:, 3] > boxes[:, 1]) & (boxes[:, 2] > boxes[:, 0])
        kept = keep.nonzero().flatten().tolist()
        target = BoxList(boxes[keep], size, mode="xyxy")
        target.add_field("labels", torch.arange(1, len(kept) + 1, dtype=torch.int64))
        target.add_field("caption", info["caption"])
        target.add_field("tokens_positive", [[list(s) for s in anns[i]["tokens_positive"]] for i in kept],
                         per_box=True)
        target.add_field("orig_size", (int(info["height"]), int(info["width"])))
        if not self.disable_clip_to_image:
            target = target.clip_to_image(remove_empty=False)
        return target

    def _add_eval_maps(self, target: BoxList, idx: int) -> None:
        spans = self.get_img_info(idx).get("tokens_positive_eval")
        if self.is_train or not spans:
            return
        encoding = self.tokenizer(
            target.get_field("caption"), max_length=self.max_query_len, truncation=True, add_special_tokens=True
        )
        target.add_field("tokens_positive_eval", [[list(s) for s in phrase] for phrase in spans])
        target.add_field("positive_map_eval", create_positive_map(encoding, spans, max_len=self.max_query_len))
        target.add_field("nb_eval", len(spans))

    def __getitem__(self, idx: int) -> tuple[Any, BoxList, int]:
        image = load_image(self.image_path(idx), self._where(idx))
        target = self._target(idx, image.size)
        if self._transforms is not None:
            image, target = self._transforms(image, target)
        target = add_positive_map(target, self.tokenizer, self.max_query_len, self._where(idx))
        self._add_eval_maps(target, idx)
        return image, target, idx


class FlickrDataset(ModulatedDataset):
    """Flickr30k Entities in MDETR's ``final_flickr_separateGT_*.json`` form."""


class RefExpDataset(ModulatedDataset):
    """RefCOCO / RefCOCO+ / RefCOCOg in MDETR's ``finetune_refcoco*_*.json`` form."""


class MixedDataset(ModulatedDataset):
    """MDETR "GoldG" mixed data (``final_mixed_train_no_coco.json``): images from COCO or Visual Genome/GQA.

    An image record with ``data_source == "coco"`` is read from ``coco_img_dir``, any other from
    ``vg_img_dir``.

    Args:
        coco_img_dir: COCO train2014 images (catalog: ``refcoco/train2014``).
        vg_img_dir: GQA / Visual Genome images (catalog: ``gqa/images``).
        ann_file, transforms, tokenizer, is_train, max_query_len, disable_clip_to_image: as
            :class:`ModulatedDataset`.
    """

    def __init__(self, coco_img_dir: str, vg_img_dir: str, ann_file: str, **kwargs: Any):
        kwargs.pop("img_folder", None)
        super().__init__(img_folder=vg_img_dir, ann_file=ann_file, **kwargs)
        self.coco_img_dir = str(coco_img_dir)
        self.vg_img_dir = str(vg_img_dir)

    def image_path(self, idx: int) -> str:
        info = self.get_img_info(idx)
        root = self.coco_img_dir if info.get("data_source") == "coco" else self.vg_img_dir
        return image_path_from_record(root, info)
