"""Checks of what the box evaluators score: COCO-format ground truth and result records.

The COCO and LVIS back ends (pycocotools / faster-coco-eval, lvis / faster-coco-eval) only ever see checked
input, so they agree on it and nothing fails deep inside them. Every error names the file (or "predictions"
/ "ground truth" for objects passed in memory) and the index of the bad record:

    bbox.json: prediction 17 has bbox [1.0, 2.0, 3.0] (needs 4 finite numbers [x, y, w, h])

Result records are ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}``: the bbox holds 4 finite
numbers with ``w >= 0`` and ``h >= 0``, the score is a finite number, and both ids name an image and a category
of the ground truth. Result rows (LVIS's float arrays ``[N, 7]`` of image_id, x, y, w, h, score, category_id)
follow the same rules.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "RESULT_KEYS",
    "GroundTruthIds",
    "check_ground_truth",
    "check_result_records",
    "check_result_rows",
    "looks_like_lvis",
    "with_annotation_defaults",
]

RESULT_KEYS = ("image_id", "category_id", "bbox", "score")
_MAX_LISTED = 10


@dataclass(frozen=True)
class GroundTruthIds:
    """The image and category ids of a checked ground truth."""

    image_ids: frozenset
    category_ids: frozenset

    def known_categories(self) -> str:
        known = sorted(self.category_ids)
        return f"{known[:_MAX_LISTED]}{'...' if len(known) > _MAX_LISTED else ''}"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_)) \
        and math.isfinite(value)


def _is_id(value: Any) -> bool:
    """COCO ids are integers (faster-coco-eval refuses others, the back ends store annotation ids in arrays)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _bbox_problem(bbox: Any) -> str | None:
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4 or not all(_is_number(v) for v in bbox):
        return f"bbox {bbox!r} (needs 4 finite numbers [x, y, w, h])"
    if bbox[2] < 0 or bbox[3] < 0:
        return f"bbox {list(bbox)} with a negative width or height"
    return None


def looks_like_lvis(gt: Mapping[str, Any]) -> bool:
    """True for an LVIS annotation file: categories with "frequency" or images with "neg_category_ids"."""
    categories = gt.get("categories") if isinstance(gt.get("categories"), list) else []
    images = gt.get("images") if isinstance(gt.get("images"), list) else []
    return any(isinstance(c, Mapping) and "frequency" in c for c in categories) or \
        any(isinstance(i, Mapping) and "neg_category_ids" in i for i in images)


def _ids(records: Any, key: str, what: str, source: str) -> frozenset:
    if not isinstance(records, list):
        raise ValueError(f"{source}: '{key}' must be a list of {what} records, got {type(records).__name__}")
    ids: set = set()
    for index, record in enumerate(records):
        if not isinstance(record, Mapping) or "id" not in record:
            raise ValueError(f"{source}: {what} #{index} is not an object with an 'id'")
        if not _is_id(record["id"]):
            raise ValueError(f"{source}: {what} #{index} has id {record['id']!r} (needs an integer)")
        if record["id"] in ids:
            raise ValueError(f"{source}: {what} #{index} repeats id {record['id']!r}")
        ids.add(record["id"])
    return frozenset(ids)


def _annotation_problem(ann: Any, ids: GroundTruthIds) -> str | None:
    if not isinstance(ann, Mapping):
        return f"is a {type(ann).__name__}, not an object"
    for key in ("image_id", "category_id", "bbox"):
        if key not in ann:
            return f"has no {key!r}"
    if not _is_id(ann["image_id"]) or ann["image_id"] not in ids.image_ids:
        return f"has image_id {ann['image_id']!r}, not in 'images'"
    if not _is_id(ann["category_id"]) or ann["category_id"] not in ids.category_ids:
        return f"has category_id {ann['category_id']!r}, not in 'categories'"
    problem = _bbox_problem(ann["bbox"])
    if problem:
        return f"has {problem}"
    if "id" in ann and not _is_id(ann["id"]):
        return f"has id {ann['id']!r} (needs an integer)"
    if "area" in ann and not _is_number(ann["area"]):
        return f"has area {ann['area']!r} (needs a finite number)"
    if "iscrowd" in ann and ann["iscrowd"] not in (0, 1):
        return f"has iscrowd {ann['iscrowd']!r} (needs 0 or 1)"
    return None


