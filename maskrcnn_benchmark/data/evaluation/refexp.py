"""RefCOCO / RefCOCO+ / RefCOCOg top-k accuracy (MDETR protocol, as FIBER publishes it).

Protocol (upstream-facts.md section 7, "RefCOCO/+/g"): every image entry of the MDETR-style json
(``finetune_refcoco*_{split}.json``) is one referring expression with exactly one ground-truth box
(``bbox`` xywh, turned into xyxy as ``x2 = x + w``, no +1). Predictions (resized to the original image) are
sorted by score; the expression counts as correct at k if any of the top-k boxes has GENERALISED IoU >= 0.5
with the ground truth. The published "accuracy" is P@1 with GIoU. Because IoU >= 0.5 is what papers outside
the MDETR family report, the same numbers with plain IoU are returned beside it (``P@k_iou``).
Results are grouped by the image entry's ``dataset_name`` (refcoco, refcoco+, refcocog); metrics in percent.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .base import DatasetEvaluator, ImageInfo, image_info_getter, read_json
from .coco import _load_gt_dict

__all__ = ["box_iou_xyxy", "generalized_box_iou_xyxy", "evaluate_refexp", "RefExpEvaluator"]

logger = logging.getLogger(__name__)

TOPK = (1, 5, 10)
THRESHOLD = 0.5


def box_iou_xyxy(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """IoU between xyxy boxes without the +1 convention (torchvision style).

    Args:
        boxes1: float [N, 4]; boxes2: float [M, 4].

    Returns:
        float [N, M].
    """
    boxes1 = np.asarray(boxes1, dtype=np.float64).reshape(-1, 4)
    boxes2 = np.asarray(boxes2, dtype=np.float64).reshape(-1, 4)
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    top_left = np.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = np.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    wh = np.clip(bottom_right - top_left, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = area1[:, None] + area2[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def generalized_box_iou_xyxy(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """Generalised IoU (Rezatofighi et al. 2019): IoU - (hull area - union) / hull area; in [-1, 1].

    Args:
        boxes1: float [N, 4] xyxy; boxes2: float [M, 4] xyxy.

    Returns:
        float [N, M].
    """
    boxes1 = np.asarray(boxes1, dtype=np.float64).reshape(-1, 4)
    boxes2 = np.asarray(boxes2, dtype=np.float64).reshape(-1, 4)
    iou = box_iou_xyxy(boxes1, boxes2)
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    top_left = np.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = np.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    wh = np.clip(bottom_right - top_left, 0, None)
    union = area1[:, None] + area2[None, :] - wh[..., 0] * wh[..., 1]
    hull_wh = np.clip(
        np.maximum(boxes1[:, None, 2:], boxes2[None, :, 2:]) - np.minimum(boxes1[:, None, :2], boxes2[None, :, :2]),
        0,
        None,
    )
    hull = hull_wh[..., 0] * hull_wh[..., 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(hull > 0, iou - (hull - union) / hull, iou)


def _ground_truth_boxes(gt_dict: dict[str, Any], source: str) -> dict[int, tuple[str, np.ndarray]]:
    """image id -> (dataset_name, xyxy box) with the one-box-per-expression check."""
    boxes: dict[int, list[list[float]]] = {}
    for annotation in gt_dict.get("annotations", []):
        boxes.setdefault(annotation["image_id"], []).append(annotation["bbox"])
    table = {}
    for image in gt_dict.get("images", []):
        image_id = image["id"]
        found = boxes.get(image_id, [])
        if len(found) != 1:
            raise ValueError(f"{source}: image {image_id} has {len(found)} annotations; a referring expression has one")
        x, y, w, h = (float(v) for v in found[0])
        table[image_id] = (image.get("dataset_name", "refexp"), np.array([x, y, x + w, y + h]))
    return table


def evaluate_refexp(
    gt: str | dict[str, Any] | Any,
    predictions: str | Sequence[Mapping[str, Any]] | Mapping[int, Mapping[str, Any]],
    topk: Sequence[int] = TOPK,
    threshold: float = THRESHOLD,
) -> dict[str, Any]:
    """Score referring-expression predictions.

    Args:
        gt: MDETR-style refexp json (path, dict or COCO object).
        predictions: per image ``{"image_id", "boxes": [[x1, y1, x2, y2], ...] (original pixels),
            "scores": [...]}`` as a list, a dict keyed by image id, or a json path to such a list.
        topk: the k of P@k.
        threshold: (G)IoU threshold.

    Returns:
        ``{"accuracy": P@1 GIoU over all expressions, "<dataset_name>": {"P@k", "P@k_iou", "num_expressions"}}``
        (percent). Every ground-truth expression needs a prediction: a missing one raises ValueError naming it.
    """
    gt_dict = _load_gt_dict(gt)
    source = gt if isinstance(gt, str) else "ground truth"
    pred_source = predictions if isinstance(predictions, str) else "predictions"
    if isinstance(predictions, str):
        predictions = read_json(predictions)
    by_image = _predictions_by_image(predictions, pred_source)
    targets = _ground_truth_boxes(gt_dict, source)
    missing = sorted(set(targets) - set(by_image))
    if missing:
        raise ValueError(
            f"{pred_source}: no prediction for {len(missing)} of {len(targets)} expressions "
            f"(image ids {missing[:5]}...)"
        )
    hits: dict[str, dict[str, int]] = {}
    totals: dict[str, int] = {}
    for image_id, (dataset_name, target) in targets.items():
        boxes, scores = _sorted_prediction(by_image[image_id], pred_source)
        counts = hits.setdefault(dataset_name, {})
        totals[dataset_name] = totals.get(dataset_name, 0) + 1
        if len(boxes) == 0:
            continue
        giou = generalized_box_iou_xyxy(boxes, target[None])[:, 0]
        iou = box_iou_xyxy(boxes, target[None])[:, 0]
        for k in topk:
            counts[f"P@{k}"] = counts.get(f"P@{k}", 0) + int(giou[:k].max() >= threshold)
            counts[f"P@{k}_iou"] = counts.get(f"P@{k}_iou", 0) + int(iou[:k].max() >= threshold)
    metrics: dict[str, Any] = {}
    for dataset_name, total in totals.items():
        entry = {}
        for k in topk:
            for suffix in ("", "_iou"):
                entry[f"P@{k}{suffix}"] = 100.0 * hits[dataset_name].get(f"P@{k}{suffix}", 0) / total
        entry["num_expressions"] = total
        metrics[dataset_name] = entry
    total_all = sum(totals.values())
    metrics["accuracy"] = 100.0 * sum(h.get(f"P@{topk[0]}", 0) for h in hits.values()) / max(total_all, 1)
    metrics["accuracy_iou"] = 100.0 * sum(h.get(f"P@{topk[0]}_iou", 0) for h in hits.values()) / max(total_all, 1)
    return metrics


def _predictions_by_image(predictions: Any, source: str) -> dict[int, Mapping[str, Any]]:
    """image id -> prediction, from a list of ``{"image_id", "boxes", "scores"}`` or a dict keyed by image id."""
    if isinstance(predictions, Mapping):
        items = list(predictions.items())
    elif isinstance(predictions, list):
        items = [(p.get("image_id") if isinstance(p, Mapping) else None, p) for p in predictions]
    else:
        raise ValueError(f"{source}: expected a list of predictions, got {type(predictions).__name__}")
    by_image = {}
    for index, (image_id, prediction) in enumerate(items):
        if not isinstance(prediction, Mapping):
            raise ValueError(f"{source}: prediction {index} is a {type(prediction).__name__}, not an object")
        try:
            by_image[int(image_id)] = prediction
        except (TypeError, ValueError) as e:
            raise ValueError(f"{source}: prediction {index} has image_id {image_id!r} (needs an integer)") from e
    return by_image


def _sorted_prediction(prediction: Mapping[str, Any], source: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        boxes = np.asarray(prediction.get("boxes", []), dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(prediction.get("scores", []), dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{source}: image {prediction.get('image_id')}: boxes must be [[x1, y1, x2, y2], ...] and "
                         f"scores a list of numbers ({e})") from e
    if not (np.isfinite(boxes).all() and np.isfinite(scores).all()):
        raise ValueError(f"{source}: image {prediction.get('image_id')} has non-finite boxes or scores")
    if len(boxes) != len(scores):
        raise ValueError(
            f"{source}: image {prediction.get('image_id')} has {len(boxes)} boxes but {len(scores)} scores"
        )
    order = np.argsort(-scores, kind="stable")
    return boxes[order], scores[order]


class RefExpEvaluator(DatasetEvaluator):
    """Accumulates BoxLists of a RefExp data set (MDETR json) and scores P@1/5/10 with GIoU and IoU.

    Only the ``max(topk)`` best boxes per expression are kept (that is all the metric reads).

    Args:
        gt: the data set's MDETR-style json (path, dict or COCO object).
        image_info: ``idx -> {"id", "height", "width"}``.
        output_dir: where ``predictions.json`` and ``metrics.json`` go.
    """

    def __init__(self, gt, image_info: ImageInfo | None = None, output_dir: str | None = None,
                 topk: Sequence[int] = TOPK):
        self.gt_dict = _load_gt_dict(gt)
        self.topk = tuple(topk)
        super().__init__(image_info=image_info, output_dir=output_dir)

    @classmethod
    def from_dataset(cls, dataset: Any, output_dir: str | None = None):
        gt = getattr(dataset, "coco", None) or getattr(dataset, "ann_file", None)
        if gt is None:
            raise TypeError(f"{type(dataset).__name__} exposes neither .coco nor .ann_file")
        return cls(gt, image_info_getter(dataset), output_dir=output_dir)

    def _empty_state(self) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        return {}

    def _add(self, info, boxes, scores, labels) -> None:
        image_id = int(info["id"])
        self._state[image_id] = self._best(self._state.get(image_id), boxes, scores)

    def _best(self, kept: tuple[np.ndarray, np.ndarray] | None, boxes: np.ndarray, scores: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
        """The max(topk) highest-scoring boxes among ``kept`` and the new ones."""
        if kept is not None:
            boxes = np.concatenate([kept[0], boxes])
            scores = np.concatenate([kept[1], scores])
        order = np.argsort(-scores, kind="stable")[: max(self.topk)]
        return boxes[order], scores[order]

    def _merge(self, states):
        merged: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for state in states:
            for image_id, (boxes, scores) in state.items():
                merged[image_id] = self._best(merged.get(image_id), boxes, scores)
        return merged

    def _predictions_json(self) -> list[dict[str, Any]]:
        return [
            {"image_id": image_id, "boxes": boxes.tolist(), "scores": scores.tolist()}
            for image_id, (boxes, scores) in sorted(self._state.items())
        ]

    def _score(self) -> dict[str, Any]:
        metrics = evaluate_refexp(self.gt_dict, self._predictions_json(), topk=self.topk)
        logger.info("RefExp accuracy (P@1, GIoU>=0.5) %.2f; with IoU>=0.5 %.2f", metrics["accuracy"],
                    metrics["accuracy_iou"])
        return metrics
