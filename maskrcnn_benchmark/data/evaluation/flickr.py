"""Flickr30k Entities phrase grounding: Recall@1/5/10 and the upper bound (MDETR protocol, as FIBER reports it).

Protocol (upstream-facts.md section 7, "Flickr30k Entities"):

- Ground truth is read from the raw Flickr30k Entities release under a configurable root
  (``{subset}.txt``, ``Sentences/<image>.txt``, ``Annotations/<image>.xml``; upstream hard-codes
  ``DATASET/flickr30k/flickr30k/``). Phrases without a box are skipped; a box listed under two entity ids
  belongs to both; a phrase with two types counts in both types; every mention counts, also a repeated
  entity in one sentence; a scene entity that has a box is scored.
- One prediction per (image, sentence): for each phrase (label = phrase index + 1, in the order of the
  phrases that have boxes), its boxes sorted by score, resized to the original image.
- A phrase is a hit at k if any of its top-k boxes has IoU >= 0.5 (torchvision IoU, no +1) with ANY of its
  ground-truth boxes ("separate", the ANY-BOX protocol FIBER's configs use), or with the union box of its
  ground-truth boxes when ``merge_boxes`` ("merged", DATASETS.FLICKR_GT_TYPE). k = -1 ("Upper_bound") uses
  all boxes. Reported overall and per phrase type, in percent.
- A sentence of the split with at least one boxed phrase but no prediction is an error naming it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .base import DatasetEvaluator, ImageInfo, image_info_getter, read_json
from .refexp import box_iou_xyxy

__all__ = ["PHRASE_TYPES", "load_flickr_ground_truth", "evaluate_flickr", "FlickrEvaluator"]

logger = logging.getLogger(__name__)

TOPK = (1, 5, 10, -1)
PHRASE_TYPES = ("people", "clothing", "bodyparts", "animals", "vehicles", "instruments", "scene", "other")

# (image id, sentence index) -> list of (phrase types, ground-truth boxes float [G, 4] xyxy), phrase order
GroundTruth = dict[tuple[str, int], list[tuple[tuple[str, ...], np.ndarray]]]


def _merge(boxes: np.ndarray) -> np.ndarray:
    """The union (enclosing) box of several xyxy boxes, as a [1, 4] array."""
    return np.array([[boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(), boxes[:, 3].max()]])


def load_flickr_ground_truth(root: str, subset: str = "test", merge_boxes: bool = False) -> GroundTruth:
    """Read the raw Flickr30k Entities files of one split.

    Args:
        root: folder with ``{subset}.txt``, ``Sentences/`` and ``Annotations/``.
        subset: "test", "val" or "train".
        merge_boxes: replace each phrase's boxes by their union box ("merged" protocol).

    Returns:
        (image id, sentence index) -> [(phrase types, boxes [G, 4])] for the phrases that have boxes, in
        sentence order; sentences without any boxed phrase are left out.
    """
    from maskrcnn_benchmark.data.datasets import flickr_entities

    split_file = os.path.join(root, f"{subset}.txt")
    if not os.path.isfile(split_file):
        raise FileNotFoundError(
            f"{split_file}: Flickr30k Entities split list not found; set DATASETS.FLICKR_ENTITIES_ROOT to the folder "
            "holding {val,test}.txt, Annotations/ and Sentences/"
        )
    with open(split_file) as stream:
        image_ids = [line.strip() for line in stream if line.strip()]
    ground_truth: GroundTruth = {}
    for image_id in image_ids:
        sentences = flickr_entities.parse_sentences(os.path.join(root, "Sentences", f"{image_id}.txt"))
        annotation = flickr_entities.parse_annotation(os.path.join(root, "Annotations", f"{image_id}.xml"))
        boxes_by_entity = annotation["boxes"]
        for sentence_index, sentence in enumerate(sentences):
            phrases = []
            for phrase in sentence["phrases"]:
                boxes = boxes_by_entity.get(phrase["phrase_id"])
                if not boxes:
                    continue
                boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
                phrases.append((tuple(phrase["phrase_type"]), _merge(boxes) if merge_boxes else boxes))
            if phrases:
                ground_truth[(image_id, sentence_index)] = phrases
    return ground_truth


def _normalise_predictions(predictions: str | Sequence[Mapping[str, Any]], source: str):
    if isinstance(predictions, str):
        predictions = read_json(predictions)
    if not isinstance(predictions, list):
        raise ValueError(f"{source}: expected a list of predictions, got {type(predictions).__name__}")
    table = {}
    for index, prediction in enumerate(predictions):
        if not isinstance(prediction, Mapping):
            raise ValueError(f"{source}: prediction {index} is a {type(prediction).__name__}, not an object")
        for key in ("image_id", "sentence_id", "boxes"):
            if key not in prediction:
                raise ValueError(f"{source}: prediction {index} has no {key!r}")
        try:
            key = (str(prediction["image_id"]), int(prediction["sentence_id"]))
            table[key] = [np.asarray(boxes, dtype=np.float64).reshape(-1, 4) for boxes in prediction["boxes"]]
        except (TypeError, ValueError) as e:
            raise ValueError(f"{source}: prediction {index}: needs an integer sentence_id and per phrase a list "
                             f"of [x1, y1, x2, y2] boxes ({e})") from e
        if not all(np.isfinite(boxes).all() for boxes in table[key]):
            raise ValueError(f"{source}: prediction {index} has non-finite box coordinates")
    return table


def evaluate_flickr(
    gt: str | GroundTruth,
    predictions: str | Sequence[Mapping[str, Any]],
    subset: str = "test",
    merge_boxes: bool = False,
    topk: Sequence[int] = TOPK,
    iou_threshold: float = 0.5,
) -> dict[str, Any]:
    """Recall@k of phrase grounding predictions.

    Args:
        gt: the raw Flickr30k Entities root folder, or ground truth from :func:`load_flickr_ground_truth`.
        predictions: ``[{"image_id": "1000092795", "sentence_id": 0, "boxes": [[[x1, y1, x2, y2], ...] per
            phrase]}]`` (boxes of each phrase best first, original pixels) or a json path to it.
        subset, merge_boxes: as in :func:`load_flickr_ground_truth` (used when ``gt`` is a folder).
        topk: the k values; -1 = all boxes ("Upper_bound").
        iou_threshold: IoU for a hit.

    Returns:
        ``{"R@1", "R@5", "R@10", "Upper_bound", "per_type": {type: {...}}, "num_phrases", "protocol"}`` (percent).
    """
    source = predictions if isinstance(predictions, str) else "predictions"
    if isinstance(gt, str):
        gt = load_flickr_ground_truth(gt, subset=subset, merge_boxes=merge_boxes)
    table = _normalise_predictions(predictions, source)
    missing = [key for key in gt if key not in table]
    if missing:
        examples = ", ".join(f"image {image} sentence {sentence}" for image, sentence in missing[:5])
        raise ValueError(f"{source}: no prediction for {len(missing)} of {len(gt)} sentences ({examples})")
    names = ["Upper_bound" if k == -1 else f"R@{k}" for k in topk]
    hits: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for key, phrases in gt.items():
        predicted = table[key]
        if len(predicted) != len(phrases):
            raise ValueError(
                f"{source}: image {key[0]} sentence {key[1]} has {len(predicted)} predicted phrases, "
                f"the ground truth has {len(phrases)} phrases with boxes"
            )
        for (phrase_types, target), boxes in zip(phrases, predicted):
            ious = box_iou_xyxy(boxes, target) if len(boxes) else np.zeros((0, len(target)))
            best_per_box = ious.max(axis=1) if ious.size else np.zeros(len(boxes))
            row = np.array([bool(len(boxes)) and (best_per_box if k == -1 else best_per_box[:k]).max() >= iou_threshold
                            for k in topk], dtype=np.int64)
            for group in ("all",) + phrase_types:
                hits[group] = hits.get(group, np.zeros(len(topk), dtype=np.int64)) + row
                counts[group] = counts.get(group, 0) + 1
    metrics: dict[str, Any] = {}
    total = counts.get("all", 0)
    for name, value in zip(names, hits.get("all", np.zeros(len(topk)))):
        metrics[name] = 100.0 * float(value) / total if total else None
    metrics["per_type"] = {
        group: {name: 100.0 * float(value) / counts[group] for name, value in zip(names, hits[group])}
        for group in sorted(hits) if group != "all"
    }
    metrics["num_phrases"] = total
    metrics["protocol"] = "merged" if merge_boxes else "any-box"
    return metrics


class FlickrEvaluator(DatasetEvaluator):
    """Accumulates BoxLists of a Flickr30k grounding data set (MDETR ``final_flickr_separateGT_*.json``).

    The data set's image record must hold "original_img_id" (Flickr image id), "sentence_id" and, to know
    how many phrases the sentence has, "tokens_positive_eval" (one entry per boxed phrase).

    Args:
        flickr_root: raw Flickr30k Entities folder (see :func:`load_flickr_ground_truth`).
        subset: "test" or "val".
        image_info: ``idx -> image record``.
        output_dir: where ``predictions.json`` and ``metrics.json`` go.
        merge_boxes: "merged" protocol instead of any-box.
    """

    def __init__(self, flickr_root: str, subset: str = "test", image_info: ImageInfo | None = None,
                 output_dir: str | None = None, merge_boxes: bool = False):
        self.flickr_root = flickr_root
        self.subset = subset
        self.merge_boxes = merge_boxes
        super().__init__(image_info=image_info, output_dir=output_dir)

    @classmethod
    def from_dataset(cls, dataset: Any, flickr_root: str, subset: str = "test", output_dir: str | None = None,
                     merge_boxes: bool = False):
        return cls(flickr_root, subset, image_info_getter(dataset), output_dir=output_dir, merge_boxes=merge_boxes)

    def _empty_state(self) -> dict[tuple[str, int], dict[str, Any]]:
        return {}

    def _add(self, info, boxes, scores, labels) -> None:
        for key in ("original_img_id", "sentence_id"):
            if key not in info:
                raise ValueError(f"image record {info.get('id')} has no {key!r}; not a Flickr30k MDETR-style record")
        if "tokens_positive_eval" in info:
            num_phrases = len(info["tokens_positive_eval"])
        else:
            num_phrases = int(labels.max(initial=0))
        key = (str(info["original_img_id"]), int(info["sentence_id"]))
        entry = self._state.setdefault(key, {"num_phrases": num_phrases, "boxes": [], "scores": [], "labels": []})
        entry["boxes"].append(boxes)
        entry["scores"].append(scores)
        entry["labels"].append(labels)

    def _merge(self, states):
        merged: dict[tuple[str, int], dict[str, Any]] = {}
        for state in states:
            for key, entry in state.items():
                target = merged.setdefault(key, {"num_phrases": entry["num_phrases"], "boxes": [], "scores": [],
                                                 "labels": []})
                for field in ("boxes", "scores", "labels"):
                    target[field].extend(entry[field])
        return merged

    def _predictions_json(self) -> list[dict[str, Any]]:
        records = []
        for (image_id, sentence_id), entry in sorted(self._state.items()):
            boxes = np.concatenate(entry["boxes"]).reshape(-1, 4)
            scores = np.concatenate(entry["scores"])
            labels = np.concatenate(entry["labels"])
            per_phrase = []
            for phrase_index in range(entry["num_phrases"]):
                selected = np.nonzero(labels == phrase_index + 1)[0]
                order = selected[np.argsort(-scores[selected], kind="stable")]
                # UPSTREAM-QUIRK: section 7 (Flickr) - a dummy [0, 0, 0, 0] box ends every phrase's list.
                per_phrase.append(boxes[order].tolist() + [[0.0, 0.0, 0.0, 0.0]])
            records.append({"image_id": image_id, "sentence_id": sentence_id, "boxes": per_phrase})
        return records

    def _score(self) -> dict[str, Any]:
        metrics = evaluate_flickr(self.flickr_root, self._predictions_json(), subset=self.subset,
                                  merge_boxes=self.merge_boxes)
        logger.info("Flickr30k %s (%s): R@1 %s R@5 %s R@10 %s", self.subset, metrics["protocol"], metrics["R@1"],
                    metrics["R@5"], metrics["R@10"])
        return metrics