def check_ground_truth(gt: Any, source: str) -> GroundTruthIds:
    """Checks a COCO-format detection ground truth (also LVIS) and returns its ids.

    Needs "images" and "categories" lists of objects with unique ids; every entry of the optional
    "annotations" list names a known image and category and has a bbox of 4 finite numbers with w, h >= 0.

    Raises:
        ValueError: naming ``source`` and the first bad record.
    """
    if not isinstance(gt, Mapping):
        raise ValueError(f"{source}: expected a JSON object with 'images' and 'categories', got {type(gt).__name__}")
    for key in ("images", "categories"):
        if key not in gt:
            raise ValueError(f"{source}: missing key {key!r} (not a COCO-format ground truth)")
    ids = GroundTruthIds(_ids(gt["images"], "images", "image", source),
                         _ids(gt["categories"], "categories", "category", source))
    for index, category in enumerate(gt["categories"]):
        if not isinstance(category.get("name", ""), str):
            raise ValueError(f"{source}: category #{index} has name {category['name']!r} (needs a string)")
    annotations = gt.get("annotations", [])
    if not isinstance(annotations, list):
        raise ValueError(f"{source}: 'annotations' must be a list, got {type(annotations).__name__}")
    for index, ann in enumerate(annotations):
        problem = _annotation_problem(ann, ids)
        if problem:
            raise ValueError(f"{source}: annotation #{index} {problem}")
    return ids


def with_annotation_defaults(gt: dict[str, Any], crowd: bool = True) -> dict[str, Any]:
    """``gt`` whose annotations all have "id", "area" (w * h) and, with ``crowd``, "iscrowd" (0).

    The evaluation back ends index annotations by id and read area / iscrowd; files that leave them out get
    them here, in a copy (``gt`` itself is returned unchanged when nothing is missing).
    """
    annotations = gt.get("annotations", [])
    needed = ("id", "area", "iscrowd") if crowd else ("id", "area")
    if all(key in ann for ann in annotations for key in needed):
        return gt
    used = [ann["id"] for ann in annotations if isinstance(ann.get("id"), int)]
    next_id = max(used, default=0) + 1
    filled = []
    for ann in annotations:
        ann = dict(ann)
        if "id" not in ann:
            ann["id"], next_id = next_id, next_id + 1
        ann.setdefault("area", float(ann["bbox"][2]) * float(ann["bbox"][3]))
        if crowd:
            ann.setdefault("iscrowd", 0)
        filled.append(ann)
    return dict(gt, annotations=filled)


def _record_problem(record: Any, ids: GroundTruthIds) -> str | None:
    if not isinstance(record, Mapping):
        return f"is a {type(record).__name__}, not an object with {', '.join(RESULT_KEYS)}"
    for key in RESULT_KEYS:
        if key not in record:
            return f"has no {key!r}"
    problem = _bbox_problem(record["bbox"])
    if problem:
        return f"has {problem}"
    if not _is_number(record["score"]):
        return f"has score {record['score']!r} (needs a finite number)"
    if not _is_id(record["image_id"]) or record["image_id"] not in ids.image_ids:
        return f"has image_id {record['image_id']!r} not in the ground truth"
    if not _is_id(record["category_id"]) or record["category_id"] not in ids.category_ids:
        return (f"has category_id {record['category_id']!r} not in the ground truth "
                f"(known: {ids.known_categories()})")
    return None


def check_result_records(records: Any, ids: GroundTruthIds, source: str) -> None:
    """Checks a list of result records against the ground truth's ids (see the module docstring).

    Raises:
        ValueError: ``"<source>: prediction <index> has ..."`` for the first bad record.
    """
    if not isinstance(records, list):
        raise ValueError(f"{source}: expected a JSON list of result records ({', '.join(RESULT_KEYS)}), "
                         f"got {type(records).__name__}")
    for index, record in enumerate(records):
        problem = _record_problem(record, ids)
        if problem:
            raise ValueError(f"{source}: prediction {index} {problem}")


def check_result_rows(rows: np.ndarray, ids: GroundTruthIds, source: str) -> None:
    """Checks float rows ``[N, 7]`` (image_id, x, y, w, h, score, category_id) like result records.

    Raises:
        ValueError: ``"<source>: prediction <row> has ..."`` for the first bad row.
    """
    if rows.ndim != 2 or rows.shape[1] != 7:
        raise ValueError(f"{source}: result rows must be [N, 7], got shape {tuple(rows.shape)}")
    bad = ~np.isfinite(rows).all(axis=1)
    bad |= (rows[:, 3] < 0) | (rows[:, 4] < 0)
    bad |= ~np.isin(rows[:, 0], np.array(sorted(ids.image_ids), dtype=np.float64))
    bad |= ~np.isin(rows[:, 6], np.array(sorted(ids.category_ids), dtype=np.float64))
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        image_id, x, y, w, h, score, category_id = rows[index].tolist()
        record = {"image_id": image_id, "category_id": category_id, "bbox": [x, y, w, h], "score": score}
        record = {k: int(v) if k.endswith("_id") and float(v).is_integer() else v for k, v in record.items()}
        problem = _record_problem(record, ids) or f"is {rows[index].tolist()}"
        raise ValueError(f"{source}: prediction {index} {problem}")
