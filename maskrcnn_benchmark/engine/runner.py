"""What the tools run: build everything for training and call ``do_train``; evaluate on test sets / task files.

``train(cfg, ...)`` is upstream train_net's ``train()`` with the order fixed so resume is exact: build the model,
optimizer, scheduler, EMA and checkpointer, load (or resume) the weights, THEN build the training loader at the
resumed iteration. ``evaluate_datasets(cfg, model, ...)`` runs :func:`inference` on every ``DATASETS.TEST`` name.
``TUNING_MODES`` holds the freezing presets of ``SOLVER.TUNING_HIGHLEVEL_OVERRIDE``.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch

from maskrcnn_benchmark.engine.inference import inference, primary_metric
from maskrcnn_benchmark.engine.trainer import TrainSettings, make_grad_scaler, run_training
from maskrcnn_benchmark.utils.distributed import get_rank, get_world_size, is_main_process, unwrap_model

__all__ = [
    "TUNING_MODES",
    "apply_tuning_mode",
    "resolve_weight_path",
    "build_model",
    "train",
    "evaluate_datasets",
    "make_test_loaders",
]

logger = logging.getLogger(__name__)

# SOLVER.TUNING_HIGHLEVEL_OVERRIDE presets (upstream tools/finetune.py): which parts are frozen.
# Keys: BACKBONE.FREEZE (image body), FPN.FREEZE, RPN.FREEZE (head), LINEAR_PROB (only the head's last
# layers train), ADD_LINEAR_LAYER (a tunable offset on the prompt embeddings), LANGUAGE_BACKBONE.FREEZE.
TUNING_MODES: dict[str, dict[str, bool]] = {
    "full": dict(backbone=False, fpn=False, rpn=False, linear_prob=False, linear_layer=False, language=False),
    "linear_prob": dict(backbone=True, fpn=True, rpn=False, linear_prob=True, linear_layer=False, language=True),
    "language_prompt_v1": dict(backbone=True, fpn=True, rpn=True, linear_prob=False, linear_layer=False,
                               language=False),
    "language_prompt_v2": dict(backbone=True, fpn=True, rpn=True, linear_prob=False, linear_layer=True,
                               language=True),
    "language_prompt_v3": dict(backbone=True, fpn=True, rpn=True, linear_prob=True, linear_layer=False,
                               language=False),
    "language_prompt_v4": dict(backbone=True, fpn=True, rpn=True, linear_prob=True, linear_layer=True,
                               language=True),
}


def apply_tuning_mode(cfg) -> None:
    """Apply ``SOLVER.TUNING_HIGHLEVEL_OVERRIDE`` (None/"" = leave the config alone) to a defrosted cfg."""
    mode = cfg.SOLVER.TUNING_HIGHLEVEL_OVERRIDE
    if not mode:
        return
    if mode not in TUNING_MODES:
        raise ValueError(f"SOLVER.TUNING_HIGHLEVEL_OVERRIDE {mode!r} is unknown; choose one of {sorted(TUNING_MODES)}")
    preset = TUNING_MODES[mode]
    cfg.MODEL.BACKBONE.FREEZE = preset["backbone"]
    cfg.MODEL.FPN.FREEZE = preset["fpn"]
    cfg.MODEL.RPN.FREEZE = preset["rpn"]
    cfg.MODEL.LINEAR_PROB = preset["linear_prob"]
    cfg.MODEL.DYHEAD.FUSE_CONFIG.ADD_LINEAR_LAYER = preset["linear_layer"]
    cfg.MODEL.LANGUAGE_BACKBONE.FREEZE = preset["language"]
    if mode == "linear_prob":
        cfg.MODEL.DYHEAD.USE_CHECKPOINT = False
    logger.info("tuning mode %s: %s", mode, preset)


def resolve_weight_path(path: str) -> str:
    """Find a weight file: as given, else through the data-root search of the paths catalog.

    Raises:
        FileNotFoundError: naming the file and where it was looked for.
    """
    if not path:
        return ""
    if os.path.isfile(path):
        return path
    try:
        from maskrcnn_benchmark.config.paths_catalog import try_to_find
    except ImportError:
        try_to_find = None
    if try_to_find is not None:
        try:
            found = try_to_find(path)
        except FileNotFoundError:
            found = None
        if found and os.path.isfile(found):
            return found
    raise FileNotFoundError(f"weight file {path} not found (looked in ./ and the data roots: ./, $DATASET, "
                            "./DATASET, ./OUTPUT, ./data, ./MODEL)")


def build_model(cfg, device: torch.device):
    """``build_detection_model(cfg)`` moved to ``device``."""
    from maskrcnn_benchmark.modeling.detector import build_detection_model

    model = build_detection_model(cfg)
    model.to(device)
    return model


def _wrap_ddp(model, cfg, device):
    if get_world_size() == 1:
        return model
    device_ids = [device.index if device.index is not None else 0] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(
        model, device_ids=device_ids, output_device=device_ids[0] if device_ids else None,
        find_unused_parameters=bool(cfg.SOLVER.FIND_UNUSED_PARAMETERS), broadcast_buffers=False)


def make_test_loaders(cfg, distributed: bool) -> list[tuple[str, Any]]:
    """(name, loader) for every ``DATASETS.TEST`` entry."""
    from maskrcnn_benchmark.data.build import make_data_loader

    loaders = make_data_loader(cfg, is_train=False, is_distributed=distributed)
    names = list(cfg.DATASETS.TEST)
    if len(names) != len(loaders):
        raise ValueError(f"DATASETS.TEST names {len(names)} data sets but {len(loaders)} loaders were built")
    return list(zip(names, loaders))


def _make_validator(cfg, distributed: bool, device):
    if not (cfg.TEST.DURING_TRAINING or cfg.SOLVER.USE_AUTOSTEP):
        return None
    name, loader = make_test_loaders(cfg, distributed)[0]

    def validator(model, iteration: int) -> float | None:
        # Nothing is written per validation (a COCO-size set would leave ~50 MB of predictions each time); the
        # primary metric goes to metrics.jsonl and the log.
        metrics = inference(model, loader, name, device=device, output_folder=None, cfg=cfg)
        value = primary_metric(metrics)
        logger.info("validation on %s at iteration %d: %s", name, iteration,
                    {k: v for k, v in metrics.items() if isinstance(v, (int, float))})
        return value

    return validator


def _train_loader(cfg, distributed: bool, start_iter: int):
    from maskrcnn_benchmark.data.build import make_data_loader

    return make_data_loader(cfg, is_train=True, is_distributed=distributed, start_iter=start_iter)


def train_image_ids(loader) -> list[int] | None:
    """Sorted json image ids of the training set (through copy/concat/seeding wrappers), or None if unknown.

    Logged and returned by :func:`train` so a few-shot run shows which images it trained on.
    """
    found: set = set()
    stack = [getattr(loader, "dataset", None)]
    while stack:
        dataset = stack.pop()
        if dataset is None:
            continue
        if hasattr(dataset, "ids") and not hasattr(dataset, "datasets"):
            found.update(int(i) for i in dataset.ids)
            continue
        stack.extend(getattr(dataset, "datasets", []) or [])
        inner = dataset.__dict__.get("dataset") if hasattr(dataset, "__dict__") else None
        stack.append(inner)
    return sorted(found) if found else None


def _nan_dumper(cfg, model):
    def dump(iteration: int) -> None:
        path = os.path.join(cfg.OUTPUT_DIR, f"nan_debug_{iteration:07d}.pth")
        from maskrcnn_benchmark.utils.atomic_io import atomic_torch_save

        state = unwrap_model(model).state_dict()
        atomic_torch_save({"model": state, "iteration": iteration}, path)
        logger.error("weights at the non-finite loss, gradient or weight saved to %s (not a resume point)", path)

    return dump


def _resume_or_initialise(cfg, model, settings, skip_optimizer_resume: bool, weight: str | None):
    """Optimizer, scheduler, EMA, scaler and checkpointer; resumed from ``last_checkpoint`` or initialised from
    the weight file. Returns the checkpointer, whose ``state`` is the run's :class:`TrainingState`."""
    from maskrcnn_benchmark.solver import make_lr_scheduler, make_model_ema, make_optimizer
    from maskrcnn_benchmark.utils.checkpoint import DetectronCheckpointer

    optimizer = make_optimizer(cfg, model)
    checkpointer = DetectronCheckpointer(cfg, model, optimizer, make_lr_scheduler(cfg, optimizer), cfg.OUTPUT_DIR,
                                         save_to_disk=is_main_process(), ema=make_model_ema(cfg, model),
                                         scaler=make_grad_scaler(settings.amp))
    weight_path = "" if checkpointer.has_checkpoint() else resolve_weight_path(weight or cfg.MODEL.WEIGHT)
    checkpointer.load(weight_path, skip_optimizer=skip_optimizer_resume)
    return checkpointer


