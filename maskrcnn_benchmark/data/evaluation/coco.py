"""COCO box AP (used for COCO val2017 and every ODinW data set), via pycocotools or faster-coco-eval.

Protocol (upstream-facts.md section 7, "COCO detection"): predictions are resized to the original image size,
converted to ``[x, y, w, h]`` with upstream's +1 pixel width (``w = x2 - x1 + 1``), their contiguous labels
mapped to the json category ids (labels without a json id are dropped), and scored with COCOeval "bbox"
(IoU 0.50:0.95, maxDets 1/10/100). Both back ends run the same protocol and give identical numbers (tested on
every COCO case of the suite); faster-coco-eval, the default, is several times faster on large sets (see
benchmarks/eval.py); pycocotools stays selectable as the reference (``TEST.COCO_EVAL_BACKEND pycocotools``).
The metrics carry ``"backend"``; :func:`backend_label` names its package for tables.

Metrics are reported in percent (the published numbers' unit); a metric that is undefined because no ground
truth falls in its range (e.g. APs without small objects) is ``None``.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import logging
import numbers
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from maskrcnn_benchmark.utils.atomic_io import atomic_write_text

from .base import DatasetEvaluator, ImageInfo, image_info_getter, read_json
from .records import (
    GroundTruthIds,
    check_ground_truth,
    check_result_records,
    looks_like_lvis,
    with_annotation_defaults,
)

__all__ = [
    "COCO_METRIC_NAMES",
    "BACKENDS",
    "DEFAULT_BACKEND",
    "backend_label",
    "coco_result_record",
    "coco_records_from_arrays",
    "evaluate_coco_bbox",
    "load_coco_ground_truth",
    "format_per_category_table",
    "CocoEvaluator",
]

logger = logging.getLogger(__name__)

COCO_METRIC_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
BACKENDS = ("pycocotools", "faster")
DEFAULT_BACKEND = "faster"  # faster-coco-eval: the same numbers as pycocotools, several times faster
_BACKEND_PACKAGES = {"pycocotools": "pycocotools", "faster": "faster-coco-eval", "lvis": "lvis"}


def backend_label(backend: str | None) -> str | None:
    """The package behind an evaluation back end name ("faster" -> "faster-coco-eval"); None stays None."""
    if backend is None:
        return None
    return _BACKEND_PACKAGES.get(str(backend), str(backend))

GroundTruth = str | dict[str, Any] | Any


def coco_result_record(image_id: Any, category_id: int, bbox_xywh: Sequence[float], score: float,
                       name: str | None = None) -> dict[str, Any]:
    """One COCO (and LVIS) result record ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}``.

    The one place the record layout is spelled: every writer of result records (the evaluators, LVIS rows,
    ``Detections.to_coco_json``) goes through it. ``name`` (the class name / phrase) is added when given.
    Integer ids (numpy included) become Python ints; other ids (None, strings) are written as they are.
    """
    record = {
        "image_id": int(image_id) if isinstance(image_id, numbers.Integral) else image_id,
        "category_id": int(category_id),
        "bbox": [float(v) for v in bbox_xywh],
        "score": float(score),
    }
    if name is not None:
        record["name"] = name
    return record


def coco_records_from_arrays(
    image_id: Any,
    boxes_xyxy: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    label_to_category_id: Mapping[int, int] | None = None,
    plus_one: bool = True,
    names: Sequence[str] | None = None,
    box_digits: int | None = None,
    score_digits: int | None = None,
) -> list[dict[str, Any]]:
    """Turn one image's detections into COCO result records.

    Args:
        image_id: json image id.
        boxes_xyxy: float [N, 4] in original-image pixels.
        scores: float [N].
        labels: int [N] contiguous labels (or json ids when ``label_to_category_id`` is None).
        label_to_category_id: contiguous label -> json category id; labels missing from it are dropped.
        plus_one: upstream's COCO path writes ``w = x2 - x1 + 1`` (BoxList "xywh" conversion); LVIS does not.
        names: per box, a ``"name"`` written into its record (the Predictor's class names / phrases).
        box_digits, score_digits: round box coordinates / scores to this many decimals (None: keep all).

    Returns:
        list of ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}`` (+ ``"name"``).
    """
    offset = 1.0 if plus_one else 0.0
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    name_list = list(names) if names is not None else [None] * len(boxes)
    records = []
    for box, score, label, name in zip(boxes, np.asarray(scores), np.asarray(labels), name_list):
        label = int(label)
        if label_to_category_id is not None:
            if label not in label_to_category_id:
                continue
            category_id = int(label_to_category_id[label])
        else:
            category_id = label
        x1, y1, x2, y2 = (float(v) for v in box)
        # a degenerate box (x2 < x1 - offset after resizing) is written with width 0, never negative
        bbox = [x1, y1, max(x2 - x1 + offset, 0.0), max(y2 - y1 + offset, 0.0)]
        score = float(score)
        if box_digits is not None:
            bbox = [round(v, box_digits) for v in bbox]
        if score_digits is not None:
            score = round(score, score_digits)
        records.append(coco_result_record(image_id, category_id, bbox, score, name))
    return records


def _load_gt_dict(gt: GroundTruth) -> dict[str, Any]:
    if isinstance(gt, (str, os.PathLike)):
        return read_json(os.fspath(gt))
    if isinstance(gt, dict):
        return gt
    dataset = getattr(gt, "dataset", None)
    if isinstance(dataset, dict):
        return dataset
    raise TypeError(f"ground truth must be a json path, a dict or a COCO object, got {type(gt).__name__}")


def gt_source(gt: Any) -> str:
    """How messages name a ground truth: its path, or "ground truth" for objects in memory."""
    return os.fspath(gt) if isinstance(gt, (str, os.PathLike)) else "ground truth"


def load_coco_ground_truth(gt: GroundTruth) -> tuple[dict[str, Any], GroundTruthIds]:
    """A checked COCO-format detection ground truth for COCOeval, and its ids.

    Annotations without "id" / "iscrowd" / "area" get a new id / 0 / w * h (in a copy), as both back ends
    need them.

    Raises:
        ValueError: a malformed ground truth (naming the record), or an LVIS file (which needs ``lvis``).
    """
    gt_dict = _load_gt_dict(gt)
    source = gt_source(gt)
    ids = check_ground_truth(gt_dict, source)
    if looks_like_lvis(gt_dict):
        raise ValueError(f"{source}: this is an LVIS annotation file (categories with 'frequency', images with "
                         f"'neg_category_ids'); score it with the LVIS evaluator: python -m "
                         f"maskrcnn_benchmark.data.evaluation lvis --gt {source} --predictions ...")
    return with_annotation_defaults(gt_dict), ids


def _coco_api(backend: str):
    """Return (COCO class, COCOeval class, extra kwargs) for a back end."""
    if backend == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        return COCO, COCOeval, {}
    if backend == "faster":
        try:
            from faster_coco_eval import COCO, COCOeval_faster
        except ImportError as error:
            raise ImportError("the 'faster' backend needs faster-coco-eval (pip install faster-coco-eval); "
                              "or use 'pycocotools'") from error

        return COCO, COCOeval_faster, {"print_function": logger.debug}
    raise ValueError(f"unknown COCO evaluation backend {backend!r}; choose one of {BACKENDS}")


def _build_coco(coco_cls, dataset: dict[str, Any]):
    with contextlib.redirect_stdout(io.StringIO()) as captured:
        api = coco_cls()
        api.dataset = dataset
        api.createIndex()
    logger.debug(captured.getvalue())
    return api


def run_cocoeval(
    gt_dict: dict[str, Any],
    predictions: Sequence[dict[str, Any]] | np.ndarray,
    backend: str = DEFAULT_BACKEND,
    img_ids: Sequence[int] | None = None,
    max_dets: Sequence[int] = (1, 10, 100),
    lvis_style: bool = False,
):
    """Run COCOeval (evaluate + accumulate) and return the evaluator object (``.eval`` holds the arrays).

    ``predictions`` are result records or a float array [N, 7] of (image_id, x, y, w, h, score, category_id).
    """
    coco_cls, eval_cls, kwargs = _coco_api(backend)
    gt_api = _build_coco(coco_cls, copy.deepcopy(gt_dict) if lvis_style else gt_dict)
    if isinstance(predictions, np.ndarray):
        records = predictions if len(predictions) else []
    else:
        records = [dict(record, bbox=list(record["bbox"])) for record in predictions]
    dt_dataset = {
        "images": gt_dict.get("images", []),
        "categories": copy.deepcopy(gt_dict.get("categories", [])),
        "annotations": [],
    }
    with contextlib.redirect_stdout(io.StringIO()) as captured:
        dt_api = gt_api.loadRes(records) if len(records) else _build_coco(coco_cls, dt_dataset)
        if lvis_style:
            kwargs = dict(kwargs, lvis_style=True)
        evaluator = eval_cls(gt_api, dt_api, "bbox", **kwargs)
        if img_ids is not None:
            evaluator.params.imgIds = sorted(int(i) for i in img_ids)
        evaluator.params.maxDets = list(max_dets)
        evaluator.evaluate()
        evaluator.accumulate()
    logger.debug(captured.getvalue())
    return evaluator


def _mean_valid(values: np.ndarray) -> float | None:
    valid = values[values > -1]
    if valid.size == 0:
        return None
    return float(np.mean(valid)) * 100.0


def summarize_cocoeval(evaluator) -> dict[str, float | None]:
    """The 12 standard COCO numbers (percent) computed from ``evaluator.eval`` (same for both back ends)."""
    params = evaluator.params
    precision = np.asarray(evaluator.eval["precision"])  # [T, R, K, A, M]
    recall = np.asarray(evaluator.eval["recall"])  # [T, K, A, M]
    area = {label: i for i, label in enumerate(params.areaRngLbl)}
    last = len(params.maxDets) - 1
    iou_index = {round(float(t), 2): i for i, t in enumerate(params.iouThrs)}

    def ap(area_label="all", iou=None):
        block = precision[:, :, :, area[area_label], last]
        if iou is not None:
            block = block[iou_index[iou]]
        return _mean_valid(block)

    def ar(area_label="all", det_index=last):
        return _mean_valid(recall[:, :, area[area_label], det_index])

    metrics = {
        "AP": ap(),
        "AP50": ap(iou=0.5),
        "AP75": ap(iou=0.75),
        "APs": ap("small"),
        "APm": ap("medium"),
        "APl": ap("large"),
    }
    for index, max_det in enumerate(params.maxDets):
        metrics[f"AR{max_det}"] = ar(det_index=index)
    metrics.update({"ARs": ar("small"), "ARm": ar("medium"), "ARl": ar("large")})
    return metrics


def per_category_ap(evaluator, gt_dict: dict[str, Any]) -> dict[str, float | None]:
    """AP (IoU 0.50:0.95, all areas, last maxDets) per category, keyed by category name (percent)."""
    names = {category["id"]: category.get("name", str(category["id"])) for category in gt_dict["categories"]}
    precision = np.asarray(evaluator.eval["precision"])
    table = {}
    for k, category_id in enumerate(evaluator.params.catIds):
        key = names.get(category_id, str(category_id))
        if key in table:  # duplicate names: keep both, disambiguated by id
            key = f"{key} (id {category_id})"
        table[key] = _mean_valid(precision[:, :, k, 0, -1])
    return table


def evaluate_coco_bbox(
    gt: GroundTruth,
    predictions: str | Sequence[dict[str, Any]],
    backend: str = DEFAULT_BACKEND,
    per_category: bool = True,
    img_ids: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Score COCO-format box predictions against a COCO-format ground truth.

    Args:
        gt: ground-truth json path, its loaded dict, or a pycocotools-style ``COCO`` object.
        predictions: result records ``{"image_id", "category_id", "bbox" (xywh), "score"}`` or a json path.
        backend: "faster" (faster-coco-eval, the default) or "pycocotools" (reference; identical numbers).
        per_category: also return ``"per_category"``: category name -> AP.
        img_ids: restrict the evaluation to these image ids (default: every ground-truth image, as upstream).

    Returns:
        dict with the 12 COCO numbers (percent, None where undefined), ``"num_predictions"``, ``"backend"``
        and optionally ``"per_category"``.
    """
    _coco_api(backend)  # an unknown back end is refused before any file is read
    gt_dict, ids = load_coco_ground_truth(gt)
    source = os.fspath(predictions) if isinstance(predictions, (str, os.PathLike)) else "predictions"
    if isinstance(predictions, (str, os.PathLike)):
        predictions = read_json(source)
    check_result_records(predictions, ids, source)
    evaluator = run_cocoeval(gt_dict, predictions, backend=backend, img_ids=img_ids)
    metrics: dict[str, Any] = summarize_cocoeval(evaluator)
    metrics["num_predictions"] = len(predictions)
    metrics["backend"] = backend
    if per_category:
        metrics["per_category"] = per_category_ap(evaluator, gt_dict)
    return metrics


