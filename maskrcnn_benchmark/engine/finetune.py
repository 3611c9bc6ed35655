"""Fine-tune on a list of task configs (ODinW and custom data sets), optionally few-shot over several seeds.

The body of tools/finetune.py. Per task config and per shuffle seed:

1. config = model config + task file + ``--custom_shot_and_epoch_and_general_copy "S_E_C"``
   (DATASETS.FEW_SHOT=S, SOLVER.MAX_EPOCH=E, DATASETS.GENERAL_COPY=C) + opts (the command line wins), then
   ``SOLVER.TUNING_HIGHLEVEL_OVERRIDE``; the seed goes to DATASETS.SHUFFLE_SEED, which the few-shot
   sampler honours with ``DATASETS.FEW_SHOT_SUBSET seeded`` (the default: a different subset per seed) and
   ignores with ``upstream`` (upstream's one subset for every seed); which one was used is logged per run and
   saved with the results;
2. output folder ``OUTPUT_DIR/ft_task_<i>`` (+ ``_seed_<s>``); a relaunch resumes from its last checkpoint;
3. train (unless ``--skip-train``; S = 10000 copies the initial weights as ``model_best.pth`` instead,
   upstream's zero-shot shortcut), then evaluate: the final model on DATASETS.TEST (unless ``--skip-test``),
   and with ``--evaluate_only_best_on_test`` the best model (``model_best.pth``, else the final one) on the
   registered "test" split (``--push_both_val_and_test`` adds its "val" numbers too).

Results: ``OUTPUT_DIR/finetune_results.json`` and ``finetune_results.txt`` with every run's metrics, each
task's mean over seeds and the mean over tasks.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from maskrcnn_benchmark.config import clean_opts, load_config
from maskrcnn_benchmark.engine.inference import primary_metric
from maskrcnn_benchmark.engine.runner import apply_tuning_mode, evaluate_datasets, resolve_weight_path, train
from maskrcnn_benchmark.engine.weights import load_inference_weights
from maskrcnn_benchmark.utils.atomic_io import atomic_write_text
from maskrcnn_benchmark.utils.distributed import is_main_process, synchronize
from maskrcnn_benchmark.utils.miscellaneous import save_config

__all__ = ["FinetuneOptions", "expand_task_globs", "parse_shot_epoch_copy", "task_config", "few_shot_description",
           "run_finetune"]

logger = logging.getLogger(__name__)

ZERO_SHOT_SHOTS = 10000  # upstream: "shot" 10000 = keep the pre-trained weights, no training


@dataclass
class FinetuneOptions:
    """Command-line switches of tools/finetune.py."""

    skip_train: bool = False
    skip_test: bool = False
    skip_optimizer_resume: bool = False
    evaluate_only_best_on_test: bool = False
    push_both_val_and_test: bool = False
    use_tensorboard: bool = False


def expand_task_globs(spec: str) -> list[str]:
    """Comma-separated paths/globs -> existing files (see :func:`engine.defaults.expand_config_list`)."""
    from maskrcnn_benchmark.engine.defaults import expand_config_list

    tasks = expand_config_list(spec, "--ft-tasks")
    if not tasks:
        raise ValueError("--ft-tasks is empty")
    return tasks


def parse_shot_epoch_copy(value: str | None):
    """"S_E_C" -> (shots, epochs, copies) ints; None -> None."""
    if not value:
        return None
    parts = value.strip().strip('"').split("_")
    if len(parts) != 3 or not all(p.lstrip("-").isdigit() for p in parts):
        raise ValueError(f"--custom_shot_and_epoch_and_general_copy must look like 3_200_4 (shots_epochs_copies), "
                         f"got {value!r}")
    return tuple(int(p) for p in parts)


def task_config(config_file: str, opts, task: str, shot_epoch_copy, seed: int | None, output_dir: str):
    """The config of one fine-tuning run (see the module docstring for the merge order)."""
    overrides = []
    if shot_epoch_copy is not None:
        shots, epochs, copies = shot_epoch_copy
        overrides = ["DATASETS.FEW_SHOT", shots, "SOLVER.MAX_EPOCH", epochs, "DATASETS.GENERAL_COPY", copies]
    # The few-shot triple goes before the command line's opts, which are applied last and win.
    cfg = load_config(config_file, overrides + clean_opts(opts), task_configs=[task])
    apply_tuning_mode(cfg)
    if seed is not None:
        cfg.DATASETS.SHUFFLE_SEED = seed
    cfg.OUTPUT_DIR = output_dir
    return cfg


def few_shot_description(cfg) -> str | None:
    """How the k-shot training subset of ``cfg`` is drawn, in words (None without few-shot training)."""
    shots = int(cfg.DATASETS.FEW_SHOT)
    if shots <= 0 or shots == ZERO_SHOT_SHOTS:
        return None
    subset = cfg.DATASETS.FEW_SHOT_SUBSET
    seed = int(cfg.DATASETS.SHUFFLE_SEED)
    if subset == "upstream":
        return (f"{shots}-shot subset: DATASETS.FEW_SHOT_SUBSET upstream (greedy over sorted image ids, "
                f"SHUFFLE_SEED {seed} ignored: every seed trains on the same images)")
    order = f"order shuffled with SHUFFLE_SEED {seed}" if seed > 0 else "sorted image ids (SHUFFLE_SEED 0)"
    return f"{shots}-shot subset: DATASETS.FEW_SHOT_SUBSET seeded (greedy, {order})"


def _best_weights(output_dir: str) -> str | None:
    for name in ("model_best.pth", "model_final.pth"):
        path = os.path.join(output_dir, name)
        if os.path.isfile(path):
            return path
    return None


def _evaluate_split(cfg, model, split: str, distributed: bool, device, folder: str) -> dict[str, Any] | None:
    if split not in cfg.DATASETS.REGISTER:
        logger.warning("no %r split registered in the task config: skipping its evaluation", split)
        return None
    split_cfg = cfg.clone()
    split_cfg.defrost()
    split_cfg.DATASETS.TEST = (split,)
    split_cfg.freeze()
    return evaluate_datasets(split_cfg, model, distributed, device, folder)


def _evaluate_best(cfg, model, options: FinetuneOptions, distributed: bool, device) -> dict[str, Any]:
    results: dict[str, Any] = {}
    best = _best_weights(cfg.OUTPUT_DIR)
    if best is not None:
        load_inference_weights(model, best, use_ema=bool(cfg.TEST.USE_EMA_WEIGHTS))
    splits = ["test"] + (["val"] if options.push_both_val_and_test else [])
    for split in splits:
        found = _evaluate_split(cfg, model, split, distributed, device,
                                os.path.join(cfg.OUTPUT_DIR, "eval_best", split))
        if found:
            results[f"best_{split}"] = found
    return results


def _run_one(cfg, options: FinetuneOptions, distributed: bool, device) -> dict[str, Any]:
    from maskrcnn_benchmark.engine.runner import build_model

    os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
    if is_main_process():
        save_config(cfg, os.path.join(cfg.OUTPUT_DIR, "config.yaml"))
    zero_shot = int(cfg.DATASETS.FEW_SHOT) == ZERO_SHOT_SHOTS
    if zero_shot or options.skip_train:
        model = build_model(cfg, device)
        weight = resolve_weight_path(cfg.MODEL.WEIGHT) if cfg.MODEL.WEIGHT else ""
        if zero_shot and weight and is_main_process():
            shutil.copyfile(weight, os.path.join(cfg.OUTPUT_DIR, "model_best.pth"))
        synchronize()
        # The start weights are evaluated as they are: a partial (e.g. coarse-stage) file is refused here.
        load_inference_weights(model, _best_weights(cfg.OUTPUT_DIR) or weight or None,
                               use_ema=bool(cfg.TEST.USE_EMA_WEIGHTS))
        summary: dict[str, Any] = {"trained": False}
    else:
        cfg.freeze()
        model, train_summary = train(cfg, distributed, device, use_tensorboard=options.use_tensorboard,
                                     skip_optimizer_resume=options.skip_optimizer_resume)
        summary = {"trained": True, "iterations": train_summary["iteration"],
                   "best_val_metric": train_summary["best_metric"],
                   "train_image_ids": train_summary.get("train_image_ids")}
    summary["few_shot_subset"] = few_shot_description(cfg)
    results: dict[str, Any] = {"summary": summary}
    if not options.skip_test:
        results["final"] = evaluate_datasets(cfg, model, distributed, device, os.path.join(cfg.OUTPUT_DIR, "eval"))
    if options.evaluate_only_best_on_test or options.push_both_val_and_test:
        results.update(_evaluate_best(cfg, model, options, distributed, device))
    return results


def _headline(results: dict[str, Any]) -> float | None:
    """The number a run is summarised by: best model on test if measured, else the final evaluation."""
    for key in ("best_test", "final", "best_val"):
        if key in results:
            values = [primary_metric(m) for m in results[key].values()]
            values = [v for v in values if v is not None]
            if values:
                return sum(values) / len(values)
    return None


def _scorer_notes(results: dict[str, Any]) -> list[str]:
    """"metrics scored with <package>" for every evaluation back end that produced a number of one run."""
    from maskrcnn_benchmark.data.evaluation.coco import backend_label

    found = []
    for key in ("best_test", "final", "best_val"):
        for metrics in results.get(key, {}).values():
            label = backend_label(metrics.get("backend")) if isinstance(metrics, dict) else None
            if label and f"metrics scored with {label}" not in found:
                found.append(f"metrics scored with {label}")
    return found


def _results_table(table: dict[str, dict[str, float | None]], task_means: dict[str, float | None],
                   overall: float | None, notes: Sequence[str] = ()) -> str:
    fmt = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731
    lines = [f"{'task':<70} {'run':<14} metric", "-" * 95]
    for task, runs in table.items():
        for run, value in runs.items():
            lines.append(f"{task:<70} {run:<14} {fmt(value)}")
        lines.append(f"{task:<70} {'mean':<14} {fmt(task_means[task])}")
    lines.append(f"{'average over tasks':<70} {'':<14} {fmt(overall)}")
    lines += list(notes)
    return "\n".join(lines)


def run_finetune(config_file: str, opts: Sequence[str], tasks: list[str], shot_epoch_copy, seeds: list[int | None],
                 output_root: str, options: FinetuneOptions, distributed: bool, device: torch.device) -> dict[str, Any]:
    """Fine-tune and evaluate every (task, seed); returns and writes the results (see module docstring)."""
    all_results: dict[str, dict[str, Any]] = {}
    table: dict[str, dict[str, float | None]] = {}
    notes: list[str] = []  # how the few-shot subsets were drawn, once each
    for index, task in enumerate(tasks):
        for seed in seeds:
            folder = os.path.join(output_root, f"ft_task_{index + 1}" + (f"_seed_{seed}" if seed is not None else ""))
            cfg = task_config(config_file, opts, task, shot_epoch_copy, seed, folder)
            run = f"seed {seed}" if seed is not None else "default"
            logger.info("fine-tuning task %d/%d %s (%s) into %s", index + 1, len(tasks), task, run, folder)
            described = few_shot_description(cfg)
            if described:
                logger.info("%s", described)
                note = f"few-shot training subsets: DATASETS.FEW_SHOT_SUBSET {cfg.DATASETS.FEW_SHOT_SUBSET}"
                if note not in notes:
                    notes.append(note)
            results = _run_one(cfg, options, distributed, device)
            for note in _scorer_notes(results):
                if note not in notes:
                    notes.append(note)
            all_results.setdefault(task, {})[run] = results
            table.setdefault(task, {})[run] = _headline(results)
    task_means = {}
    for task, runs in table.items():
        values = [v for v in runs.values() if v is not None]
        task_means[task] = sum(values) / len(values) if values else None
    measured = [v for v in task_means.values() if v is not None]
    overall = sum(measured) / len(measured) if measured else None
    output = {"runs": all_results, "per_task": table, "task_means": task_means, "average": overall}
    if is_main_process():
        os.makedirs(output_root, exist_ok=True)
        atomic_write_text(os.path.join(output_root, "finetune_results.json"), json.dumps(output, indent=2, default=str))
        text = _results_table(table, task_means, overall, notes)
        atomic_write_text(os.path.join(output_root, "finetune_results.txt"), text + "\n")
        logger.info("fine-tuning results:\n%s", text)
    output["table"] = _results_table(table, task_means, overall, notes)
    return output