def train(cfg, distributed: bool, device: torch.device, use_tensorboard: bool = False,
          skip_optimizer_resume: bool = False, debug_nan_checkpoint: bool = False, weight: str | None = None):
    """Train with ``cfg`` (frozen except for the derived SOLVER.MAX_ITER); returns (model, summary).

    The returned model is the one to evaluate: the EMA copy when ``TEST.USE_EMA_WEIGHTS`` (and EMA is on).

    Args:
        cfg: merged config; MODEL.WEIGHT (or ``weight``) initialises the model unless OUTPUT_DIR holds a
            ``last_checkpoint`` (then training resumes from it).
        distributed: a process group is running.
        device: training device.
        use_tensorboard: write TensorBoard events.
        skip_optimizer_resume: when resuming, keep the fresh optimizer and scheduler (the schedule continues at
            the resumed iteration): for a config change that alters the optimizer's parameter groups.
        debug_nan_checkpoint: save the weights when a non-finite loss, gradient or weight stops training.
        weight: overrides MODEL.WEIGHT.

    Raises:
        NonFiniteError: training turned NaN/inf (nothing non-finite was saved).
        OptimizerMismatchError: resuming with an optimizer whose parameter groups changed.
    """
    model = build_model(cfg, device)
    loader = _train_loader(cfg, distributed, start_iter=0)  # derives SOLVER.MAX_ITER from MAX_EPOCH if set
    settings = TrainSettings.from_config(cfg, device, use_tensorboard=use_tensorboard)
    checkpointer = _resume_or_initialise(cfg, model, settings, skip_optimizer_resume, weight)
    state = checkpointer.state
    if state.progress.iteration > 0:
        loader = _train_loader(cfg, distributed, start_iter=state.progress.iteration)
    image_ids = train_image_ids(loader)
    if image_ids is not None:
        logger.info("training on %d images (ids %s%s)", len(image_ids), image_ids[:20],
                    " ..." if len(image_ids) > 20 else "")
    summary = run_training(_wrap_ddp(model, cfg, device), state, loader, settings, checkpointer=checkpointer,
                           device=device, validator=_make_validator(cfg, distributed, device),
                           on_nan=_nan_dumper(cfg, model) if debug_nan_checkpoint else None)
    summary["train_image_ids"] = image_ids
    from maskrcnn_benchmark.solver import evaluation_model

    return evaluation_model(model, state.ema, bool(cfg.TEST.USE_EMA_WEIGHTS)), summary


def evaluate_datasets(cfg, model, distributed: bool, device: torch.device, output_root: str) -> dict[str, Any]:
    """Run :func:`inference` on every DATASETS.TEST entry; outputs under ``output_root/<dataset>/``.

    Returns:
        dataset name -> metrics dict.
    """
    results: dict[str, Any] = {}
    for name, loader in make_test_loaders(cfg, distributed):
        folder = os.path.join(output_root, name) if output_root else None
        results[name] = inference(model, loader, name, device=device, output_folder=folder, cfg=cfg)
    if get_rank() == 0:
        logger.info("evaluated %d data set(s): %s", len(results),
                    {name: primary_metric(metrics) for name, metrics in results.items()})
    return results
