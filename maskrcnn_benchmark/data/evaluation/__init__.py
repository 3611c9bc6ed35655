"""Evaluators: COCO box AP, LVIS Fixed AP, Flickr30k Entities recall, RefCOCO/+/g accuracy, ODinW averages.

Interface used by the inference loop (engine/inference.py)::

    evaluator = build_evaluator(cfg, dataset, output_dir, dataset_name="coco_2017_val")
    for images, targets, image_ids, *_ in loader:
        predictions = model(images, captions=..., positive_map=...)   # list of BoxList, resized-input coords
        evaluator.update(image_ids, predictions)                      # once per batch, or once per prompt chunk
    evaluator.synchronize()            # all_gather across processes (no-op for one process)
    if is_main_process():
        evaluator.write_predictions()  # <output_dir>/bbox.json (COCO) or predictions.json, written atomically
        metrics = evaluator.summarize()  # dict; also written to <output_dir>/metrics.json

or simply ``metrics = evaluator.evaluate()`` (does the last three steps; {} on ranks other than 0).

Contract:

- ``image_ids`` are dataset indices (the third item of a dataset sample, as ``BatchCollator`` returns them).
  The evaluator calls ``dataset.get_img_info(idx)``, which must return the image's json record with at least
  "id" (json image id), "height" and "width" (original size); boxes are scaled from ``boxlist.size`` back to
  that size as upstream's ``BoxList.resize`` does.
- Each ``BoxList`` carries "scores" and "labels". Labels are: contiguous class ids 1..K for COCO/ODinW (mapped
  through ``dataset.contiguous_category_id_to_json_id``); LVIS category ids for LVIS; phrase index + 1 for
  Flickr30k (one label per phrase of ``positive_map_eval``); anything for RefExp (all boxes compete).
- Calling ``update`` several times for the same image (chunked prompts, TEST.CHUNKED_EVALUATION) adds boxes.
- Metrics are in percent (the unit of the published numbers). COCO-style results have "AP" (used for
  best-model selection), LVIS "AP"/"APr"/"APc"/"APf", Flickr "R@1"/"R@5"/"R@10", RefExp "accuracy".

Which evaluator (:func:`evaluator_kind`, upstream's substring rules on the test set name, first match wins):
"flickr" -> Flickr30k Entities; "lvis" -> LVIS Fixed AP; "refcoco"/"refexp" -> RefExp; anything else -> COCO
box AP (COCO, ODinW and every other COCO-format detection set).

Saved predictions can be re-scored without the model::

    python -m maskrcnn_benchmark.data.evaluation coco --gt instances_val2017.json --predictions bbox.json
"""

from __future__ import annotations

import logging
import os
from typing import Any

from .base import DatasetEvaluator
from .coco import CocoEvaluator, evaluate_coco_bbox
from .flickr import FlickrEvaluator, evaluate_flickr
from .lvis import LvisEvaluator, evaluate_lvis
from .odinw import ODINW_13, ODINW_35, collect_odinw_results, format_odinw_table, odinw_average
from .refexp import RefExpEvaluator, evaluate_refexp

__all__ = [
    "DatasetEvaluator",
    "CocoEvaluator",
    "LvisEvaluator",
    "FlickrEvaluator",
    "RefExpEvaluator",
    "build_evaluator",
    "evaluator_kind",
    "evaluate",
    "evaluate_coco_bbox",
    "evaluate_lvis",
    "evaluate_flickr",
    "evaluate_refexp",
    "odinw_average",
    "collect_odinw_results",
    "format_odinw_table",
    "ODINW_13",
    "ODINW_35",
    "KINDS",
]

logger = logging.getLogger(__name__)

KINDS = ("coco", "lvis", "flickr", "refexp", "odinw")


