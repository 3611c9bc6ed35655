"""Evaluate one checkpoint on a list of task configs (the body of tools/test_grounding_net.py).

Output layout, per data set: ``OUTPUT_DIR/eval/<weight name>/<dataset>/`` with the evaluator's predictions JSON
(COCO-style), ``metrics.json`` and ``metrics.txt``; and ``OUTPUT_DIR/eval/<weight name>/summary.json`` +
``summary.txt`` with every data set's metrics, plus the mean AP over ODinW task configs when there are several.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from typing import Any

import torch

from maskrcnn_benchmark.config import load_config
from maskrcnn_benchmark.config.task_config import prepare_task_config
from maskrcnn_benchmark.engine.inference import primary_metric
from maskrcnn_benchmark.engine.runner import build_model, evaluate_datasets
from maskrcnn_benchmark.engine.weights import load_inference_weights
from maskrcnn_benchmark.utils.atomic_io import atomic_write_text
from maskrcnn_benchmark.utils.distributed import is_main_process, unwrap_model

__all__ = ["evaluate_checkpoint", "weight_name", "is_odinw_task", "infer_eval_task",
           "apply_postprocessing", "summarize_results"]

logger = logging.getLogger(__name__)


def weight_name(weight: str | None) -> str:
    """Folder name for a weight file: its base name without extension ("untrained" for none)."""
    if not weight:
        return "untrained"
    return os.path.splitext(os.path.basename(weight))[0]


def apply_postprocessing(model, cfg) -> None:
    """Rebuild the model's test-time post-processor from a task's ``cfg`` (MODEL.ATSS.*, DYHEAD.SCORE_AGG).

    The keys a task config may change are :data:`maskrcnn_benchmark.config.task_config.POSTPROCESSING_KEYS`.
    """
    from maskrcnn_benchmark.modeling.rpn.inference import build_atss_postprocessor

    core = unwrap_model(model)
    old = core.rpn.post_processor
    core.rpn.post_processor = build_atss_postprocessor(cfg, old.box_coder)


def is_odinw_task(task_path: str) -> bool:
    """A task config from configs/odinw*/ (its AP goes into the ODinW average)."""
    return "odinw" in task_path.replace("\\", "/").lower()


def infer_eval_task(cfg) -> None:
    """Fill an empty TEST.EVAL_TASK: grounding for Flickr/RefCOCO test sets, detection otherwise (logged)."""
    if cfg.TEST.EVAL_TASK:
        return
    names = " ".join(cfg.DATASETS.TEST).lower()
    task = "grounding" if ("flickr" in names or "refcoco" in names or "refexp" in names) else "detection"
    logger.info("TEST.EVAL_TASK is empty: using %r for %s", task, list(cfg.DATASETS.TEST))
    cfg.TEST.EVAL_TASK = task


def summarize_results(results: dict[str, dict[str, Any]], odinw_tasks: Sequence[str]) -> dict[str, Any]:
    """Per-task primary metrics (+ the ODinW mean AP over the ODinW tasks given, when there are >= 2)."""
    summary: dict[str, Any] = {"tasks": {}}
    for task, datasets in results.items():
        summary["tasks"][task] = {name: metrics for name, metrics in datasets.items()}
    odinw_values = []
    for task in odinw_tasks:
        values = [primary_metric(m) for m in results.get(task, {}).values()]
        values = [v for v in values if v is not None]
        if values:
            odinw_values.append(sum(values) / len(values))
    if len(odinw_tasks) >= 2:
        if len(odinw_values) != len(odinw_tasks):
            logger.warning("ODinW average: only %d of %d task(s) produced an AP", len(odinw_values), len(odinw_tasks))
        summary["odinw_average_AP"] = sum(odinw_values) / len(odinw_values) if odinw_values else None
        summary["odinw_num_tasks"] = len(odinw_values)
    return summary


def _summary_table(summary: dict[str, Any]) -> str:
    from maskrcnn_benchmark.data.evaluation.coco import backend_label

    lines = [f"{'task':<60} {'dataset':<32} {'primary metric':<15} scored with", "-" * 124]
    for task, datasets in summary["tasks"].items():
        for name, metrics in datasets.items():
            value = primary_metric(metrics)
            scorer = backend_label(metrics.get("backend") if isinstance(metrics, dict) else None) or "-"
            lines.append(f"{task:<60} {name:<32} {'n/a' if value is None else f'{value:.4f}':<15} {scorer}")
    if "odinw_average_AP" in summary:
        value = summary["odinw_average_AP"]
        lines.append(f"ODinW average AP over {summary['odinw_num_tasks']} data set(s): "
                     f"{'n/a' if value is None else f'{value:.4f}'}")
    return "\n".join(lines)


def _task_cfg(base_cfg, task: str | None, config_file: str | None, opts):
    """Model config + task file + opts (the command line wins); ``task`` None -> the model config."""
    if task is None:
        cfg = base_cfg.clone()
        cfg.defrost()
        return cfg
    if not config_file:
        raise ValueError(f"task config {task} needs the model config file it is merged on")
    return load_config(config_file, opts, task_configs=[task])


def evaluate_checkpoint(base_cfg, weight: str | None, task_configs: Sequence[str], distributed: bool,
                        device: torch.device, config_file: str | None = None, opts=None,
                        allow_untrained: bool = False) -> dict[str, Any]:
    """Build the model from ``base_cfg``, load ``weight``, evaluate every task config (or base DATASETS.TEST).

    Args:
        base_cfg: model config (+ opts); frozen here.
        weight: checkpoint file (None: the random initialisation).
        task_configs: task YAMLs; empty -> evaluate ``base_cfg``'s DATASETS.TEST.
        distributed, device: as for training.
        config_file, opts: what ``base_cfg`` was made of, to rebuild it under each task file.
        allow_untrained: evaluate a ``weight`` file that leaves detector parts untrained (e.g. a coarse-stage
            checkpoint); refused otherwise (see :mod:`maskrcnn_benchmark.engine.weights`).

    Returns:
        the summary dict written to ``summary.json``.
    """
    base_cfg.freeze()
    model = build_model(base_cfg, device)
    load_inference_weights(model, weight, use_ema=bool(base_cfg.TEST.USE_EMA_WEIGHTS), allow_untrained=allow_untrained)
    model.eval()
    output_root = os.path.join(base_cfg.OUTPUT_DIR, "eval", weight_name(weight))
    results: dict[str, dict[str, Any]] = {}
    evaluated: set = set()
    for task in list(task_configs) or [None]:
        name = task or (config_file or "model config")
        cfg = prepare_task_config(base_cfg, _task_cfg(base_cfg, task, config_file, opts), name)
        infer_eval_task(cfg)
        cfg.freeze()
        apply_postprocessing(model, cfg)
        logger.info("task %s: data sets %s", name, list(cfg.DATASETS.TEST))
        root = output_root
        if any(dataset in evaluated for dataset in cfg.DATASETS.TEST):
            # The same data set under another task config (e.g. other post-processing): keep both outputs.
            root = os.path.join(output_root, os.path.splitext(os.path.basename(name))[0])
        evaluated.update(cfg.DATASETS.TEST)
        results[name] = evaluate_datasets(cfg, model, distributed, device, root)
    summary = summarize_results(results, [t for t in task_configs if is_odinw_task(t)])
    if is_main_process():
        atomic_write_text(os.path.join(output_root, "summary.json"), json.dumps(summary, indent=2, default=str))
        table = _summary_table(summary)
        atomic_write_text(os.path.join(output_root, "summary.txt"), table + "\n")
        logger.info("\n%s", table)
    return summary
