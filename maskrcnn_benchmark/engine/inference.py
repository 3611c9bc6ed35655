"""The evaluation loop: prompts, batched forward passes, chunked class lists, evaluators, outputs.

Upstream file: maskrcnn_benchmark/engine/inference.py (``inference``). What differs, on purpose:

* batches of any size in both modes: a detection prompt is shared by the whole batch; in grounding mode each
  image keeps its own caption and phrase map (upstream asserts one image per GPU);
* class lists come from the prompt builder (``data/prompts.py``): LVIS-size lists are chunked
  (``TEST.CHUNKED_EVALUATION``), every label a global id, nothing truncated; the model runs the chunks
  (``GeneralizedVLRCNN.detect_prompts``: the image prefix once per batch, each chunk's text prefix once per
  run, ``TEST.CHUNK_BATCH`` chunks per pass, ``TEST.PRECISION``);
* the evaluator accumulates in a background thread while the model computes the next batch;
* results go to the evaluators of ``data/evaluation`` (COCO AP, LVIS Fixed AP, Flickr30k R@k, RefExp
  accuracy), gathered from every process; predictions are written as COCO-style JSON; metrics as JSON and a
  readable table.

Entry points: :func:`inference` (one data loader) and :func:`primary_metric` (the number validation tracks).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch

from maskrcnn_benchmark.utils.atomic_io import atomic_write_text
from maskrcnn_benchmark.utils.distributed import (
    broadcast_object,
    get_world_size,
    is_main_process,
    synchronize,
    unwrap_model,
)

__all__ = ["inference", "primary_metric", "format_metrics_table", "GroundingQuery", "grounding_queries", "RunOptions"]

logger = logging.getLogger(__name__)

# Metric names, in order of preference, that model selection / the demo read from an evaluator's result.
PRIMARY_METRIC_KEYS = ("AP", "Recall@1", "R@1", "accuracy", "Precision@1", "P@1")


def primary_metric(metrics: Mapping[str, Any] | None) -> float | None:
    """The number that validation tracks (higher is better): COCO/LVIS AP, Flickr R@1, RefExp accuracy.

    Looks at the top level first, then one level down (e.g. ``{"bbox": {"AP": ..}}`` or per-split dicts, whose
    values are averaged). Returns None when no known metric is present.
    """
    if not metrics:
        return None
    for key in PRIMARY_METRIC_KEYS:
        value = metrics.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    found = []
    for value in metrics.values():
        if isinstance(value, Mapping):
            inner = primary_metric(value)
            if inner is not None:
                found.append(inner)
    return sum(found) / len(found) if found else None


def format_metrics_table(metrics: Mapping[str, Any], title: str = "") -> str:
    """Scalar metrics as an aligned two-column text table (nested dicts flattened with "/")."""
    rows = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for key, inner in value.items():
                walk(f"{prefix}/{key}" if prefix else str(key), inner)
        elif isinstance(value, (int, float)) or value is None:
            text = "n/a" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)
            rows.append((prefix, text))

    walk("", metrics)
    width = max([len("metric")] + [len(name) for name, _ in rows])
    lines = ([title] if title else []) + [f"{'metric':<{width}}  value", f"{'-' * width}  -----"]
    lines += [f"{name:<{width}}  {value}" for name, value in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# grounding queries
# ---------------------------------------------------------------------------------------------------------
@dataclass
class GroundingQuery:
    """The prompt of one grounding image: its caption and label -> token indices (label = phrase row + 1)."""

    caption: str
    token_map: dict[int, list[int]]


def _rows_to_token_map(rows: torch.Tensor) -> dict[int, list[int]]:
    rows = torch.as_tensor(rows)
    if rows.dim() != 2:
        raise ValueError(f"a grounding positive map must be [phrases, tokens], got shape {tuple(rows.shape)}")
    # UPSTREAM-QUIRK: 1.18 - phrase row i is scored as label i + 1 ("plus=1" for the VLDYHEAD head).
    return {row + 1: torch.nonzero(rows[row] > 0).flatten().tolist() for row in range(rows.shape[0])}


def grounding_queries(targets: Sequence[Any], positive_map_eval: Sequence[Any] | None) -> list[GroundingQuery]:
    """Caption + phrase map of every image of a grounding batch.

    The map comes from the collated ``positive_map_eval`` (one ``[P, L]`` tensor per image, Flickr: one row per
    phrase) or, when absent, from the target's "positive_map_eval" / "positive_map" field (RefCOCO: one row per
    box).

    Raises:
        ValueError: an image has no caption or no positive map (the message names its position).
    """
    queries = []
    for index, target in enumerate(targets):
        if not target.has_field("caption"):
            raise ValueError(f"grounding evaluation: image {index} of the batch has no 'caption' field")
        rows = None
        if positive_map_eval is not None and index < len(positive_map_eval):
            rows = positive_map_eval[index]
        if rows is None:
            for name in ("positive_map_eval", "positive_map"):
                if target.has_field(name):
                    rows = target.get_field(name)
                    break
        if rows is None:
            raise ValueError(f"grounding evaluation: image {index} of the batch has no positive map")
        queries.append(GroundingQuery(target.get_field("caption"), _rows_to_token_map(rows)))
    return queries


# ---------------------------------------------------------------------------------------------------------
# forward passes
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunOptions:
    """How the model runs the prompts (``TEST.REUSE_IMAGE_PREFIX``, ``TEST.CHUNK_BATCH``, ``TEST.PRECISION``)."""

    reuse_prefix: bool = True
    chunk_batch: int = 0
    precision: str = "fp32"

    @classmethod
    def from_cfg(cls, cfg) -> RunOptions:
        test = cfg.TEST
        return cls(bool(getattr(test, "REUSE_IMAGE_PREFIX", True)), int(getattr(test, "CHUNK_BATCH", 0)),
                   str(getattr(test, "PRECISION", "fp32")))


def _forward_detection(model, images, plans, options: RunOptions) -> list[Any]:
    """Every prompt chunk on the batch, merged per image with global labels (``detect_prompts``)."""
    return model.detect_prompts(images, plans, reuse_prefix=options.reuse_prefix, chunk_batch=options.chunk_batch,
                                precision=options.precision)


def _forward_grounding(model, images, queries: Sequence[GroundingQuery], options: RunOptions) -> list[Any]:
    """Each image with its own caption and map; images sharing (caption, map) run together (one full pass:
    a caption seen once gains nothing from the cached prefixes)."""
    outputs: list[Any] = [None] * len(queries)
    groups: dict[Any, list[int]] = {}
    for index, query in enumerate(queries):
        key = (query.caption, tuple((label, tuple(tokens)) for label, tokens in sorted(query.token_map.items())))
        groups.setdefault(key, []).append(index)
    for indices in groups.values():
        query = queries[indices[0]]
        if len(indices) == len(queries):
            batch = images
        else:
            from maskrcnn_benchmark.structures.image_list import ImageList

            batch = ImageList(images.tensors[indices], [images.image_sizes[i] for i in indices])
        results = model.detect_prompts(batch, [query], reuse_prefix=False, precision=options.precision)
        for index, boxlist in zip(indices, results):
            outputs[index] = boxlist
    return outputs


class _EvaluatorFeeder:
    """Feeds the evaluator from a background thread, so that it accumulates while the model computes the
    next batch (the model's kernels release the GIL). Updates keep their order; an evaluator error is raised
    again in the loop."""

    def __init__(self, evaluator):
        self.evaluator = evaluator
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evaluator")
        self.pending: list[Future] = []

    def put(self, image_ids: list[Any], outputs: list[Any]) -> None:
        for future in self.pending:
            if future.done():
                future.result()  # an evaluator error surfaces at the next batch
        self.pending = [f for f in self.pending if not f.done()]
        self.pending.append(self.pool.submit(self.evaluator.update, image_ids, outputs))

    def close(self) -> None:
        try:
            for future in self.pending:
                future.result()
        finally:
            self.pool.shutdown(wait=True)


# ---------------------------------------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------------------------------------
def _build_evaluator(cfg, dataset, dataset_name: str, output_folder: str | None):
    from maskrcnn_benchmark.data import evaluation

    return evaluation.build_evaluator(cfg, dataset, output_folder, dataset_name=dataset_name)


def _tokenizer_for(model, cfg):
    core = unwrap_model(model)
    tokenizer = getattr(core, "tokenizer", None)
    if tokenizer is not None:
        return tokenizer
    from maskrcnn_benchmark.modeling.language_backbone.tokenizer import build_tokenizer

    return build_tokenizer(cfg.MODEL.LANGUAGE_BACKBONE.TOKENIZER_TYPE)


def _detection_plans(cfg, dataset, model):
    from maskrcnn_benchmark.data.prompts import describe_plans, prompt_plans_from_cfg

    if not hasattr(dataset, "categories"):
        raise TypeError(f"TEST.EVAL_TASK detection needs a data set with categories(); "
                        f"{type(dataset).__name__} has none")
    plans = prompt_plans_from_cfg(cfg, dataset.categories(), _tokenizer_for(model, cfg))
    logger.info("detection prompts:\n%s", describe_plans(plans) if len(plans) <= 3 else
                f"{len(plans)} prompt chunks for {sum(len(p.labels) for p in plans)} classes")
    return plans


def _eval_task(cfg) -> str:
    task = str(cfg.TEST.EVAL_TASK)
    if task not in ("detection", "grounding"):
        raise ValueError(f"TEST.EVAL_TASK must be 'detection' or 'grounding' for this model, got {task!r}")
    return task


def _run_batches(model, data_loader, device, task, plans, evaluator, subset: int, options: RunOptions) -> int:
    from tqdm import tqdm

    if task == "detection" and len(plans) > 1:
        logger.info("%d prompt chunks: %s", len(plans),
                    f"the image prefix runs once per batch, the pre-fusion text layers once per chunk, "
                    f"chunk batch {options.chunk_batch or 'from free memory'}" if options.reuse_prefix
                    else "one full forward pass per chunk (TEST.REUSE_IMAGE_PREFIX False)")
    count = 0
    bar = tqdm(total=len(data_loader), desc="inference", disable=not is_main_process(), mininterval=1.0,
               dynamic_ncols=True)
    feeder = _EvaluatorFeeder(evaluator)
    try:
        for batch_index, batch in enumerate(data_loader):
            if 0 < subset <= batch_index:
                break
            images, targets, image_ids = batch[0], batch[1], batch[2]
            positive_map_eval = batch[4] if len(batch) > 4 else None
            images = images.to(device, non_blocking=True)
            if task == "detection":
                outputs = _forward_detection(model, images, plans, options)
            else:
                queries = grounding_queries(targets, positive_map_eval)
                outputs = _forward_grounding(model, images, queries, options)
            feeder.put(list(image_ids), [output.to("cpu") for output in outputs])
            count += len(image_ids)
            bar.update(1)
    finally:
        bar.close()
        feeder.close()
    return count


def inference(
    model,
    data_loader,
    dataset_name: str,
    device="cuda",
    output_folder: str | None = None,
    cfg=None,
    evaluator=None,
) -> dict[str, Any]:
    """Evaluate ``model`` on one test data loader.

    Args:
        model: the detector (maybe DDP-wrapped); put in eval mode here.
        data_loader: test loader yielding ``(images, targets, ids, positive_map, positive_map_eval)``.
        dataset_name: name in DATASETS.TEST (chooses the evaluator, names the outputs).
        device: where images go.
        output_folder: where the evaluator writes predictions (COCO-style JSON), ``metrics.json`` and
            ``metrics.txt``; None writes nothing.
        cfg: the task config (TEST.EVAL_TASK, TEST.SUBSET, prompt options, MAX_QUERY_LEN ...).
        evaluator: an evaluator object (``update``/``evaluate``); default built by
            ``data.evaluation.build_evaluator``.

    Returns:
        the metrics dict (the same on every rank).
    """
    if cfg is None:
        raise TypeError("inference needs the task config (cfg=...)")
    task = _eval_task(cfg)
    dataset = data_loader.dataset
    model.eval()
    model = unwrap_model(model)  # DDP: evaluation needs no gradient sync
    if output_folder and is_main_process():
        os.makedirs(output_folder, exist_ok=True)
    plans = _detection_plans(cfg, dataset, model) if task == "detection" else None
    if evaluator is None:
        evaluator = _build_evaluator(cfg, dataset, dataset_name, output_folder)
    logger.info("evaluating %s (%d images, task %s, %d process(es))", dataset_name, len(dataset), task,
                get_world_size())
    start = time.time()
    count = _run_batches(model, data_loader, torch.device(device), task, plans, evaluator, int(cfg.TEST.SUBSET),
                         RunOptions.from_cfg(cfg))
    seconds = time.time() - start
    logger.info("inference on %s: %d images in %.1f s (%.3f s/image per process)", dataset_name, count, seconds,
                seconds / max(count, 1))
    synchronize()
    metrics = evaluator.evaluate()
    metrics = broadcast_object(metrics)
    if output_folder and is_main_process():
        table = format_metrics_table(_scalars(metrics), title=_table_title(dataset_name, task, metrics))
        atomic_write_text(os.path.join(output_folder, "metrics.txt"), table + "\n")
        logger.info("\n%s", table)
    return metrics


def _table_title(dataset_name: str, task: str, metrics: Mapping[str, Any]) -> str:
    """``"<data set> (<task>)"``, plus the evaluation back end that produced the numbers when there is one."""
    from maskrcnn_benchmark.data.evaluation.coco import backend_label

    label = backend_label(metrics.get("backend"))
    return f"{dataset_name} ({task}" + (f"; scored with {label})" if label else ")")


def _scalars(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Drop long per-category tables from the printed summary (they stay in metrics.json)."""
    return {key: value for key, value in metrics.items() if key not in ("per_category", "per_phrase_type_details")}