def evaluator_kind(dataset_name_or_kind: str, dataset: Any = None) -> str:
    """Map a test set name (or a kind) to "coco", "lvis", "flickr" or "refexp" by upstream's substring rules.

    Args:
        dataset_name_or_kind: e.g. "coco_2017_val", "lvis_evaluation_mini_val", "flickr30k_test",
            "refcoco+_testA", "val" (an ODinW registered split), or a kind from KINDS.
        dataset: optional data set object; when the name says nothing, an ``LvisDetection`` class is
            recognised by its class name.
    """
    name = str(dataset_name_or_kind).lower()
    if name in KINDS:
        return "coco" if name == "odinw" else name
    if "flickr" in name:
        return "flickr"
    if "lvis" in name:
        return "lvis"
    if "refcoco" in name or "refexp" in name:
        return "refexp"
    class_name = type(dataset).__name__.lower() if dataset is not None else ""
    if "lvis" in class_name:
        return "lvis"
    if "refexp" in class_name:
        return "refexp"
    if "flickr" in class_name:
        return "flickr"
    return "coco"


def _data_root() -> str:
    return os.environ.get("DATASET", "DATASET")


def flickr_entities_root(cfg: Any) -> str:
    """Folder holding the raw Flickr30k Entities files ({val,test}.txt, Annotations/, Sentences/).

    ``DATASETS.FLICKR_ENTITIES_ROOT`` when set, else upstream's fixed location ``$DATASET/flickr30k/flickr30k``.
    """
    configured = cfg.DATASETS.FLICKR_ENTITIES_ROOT
    if configured:
        return configured
    return os.path.join(_data_root(), "flickr30k", "flickr30k")


def build_evaluator(cfg: Any, dataset: Any, output_dir: str | None, dataset_name: str | None = None
                    ) -> DatasetEvaluator:
    """The evaluator for one test data set.

    Config keys read: TEST.COCO_EVAL_BACKEND ("faster" | "pycocotools"), DATASETS.LVIS_USE_NORMAL_AP
    (False: Fixed AP), TEST.LVIS_EVAL_BACKEND ("faster" | "lvis"), DATASETS.FLICKR_GT_TYPE ("separate" =
    any-box protocol, "merged"), DATASETS.FLICKR_ENTITIES_ROOT.

    Args:
        cfg: the merged config.
        dataset: the test data set (see the module docstring for what it must expose).
        output_dir: folder for predictions and metrics (None: write nothing).
        dataset_name: its DATASETS.TEST name (default ``cfg.DATASETS.TEST[0]``).
    """
    name = dataset_name if dataset_name is not None else cfg.DATASETS.TEST[0]
    kind = evaluator_kind(name, dataset)
    logger.info("evaluating %s with the %s evaluator", name, kind)
    if kind == "lvis":
        return LvisEvaluator.from_dataset(dataset, output_dir, fixed_ap=not cfg.DATASETS.LVIS_USE_NORMAL_AP,
                                          backend=cfg.TEST.LVIS_EVAL_BACKEND)
    if kind == "flickr":
        subset = "test" if "test" in name.lower() else "val"
        return FlickrEvaluator.from_dataset(dataset, flickr_entities_root(cfg), subset=subset, output_dir=output_dir,
                                            merge_boxes=cfg.DATASETS.FLICKR_GT_TYPE == "merged")
    if kind == "refexp":
        return RefExpEvaluator.from_dataset(dataset, output_dir)
    return CocoEvaluator.from_dataset(dataset, output_dir, backend=cfg.TEST.COCO_EVAL_BACKEND)


def evaluate(dataset_name_or_kind: str, gt: Any, predictions: Any, **kwargs: Any) -> dict[str, Any]:
    """Score saved predictions (no model) with the evaluator that ``dataset_name_or_kind`` selects.

    Args:
        dataset_name_or_kind: a kind ("coco", "lvis", "flickr", "refexp") or a test set name.
        gt: ground truth: COCO/LVIS json, the MDETR refexp json, or for Flickr the raw Flickr30k Entities
            folder (``kwargs`` then takes ``subset`` and ``merge_boxes``).
        predictions: the evaluator's predictions file (or the loaded records).
        **kwargs: passed to the scoring function (e.g. ``backend``).
    """
    kind = evaluator_kind(dataset_name_or_kind)
    if kind == "lvis":
        return evaluate_lvis(gt, predictions, **kwargs)
    if kind == "flickr":
        return evaluate_flickr(gt, predictions, **kwargs)
    if kind == "refexp":
        return evaluate_refexp(gt, predictions, **kwargs)
    return evaluate_coco_bbox(gt, predictions, **kwargs)
