"""Reading and validating COCO-style annotation files (COCO, LVIS, ODinW, Objects365, MDETR).

One :class:`CocoStyleAnnotations` object parses the JSON once, checks every record that the data sets use,
and indexes it. Every error names the file and the record (``"<file>: annotation 17 (image 3): ..."``).
pycocotools is only used lazily, for evaluators that want a ``COCO`` object (:meth:`as_pycocotools`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
from collections.abc import Sequence
from typing import Any

from ...utils.json_io import read_json_file

__all__ = ["CocoStyleAnnotations", "CocoStyleSamples", "load_json", "image_path_from_record"]

logger = logging.getLogger(__name__)


def load_json(path: str) -> Any:
    """Read a JSON (or gzip JSON) file; a missing, empty or malformed file gives an error naming it."""
    return read_json_file(path, what="annotation file")


def image_path_from_record(img_dir: str, record: dict[str, Any], prefer_coco_url: bool = False) -> str:
    """Image location for an image record.

    Args:
        img_dir: image root.
        record: the JSON image entry.
        prefer_coco_url: LVIS rule - use the last two components of ``coco_url`` (e.g.
            ``val2017/000000397133.jpg``) when present.

    Returns:
        The path ``img_dir/<relative path>``.
    """
    rel = None
    if prefer_coco_url and record.get("coco_url"):
        rel = "/".join(str(record["coco_url"]).split("/")[-2:])
    if rel is None:
        rel = record.get("file_name")
    if rel is None and record.get("coco_url"):
        rel = "/".join(str(record["coco_url"]).split("/")[-2:])
    if rel is None:
        raise ValueError(f"image {record.get('id')} has neither 'file_name' nor 'coco_url'")
    return os.path.join(img_dir, rel)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _is_id(x: Any) -> bool:
    """Record ids are integers or strings (hashable, comparable with the other records' ids)."""
    return isinstance(x, (int, str)) and not isinstance(x, bool)


def _sorted_ids(ids: Any) -> list[Any]:
    try:
        return sorted(ids)
    except TypeError:  # integer and string ids mixed
        return sorted(ids, key=str)


def _records(data: dict[str, Any], key: str, ann_file: str) -> list[Any]:
    records = data[key]
    if not isinstance(records, list):
        raise ValueError(f"{ann_file}: '{key}' must be a list of records, got {type(records).__name__}")
    return records


class CocoStyleAnnotations:
    """A parsed, validated COCO-style annotation file.

    Attributes:
        ann_file: path of the file.
        dataset: the raw JSON dict.
        images: image id -> image record (every image, in file order).
        anns_by_image: image id -> list of annotation records (file order).
        cats: category id -> category record (file order; the override's when one is given).
        file_category_ids: category ids of the file's own "categories", in file order (before any override).

    Args:
        ann_file: path of the JSON file.
        require_categories: every annotation's ``category_id`` must name a category (detection files).
        require_annotations: the file must have an "annotations" list.
        grounding: annotations need ``tokens_positive`` spans and images a ``caption`` (MDETR files).
        override_categories: replaces the file's "categories" (``DATASETS.OVERRIDE_CATEGORY``).
    """

    def __init__(
        self,
        ann_file: str,
        require_categories: bool = True,
        require_annotations: bool = True,
        grounding: bool = False,
        override_categories: Sequence[dict[str, Any]] | None = None,
    ):
        self.ann_file = str(ann_file)
        data = load_json(self.ann_file)
        if not isinstance(data, dict):
            raise ValueError(f"{self.ann_file}: expected a JSON object with 'images', got {type(data).__name__}")
        # category ids in the file's own order, also when OVERRIDE_CATEGORY replaces the categories
        file_categories = data.get("categories") if isinstance(data.get("categories"), list) else []
        self.file_category_ids = [c["id"] for c in file_categories if isinstance(c, dict) and _is_id(c.get("id"))]
        if override_categories:
            data = dict(data)
            data["categories"] = list(override_categories)
        self.dataset = data
        self.grounding = grounding
        self.images = self._index_images(data)
        self.cats = self._index_categories(data, require_categories)
        if "annotations" not in data and require_annotations:
            raise ValueError(f"{self.ann_file}: missing key 'annotations'")
        self.anns_by_image: dict[Any, list[dict[str, Any]]] = {img_id: [] for img_id in self.images}
        for i, ann in enumerate(_records(data, "annotations", self.ann_file) if "annotations" in data else []):
            self._check_annotation(i, ann, require_categories)
            self.anns_by_image[ann["image_id"]].append(ann)
        self._coco = None

    # ------------------------------------------------------------------ validation
    def _index_images(self, data: dict[str, Any]) -> dict[Any, dict[str, Any]]:
        if "images" not in data:
            raise ValueError(f"{self.ann_file}: missing key 'images'")
        images: dict[Any, dict[str, Any]] = {}
        for i, img in enumerate(_records(data, "images", self.ann_file)):
            where = f"{self.ann_file}: image #{i}"
            if not isinstance(img, dict) or "id" not in img:
                raise ValueError(f"{where}: missing key 'id'")
            if not _is_id(img["id"]):
                raise ValueError(f"{where}: id {img['id']!r} is not an integer or a string")
            where = f"{self.ann_file}: image {img['id']}"
            for key in ("width", "height"):
                if key not in img:
                    raise ValueError(f"{where}: missing key '{key}'")
                if not _is_number(img[key]) or img[key] <= 0:
                    raise ValueError(f"{where}: {key} must be a positive number, got {img[key]!r}")
            if "file_name" not in img and "coco_url" not in img:
                raise ValueError(f"{where}: missing key 'file_name' (or 'coco_url')")
            for key in ("file_name", "coco_url"):
                if key in img and not isinstance(img[key], str):
                    raise ValueError(f"{where}: {key} must be a string, got {img[key]!r}")
            if self.grounding:
                if not isinstance(img.get("caption"), str):
                    raise ValueError(f"{where}: missing key 'caption' (a string)")
                for k, spans in enumerate(img.get("tokens_positive_eval", []) or []):
                    self._check_spans(spans, img["caption"], f"{where}: tokens_positive_eval[{k}]")
            if img["id"] in images:
                raise ValueError(f"{where}: duplicate image id")
            images[img["id"]] = img
        return images

    def _index_categories(self, data: dict[str, Any], required: bool) -> dict[Any, dict[str, Any]]:
        if "categories" not in data:
            if required:
                raise ValueError(f"{self.ann_file}: missing key 'categories'")
            return {}
        cats: dict[Any, dict[str, Any]] = {}
        for i, cat in enumerate(_records(data, "categories", self.ann_file)):
            if not isinstance(cat, dict) or "id" not in cat or "name" not in cat:
                raise ValueError(f"{self.ann_file}: category #{i} ({cat!r}) needs keys 'id' and 'name'")
            if not _is_id(cat["id"]) or not isinstance(cat["name"], str):
                raise ValueError(f"{self.ann_file}: category #{i} needs an integer or string 'id' and a string "
                                 f"'name', got {cat!r}")
            if cat["id"] in cats:
                raise ValueError(f"{self.ann_file}: duplicate category id {cat['id']}")
            cats[cat["id"]] = cat
        return cats

    @staticmethod
    def _check_spans(spans: Any, caption: str, where: str, allow_empty_list: bool = False) -> None:
        if not isinstance(spans, (list, tuple)) or (not spans and not allow_empty_list):
            raise ValueError(f"{where}: expected a non-empty list of [start, end) spans, got {spans!r}")
        for span in spans:
            ok = isinstance(span, (list, tuple)) and len(span) == 2 and all(isinstance(v, int) for v in span)
            if not ok:
                raise ValueError(f"{where}: character span {span!r} is not an integer [start, end) pair")
            start, end = span
            if not 0 <= start < end <= len(caption):
                raise ValueError(
                    f"{where}: character span {list(span)} is empty or outside the caption "
                    f"(length {len(caption)}): {caption!r}"
                )

    def _check_annotation(self, i: int, ann: Any, require_categories: bool) -> None:
        if not isinstance(ann, dict):
            raise ValueError(f"{self.ann_file}: annotation #{i} is not an object")
        ann_id = ann.get("id", f"#{i}")
        where = f"{self.ann_file}: annotation {ann_id}"
        for key in ("image_id", "bbox") + (("category_id",) if require_categories else ()):
            if key not in ann:
                raise ValueError(f"{where}: missing key '{key}'")
        where = f"{where} (image {ann['image_id']!r})"
        if not _is_id(ann["image_id"]) or ann["image_id"] not in self.images:
            raise ValueError(f"{where}: image id {ann['image_id']} is not in 'images'")
        bbox = ann["bbox"]
        if not isinstance(bbox, (list, tuple)) or len(bbox) != 4 or not all(_is_number(v) for v in bbox):
            raise ValueError(f"{where}: bbox must be 4 finite numbers [x, y, w, h], got {bbox!r}")
        if bbox[2] < 0 or bbox[3] < 0:
            raise ValueError(f"{where}: bbox {bbox} has a negative width or height")
        if require_categories and (not _is_id(ann["category_id"]) or ann["category_id"] not in self.cats):
            raise ValueError(
                f"{where}: unknown category id {ann['category_id']!r} (known: {_sorted_ids(self.cats)[:20]}"
                f"{'...' if len(self.cats) > 20 else ''})"
            )
        if self.grounding:
            if "tokens_positive" not in ann:
                raise ValueError(f"{where}: missing key 'tokens_positive'")
            caption = self.images[ann["image_id"]]["caption"]
            # a box may name no phrase (empty list); a span itself may not be empty
            self._check_spans(ann["tokens_positive"], caption, f"{where}: tokens_positive", allow_empty_list=True)

    # ------------------------------------------------------------------ access
    def category_ids(self) -> list[Any]:
        """Category ids in file order (what pycocotools ``getCatIds()`` returns)."""
        return list(self.cats)

    def as_pycocotools(self) -> Any:
        """A ``pycocotools.coco.COCO`` over the same records (built once, quietly)."""
        if self._coco is None:
            from pycocotools.coco import COCO

            coco = COCO()
            coco.dataset = self.dataset
            with contextlib.redirect_stdout(io.StringIO()):
                coco.createIndex()
            self._coco = coco
        return self._coco


class CocoStyleSamples:
    """Mixin for data sets whose samples are the images of a :class:`CocoStyleAnnotations` file.

    The data set sets ``ann_file`` (path), ``annotations`` (the parsed file) and ``ids`` (image ids in sample
    order); this gives it the accessors the loaders, evaluators and error messages share.
    """

    ann_file: str
    annotations: CocoStyleAnnotations
    ids: list[Any]

    @property
    def coco(self) -> Any:
        """``pycocotools.coco.COCO`` view of the annotations (for evaluators)."""
        return self.annotations.as_pycocotools()

    def __len__(self) -> int:
        return len(self.ids)

    def get_img_info(self, idx: int) -> dict[str, Any]:
        """The image record of sample ``idx`` (keys "height", "width", "id", "file_name", ...; grounding files
        add "caption" and, e.g., "original_img_id", "sentence_id", "tokens_positive_eval")."""
        return self.annotations.images[self.ids[idx]]

    def _where(self, idx: int) -> str:
        """``"<ann_file>: image <id>"``, naming sample ``idx`` in errors and logs."""
        return f"{self.ann_file}: image {self.ids[idx]}"