def format_per_category_table(per_category: Mapping[str, float | None]) -> str:
    """A two-column text table "category | AP" (upstream writes the same as a csv)."""
    width = max([len("category")] + [len(name) for name in per_category])
    lines = [f"{'category':<{width}} | AP", f"{'-' * width}-|------"]
    for name, value in per_category.items():
        lines.append(f"{name:<{width}} | {'n/a' if value is None else f'{value:.1f}'}")
    return "\n".join(lines)


class CocoEvaluator(DatasetEvaluator):
    """Accumulates BoxLists of a COCO-format detection data set and scores them with COCO AP.

    Args:
        gt: ground truth (json path, dict or COCO object).
        label_to_category_id: contiguous label -> json category id (``dataset.contiguous_category_id_to_json_id``);
            None means labels already are json ids.
        image_info: ``idx -> {"id", "height", "width"}``.
        output_dir: where ``predictions.json`` (COCO results, upstream's bbox.json) and ``metrics.json`` go.
        backend: "faster" (default) or "pycocotools".
    """

    predictions_file = "bbox.json"

    def __init__(
        self,
        gt: GroundTruth,
        label_to_category_id: Mapping[int, int] | None = None,
        image_info: ImageInfo | None = None,
        output_dir: str | None = None,
        backend: str = DEFAULT_BACKEND,
    ):
        _coco_api(backend)  # validate early
        self.gt_dict = load_coco_ground_truth(gt)[0]
        self.label_to_category_id = None if label_to_category_id is None else dict(label_to_category_id)
        self.backend = backend
        super().__init__(image_info=image_info, output_dir=output_dir)

    @classmethod
    def from_dataset(cls, dataset: Any, output_dir: str | None = None, backend: str = DEFAULT_BACKEND):
        """Build from a detection data set exposing ``coco`` (or ``ann_file``), the label map and get_img_info."""
        gt = getattr(dataset, "coco", None) or getattr(dataset, "ann_file", None)
        if gt is None:
            raise TypeError(f"{type(dataset).__name__} exposes neither .coco nor .ann_file")
        label_map = getattr(dataset, "contiguous_category_id_to_json_id", None)
        return cls(gt, label_map, image_info_getter(dataset), output_dir=output_dir, backend=backend)

    def _empty_state(self) -> list[dict[str, Any]]:
        return []

    def _add(self, info, boxes, scores, labels) -> None:
        self._state.extend(coco_records_from_arrays(info["id"], boxes, scores, labels, self.label_to_category_id))

    def update_records(self, records: Sequence[dict[str, Any]]) -> None:
        """Add ready-made COCO result records (json ids, xywh in original pixels)."""
        self._state.extend(dict(record) for record in records)

    def _merge(self, states: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
        return [record for state in states for record in state]

    def _predictions_json(self) -> list[dict[str, Any]]:
        return self._state

    def summarize(self) -> dict[str, Any]:
        """COCO AP; with ``output_dir`` also writes ``metrics.json`` and ``per_category_ap.csv`` (as upstream)."""
        metrics = super().summarize()
        if self.output_dir:
            table = io.StringIO()
            writer = csv.writer(table, lineterminator="\n")
            writer.writerow(["category", "AP"])
            for name, value in metrics["per_category"].items():
                writer.writerow([name, "" if value is None else f"{value:.4f}"])
            atomic_write_text(os.path.join(self.output_dir, "per_category_ap.csv"), table.getvalue())
        return metrics

    def _score(self) -> dict[str, Any]:
        metrics = evaluate_coco_bbox(self.gt_dict, self._state, backend=self.backend)
        logger.info("COCO box AP %.2f (AP50 %s, AP75 %s) from %d predictions, scored with %s", metrics["AP"] or 0.0,
                    metrics["AP50"], metrics["AP75"], len(self._state), backend_label(self.backend))
        logger.info("per-category AP:\n%s", format_per_category_table(metrics["per_category"]))
        return metrics
