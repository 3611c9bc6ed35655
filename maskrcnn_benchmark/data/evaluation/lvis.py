"""LVIS box AP: the Fixed AP protocol of MDETR/GLIP/FIBER (and the standard 300-per-image protocol).

Fixed AP (upstream-facts.md section 7, "LVIS", used for every published FIBER LVIS number): predictions are
resized to the original image, converted to ``[x, y, w, h]`` WITHOUT the +1 pixel width, bucketed per
category, and each category keeps its ``topk`` (10,000) highest-scoring boxes over the whole data set
(merged across updates, prompt chunks and processes); LVISEval then runs with no per-image cap
(``max_dets = -1``). With ``MODEL.ATSS.DETECTIONS_PER_IMG 300`` each chunk contributes at most 300 boxes per
image. The standard protocol (``fixed_ap=False``, upstream's DATASETS.LVIS_USE_NORMAL_AP) keeps the top 300
per image and nothing per category.

Back ends: faster-coco-eval's LVIS mode (``lvis_style=True``, the default) and the ``lvis`` package (the
reference, ``TEST.LVIS_EVAL_BACKEND lvis``; its ``accumulate`` uses ``np.float``, removed in numpy 2, so it runs
inside :func:`numpy_float_alias`, which defines ``np.float = float`` only while LVISEval runs and only when numpy
lacks it). They agree to within 1e-4 on every LVIS case of the suite (tested).
Metrics are in percent: AP, AP50, AP75, APs, APm, APl, APr, APc, APf, AR.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from .base import DatasetEvaluator, ImageInfo, image_info_getter, read_json
from .coco import _load_gt_dict, _mean_valid, backend_label, coco_result_record, gt_source, run_cocoeval
from .records import (
    GroundTruthIds,
    check_ground_truth,
    check_result_records,
    check_result_rows,
    with_annotation_defaults,
)

__all__ = [
    "LVIS_METRIC_NAMES",
    "LVIS_BACKENDS",
    "DEFAULT_LVIS_BACKEND",
    "numpy_float_alias",
    "evaluate_lvis",
    "load_lvis_ground_truth",
    "keep_topk_per_category",
    "records_to_rows",
    "rows_to_records",
    "LvisEvaluator",
]

logger = logging.getLogger(__name__)

LVIS_METRIC_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf", "AR")
FIXED_AP_TOPK = 10000
NORMAL_AP_MAX_DETS = 300
LVIS_BACKENDS = ("lvis", "faster")
DEFAULT_LVIS_BACKEND = "faster"  # faster-coco-eval's LVIS mode; "lvis" is the reference


@contextlib.contextmanager
def numpy_float_alias() -> Iterator[None]:
    """Temporarily give numpy the ``np.float`` alias that lvis 0.5.3 needs (removed in numpy 1.24/2.x).

    Nothing changes when numpy still has the alias; otherwise it is added on entry and removed on exit, so
    the rest of the program keeps numpy's real behaviour.
    """
    added = "float" not in np.__dict__
    if added:
        np.float = float  # type: ignore[attr-defined]
    try:
        yield
    finally:
        if added:
            del np.float  # type: ignore[attr-defined]


def records_to_rows(records: Sequence[dict[str, Any]]) -> np.ndarray:
    """Result records -> float64 [N, 7] rows (image_id, x, y, w, h, score, category_id)."""
    rows = np.zeros((len(records), 7), dtype=np.float64)
    for i, record in enumerate(records):
        rows[i, 0] = record["image_id"]
        rows[i, 1:5] = record["bbox"]
        rows[i, 5] = record["score"]
        rows[i, 6] = record["category_id"]
    return rows


def rows_to_records(rows: np.ndarray) -> list[dict[str, Any]]:
    """Inverse of :func:`records_to_rows`."""
    return [coco_result_record(int(row[0]), int(row[6]), row[1:5], row[5]) for row in rows]


def _top_rows(rows: np.ndarray, column: int, limit: int) -> np.ndarray:
    """For every distinct value of ``rows[:, column]``, its ``limit`` highest-scoring rows.

    Rows are grouped by that value (ascending) and, inside a group, ordered by decreasing score (stable).
    """
    if len(rows) == 0:
        return rows.reshape(0, 7)
    order = np.lexsort((-rows[:, 5], rows[:, column]))  # by group, then score descending, stable
    rows = rows[order]
    group = rows[:, column]
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    rank = np.arange(len(rows)) - np.repeat(starts, np.diff(np.r_[starts, len(rows)]))
    return rows[rank < limit]


def keep_topk_per_category(records: Sequence[dict[str, Any]], topk: int) -> list[dict[str, Any]]:
    """Keep, for every category, its ``topk`` highest-scoring records (ties keep their input order)."""
    return rows_to_records(_top_rows(records_to_rows(records), 6, topk))


def _lvis_backend(gt_dict, rows: np.ndarray, max_dets: int) -> dict[str, float | None]:
    try:
        from lvis import LVIS, LVISEval, LVISResults
    except ImportError as error:
        raise ImportError("the 'lvis' LVIS backend needs the lvis package (pip install lvis); "
                          "or use backend 'faster' (TEST.LVIS_EVAL_BACKEND faster)") from error

    gt_api = LVIS.__new__(LVIS)  # the constructor only accepts a path; build from the loaded dict instead
    gt_api.logger = logging.getLogger("lvis.lvis")
    gt_api.dataset = gt_dict
    gt_api._create_index()
    results_logger = logging.getLogger("lvis.results")
    level = results_logger.level
    results_logger.setLevel(logging.ERROR)  # it warns "Assuming user provided the results in correct format"
    try:
        with warnings.catch_warnings():  # ... through the deprecated Logger.warn
            warnings.simplefilter("ignore", DeprecationWarning)
            # the per-image cap (standard protocol) was applied by the caller, so LVISResults caps nothing
            results = LVISResults(gt_api, rows_to_records(rows), max_dets=-1)
    finally:
        results_logger.setLevel(level)
    lvis_eval = LVISEval(gt_api, results, iou_type="bbox")
    lvis_eval.params.max_dets = max_dets
    with numpy_float_alias():
        lvis_eval.run()
    metrics = {}
    for name in LVIS_METRIC_NAMES:
        value = lvis_eval.results[f"AR@{max_dets}" if name == "AR" else name]
        metrics[name] = None if value == -1 else float(value) * 100.0
    return metrics


def _faster_backend(gt_dict, rows: np.ndarray) -> dict[str, float | None]:
    # the per-image cap (if any) is already applied; "no cap" is a cap larger than any image's count
    evaluator = run_cocoeval(gt_dict, rows, backend="faster", max_dets=(max(len(rows), 1),), lvis_style=True)
    precision = np.asarray(evaluator.eval["precision"])[..., 0, -1]  # [T, R, K] at area "all"
    params = evaluator.params
    area = {label: i for i, label in enumerate(params.areaRngLbl)}
    iou_index = {round(float(t), 2): i for i, t in enumerate(params.iouThrs)}
    full = np.asarray(evaluator.eval["precision"])[..., -1]  # [T, R, K, A]
    metrics = {
        "AP": _mean_valid(precision),
        "AP50": _mean_valid(precision[iou_index[0.5]]),
        "AP75": _mean_valid(precision[iou_index[0.75]]),
        "APs": _mean_valid(full[..., area["small"]]),
        "APm": _mean_valid(full[..., area["medium"]]),
        "APl": _mean_valid(full[..., area["large"]]),
    }
    for name, group in zip(("APr", "APc", "APf"), evaluator.freq_groups):
        metrics[name] = _mean_valid(precision[:, :, group]) if group else None
    metrics["AR"] = _mean_valid(np.asarray(evaluator.eval["recall"])[:, :, 0, -1])
    return metrics


def load_lvis_ground_truth(gt: str | dict[str, Any] | Any) -> tuple[dict[str, Any], GroundTruthIds]:
    """A checked LVIS ground truth and its ids.

    On top of the COCO-format checks: every category has a "frequency" of "r", "c" or "f", every image lists
    its "neg_category_ids" and "not_exhaustive_category_ids" (known category ids). Annotations without
    "id" / "area" get a new id / w * h (in a copy).

    Raises:
        ValueError: naming the file and the first bad record (a COCO file is "not an LVIS file").
    """
    gt_dict = _load_gt_dict(gt)
    source = gt_source(gt)
    ids = check_ground_truth(gt_dict, source)
    for category in gt_dict["categories"]:
        if "frequency" not in category:
            raise ValueError(f"{source}: category {category.get('id')} has no 'frequency' (r/c/f); not an LVIS file")
        if category["frequency"] not in ("r", "c", "f"):
            raise ValueError(f"{source}: category {category['id']} has frequency {category['frequency']!r} "
                             f"(needs 'r', 'c' or 'f')")
    for image in gt_dict["images"]:
        for key in ("neg_category_ids", "not_exhaustive_category_ids"):
            if key not in image:
                raise ValueError(f"{source}: image {image.get('id')} has no {key!r}; not an LVIS file")
            listed = image[key]
            if not isinstance(listed, list) or not all(_is_known(c, ids.category_ids) for c in listed):
                raise ValueError(f"{source}: image {image['id']} has {key} {listed!r} (needs a list of known "
                                 f"category ids)")
    return with_annotation_defaults(gt_dict, crowd=False), ids


def _is_known(value: Any, known: frozenset) -> bool:
    try:
        return value in known
    except TypeError:  # unhashable
        return False


def evaluate_lvis(
    gt: str | dict[str, Any] | Any,
    predictions: str | Sequence[dict[str, Any]] | np.ndarray,
    backend: str = DEFAULT_LVIS_BACKEND,
    fixed_ap: bool = True,
    topk: int = FIXED_AP_TOPK,
) -> dict[str, Any]:
    """Score LVIS box predictions.

    Args:
        gt: LVIS v1 json path (or its dict / an LVIS api object).
        predictions: records ``{"image_id", "category_id", "bbox" (xywh, no +1), "score"}``, a json path to
            them, or a float array [N, 7] of (image_id, x, y, w, h, score, category_id).
        backend: "faster" (faster-coco-eval LVIS mode, the default) or "lvis" (the lvis package, reference).
        fixed_ap: Fixed AP (top ``topk`` per category, no per-image cap) if True, else the standard protocol
            (top 300 per image).
        topk: per-category budget of the Fixed AP protocol.

    Returns:
        dict of LVIS_METRIC_NAMES (percent; None where undefined) plus "num_predictions", "backend", "protocol".
    """
    if backend not in LVIS_BACKENDS:
        raise ValueError(f"unknown LVIS evaluation backend {backend!r}; choose one of {LVIS_BACKENDS}")
    gt_dict, ids = load_lvis_ground_truth(gt)
    pred_source = os.fspath(predictions) if isinstance(predictions, (str, os.PathLike)) else "predictions"
    if isinstance(predictions, (str, os.PathLike)):
        predictions = read_json(pred_source)
    if isinstance(predictions, np.ndarray):
        rows = np.asarray(predictions, dtype=np.float64).reshape(-1, 7)
        check_result_rows(rows, ids, pred_source)
    else:
        check_result_records(predictions, ids, pred_source)
        rows = records_to_rows(predictions)
    if fixed_ap:
        rows = _top_rows(rows, 6, topk)
        max_dets = -1
    else:
        rows = _top_rows(rows, 0, NORMAL_AP_MAX_DETS)
        max_dets = NORMAL_AP_MAX_DETS
    if len(rows) == 0:
        logger.warning("%s: no predictions; every LVIS metric is 0", pred_source)
        metrics: dict[str, Any] = {name: 0.0 for name in LVIS_METRIC_NAMES}
    elif backend == "lvis":
        metrics = _lvis_backend(copy.deepcopy(gt_dict), rows, max_dets)
    else:
        metrics = _faster_backend(gt_dict, rows)
    metrics["num_predictions"] = int(len(rows))
    metrics["backend"] = backend
    metrics["protocol"] = f"fixed_ap_top{topk}_per_category" if fixed_ap else f"top{NORMAL_AP_MAX_DETS}_per_image"
    return metrics


class LvisEvaluator(DatasetEvaluator):
    """Accumulates BoxLists for an LVIS data set; labels are LVIS category ids (1..1203, not remapped).

    In Fixed AP mode the per-category top-k is applied as predictions arrive (bounded memory), again when
    states of several processes are merged, and once more before scoring, so chunked evaluation (one
    ``update`` per prompt chunk, or one per batch with all chunks) gives the same result.

    Args:
        gt: LVIS json path, dict or api object.
        image_info: ``idx -> {"id", "height", "width"}``.
        output_dir: where ``predictions.json`` and ``metrics.json`` go.
        fixed_ap: Fixed AP (default, as published) or the standard 300-per-image protocol.
        topk: per-category budget (10,000).
        backend: "faster" (default) or "lvis".
    """

    def __init__(
        self,
        gt: str | dict[str, Any] | Any,
        image_info: ImageInfo | None = None,
        output_dir: str | None = None,
        fixed_ap: bool = True,
        topk: int = FIXED_AP_TOPK,
        backend: str = DEFAULT_LVIS_BACKEND,
    ):
        if backend not in LVIS_BACKENDS:
            raise ValueError(f"unknown LVIS evaluation backend {backend!r}; choose one of {LVIS_BACKENDS}")
        self.gt_dict = load_lvis_ground_truth(gt)[0]
        self.fixed_ap = fixed_ap
        self.topk = topk
        self.backend = backend
        super().__init__(image_info=image_info, output_dir=output_dir)

    @classmethod
    def from_dataset(cls, dataset: Any, output_dir: str | None = None, **kwargs):
        """Build from an LVIS data set exposing ``lvis`` / ``coco`` (api with ``.dataset``) or ``ann_file``."""
        gt = getattr(dataset, "lvis", None) or getattr(dataset, "coco", None) or getattr(dataset, "ann_file", None)
        if gt is None:
            raise TypeError(f"{type(dataset).__name__} exposes none of .lvis, .coco, .ann_file")
        return cls(gt, image_info_getter(dataset), output_dir=output_dir, **kwargs)

    def _empty_state(self) -> dict[int, list[np.ndarray]]:
        return {}  # category id -> list of float64 [n, 7] row blocks

    def _add(self, info, boxes, scores, labels) -> None:
        rows = np.zeros((len(boxes), 7), dtype=np.float64)
        rows[:, 0] = int(info["id"])
        rows[:, 1:3] = boxes[:, :2]
        # xywh WITHOUT +1 (MDETR's LVIS conversion); a degenerate box gets width 0, never a negative one
        rows[:, 3:5] = np.maximum(boxes[:, 2:] - boxes[:, :2], 0.0)
        rows[:, 5] = scores
        rows[:, 6] = labels
        self._add_rows(rows)

    def update_records(self, records: Sequence[dict[str, Any]]) -> None:
        """Add ready-made LVIS result records (xywh without +1, original pixels)."""
        self._add_rows(records_to_rows(records))

    def _add_rows(self, rows: np.ndarray) -> None:
        for category_id in np.unique(rows[:, 6]).astype(np.int64).tolist():
            blocks = self._state.setdefault(category_id, [])
            blocks.append(rows[rows[:, 6] == category_id])
            if self.fixed_ap and sum(len(b) for b in blocks) > 2 * self.topk:  # amortised trimming
                self._state[category_id] = [_top_rows(np.concatenate(blocks), 6, self.topk)]

    def _merge(self, states: list[dict[int, list[np.ndarray]]]) -> dict[int, list[np.ndarray]]:
        merged: dict[int, list[np.ndarray]] = {}
        for state in states:
            for category_id, blocks in state.items():
                merged.setdefault(category_id, []).extend(blocks)
        if self.fixed_ap:
            merged = {c: [_top_rows(np.concatenate(blocks), 6, self.topk)] for c, blocks in merged.items()}
        return merged

    def rows(self) -> np.ndarray:
        """All kept predictions as [N, 7] rows (after the per-category top-k in Fixed AP mode)."""
        blocks = [block for category_id in sorted(self._state) for block in self._state[category_id]]
        rows = np.concatenate(blocks) if blocks else np.zeros((0, 7))
        return _top_rows(rows, 6, self.topk) if self.fixed_ap else rows

    def records(self) -> list[dict[str, Any]]:
        """All kept predictions as LVIS result records."""
        return rows_to_records(self.rows())

    def _predictions_json(self) -> list[dict[str, Any]]:
        return self.records()

    def _score(self) -> dict[str, Any]:
        metrics = evaluate_lvis(self.gt_dict, self.rows(), backend=self.backend, fixed_ap=self.fixed_ap,
                                topk=self.topk)
        logger.info("LVIS %s: AP %s APr %s APc %s APf %s (scored with %s)", metrics["protocol"], metrics["AP"],
                    metrics["APr"], metrics["APc"], metrics["APf"], backend_label(self.backend))
        return metrics
