"""Optimizer, LR scheduler, EMA and gradient clipping from the config (upstream ``solver/build.py``).

Parameter groups follow upstream (upstream-facts.md 3.4), rule by rule, for every trainable parameter name:

1. lr = ``BASE_LR``, weight decay = ``WEIGHT_DECAY``;
2. name contains ``language_backbone`` -> lr = ``LANG_LR`` (the whole RoBERTa incl. its cross-attention);
3. name contains ``backbone.body`` but not ``language_backbone.body`` -> lr = ``BASE_LR *
   BACKBONE_BODY_LR_FACTOR`` (the Swin body incl. its cross-attention);
4. [added] name contains ``dyhead_tower.`` and ``.offset.`` (the DyHead's deformable offset/mask convs) ->
   lr *= ``DCN_OFFSET_LR_FACTOR`` (1.0, i.e. no change, unless a config sets it);
5. name contains ``bias`` -> lr *= ``BIAS_LR_FACTOR``, weight decay = ``WEIGHT_DECAY_BIAS`` (this also
   catches ``relative_position_bias_table``, ``bias_lang`` and ``bias0``, as upstream);
6. name contains ``norm`` or ``Norm`` -> weight decay *= ``WEIGHT_DECAY_NORM_FACTOR``.

Upstream makes one group per parameter; here parameters with the same (lr, weight decay) share a group
(same numbers, far fewer groups); each group lists its parameter names under ``"names"``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import torch
from torch import nn

from maskrcnn_benchmark.solver.ema import ModelEMA
from maskrcnn_benchmark.solver.lr_scheduler import (
    WarmupCosineAnnealingLR,
    WarmupMultiStepLR,
    WarmupReduceLROnPlateau,
)

__all__ = [
    "param_lr_and_weight_decay",
    "build_param_groups",
    "make_optimizer",
    "resolve_milestones",
    "make_lr_scheduler",
    "make_model_ema",
    "gradient_clip_settings",
    "clip_gradients",
]

logger = logging.getLogger(__name__)


def param_lr_and_weight_decay(name: str, base_lr: float, lang_lr: float, backbone_body_lr_factor: float = 1.0,
                              bias_lr_factor: float = 2.0, weight_decay: float = 5e-4,
                              weight_decay_bias: float = 0.0, weight_decay_norm_factor: float = 1.0,
                              dcn_offset_lr_factor: float = 1.0) -> tuple[float, float]:
    """Upstream's (lr, weight decay) for one parameter name (rules in the module docstring)."""
    lr, wd = base_lr, weight_decay
    if "language_backbone" in name:
        lr = lang_lr
    if "backbone.body" in name and "language_backbone.body" not in name:
        lr = base_lr * backbone_body_lr_factor
    if "dyhead_tower." in name and ".offset." in name:
        lr *= dcn_offset_lr_factor
    if "bias" in name:
        lr *= bias_lr_factor
        wd = weight_decay_bias
    if "norm" in name or "Norm" in name:
        wd *= weight_decay_norm_factor
    return lr, wd


def build_param_groups(named_parameters: Iterable[tuple[str, nn.Parameter]], **rates) -> list[dict]:
    """Groups trainable parameters by their (lr, weight decay).

    Args:
        named_parameters: ``model.named_parameters()``.
        **rates: keyword arguments of :func:`param_lr_and_weight_decay` (``base_lr``, ``lang_lr``, ...).

    Returns:
        Optimizer param-group dicts ``{"params", "names", "lr", "weight_decay"}`` in first-seen order.
    """
    groups: dict[tuple[float, float], dict] = {}
    for name, param in named_parameters:
        if not param.requires_grad:
            continue
        lr, wd = param_lr_and_weight_decay(name, **rates)
        group = groups.setdefault((lr, wd), {"params": [], "names": [], "lr": lr, "weight_decay": wd})
        group["params"].append(param)
        group["names"].append(name)
    return list(groups.values())


def make_optimizer(cfg, model: nn.Module) -> torch.optim.Optimizer:
    """``SOLVER.OPTIMIZER`` ("SGD" with ``MOMENTUM``, or "ADAMW" with torch's default betas/eps).

    Gradient clipping is not folded into the optimizer (upstream subclasses it); the training loop calls
    :func:`clip_gradients` with :func:`gradient_clip_settings` after unscaling AMP gradients.

    Raises:
        ValueError: unknown optimizer name, or no trainable parameter.
    """
    solver = cfg.SOLVER
    groups = build_param_groups(
        model.named_parameters(), base_lr=solver.BASE_LR, lang_lr=solver.LANG_LR,
        backbone_body_lr_factor=solver.BACKBONE_BODY_LR_FACTOR, bias_lr_factor=solver.BIAS_LR_FACTOR,
        weight_decay=solver.WEIGHT_DECAY, weight_decay_bias=solver.WEIGHT_DECAY_BIAS,
        weight_decay_norm_factor=solver.WEIGHT_DECAY_NORM_FACTOR, dcn_offset_lr_factor=solver.DCN_OFFSET_LR_FACTOR)
    if not groups:
        raise ValueError("the model has no trainable parameter (everything frozen?)")
    for group in groups:
        logger.info("param group lr=%g weight_decay=%g: %d tensors", group["lr"], group["weight_decay"],
                    len(group["params"]))
    name = str(solver.OPTIMIZER).upper()
    if name == "SGD":
        return torch.optim.SGD(groups, lr=solver.BASE_LR, momentum=solver.MOMENTUM)
    if name == "ADAMW":
        return torch.optim.AdamW(groups, lr=solver.BASE_LR)
    raise ValueError(f"SOLVER.OPTIMIZER {solver.OPTIMIZER!r} is not supported: use 'SGD' or 'ADAMW'")


def resolve_milestones(steps: Iterable[float], max_iter: int) -> list[int]:
    """``SOLVER.STEPS`` -> iteration milestones: values < 1 are fractions of ``max_iter`` (rounded)."""
    milestones = [int(round(step * max_iter)) if step < 1 else int(step) for step in steps]
    if milestones != sorted(milestones):
        raise ValueError(f"SOLVER.STEPS {tuple(steps)} give non-increasing milestones {milestones} "
                         f"(MAX_ITER {max_iter})")
    return milestones


def make_lr_scheduler(cfg, optimizer: torch.optim.Optimizer):
    """Builds the schedule the config selects: cosine, plateau (``USE_AUTOSTEP``) or warm-up multi-step.

    ``SOLVER.MAX_ITER`` must already be final (derived from ``MAX_EPOCH`` by the data loader builder).

    Raises:
        ValueError: ``SOLVER.MULTI_MAX_EPOCH`` (multi-stage schedules; unused by FIBER) or bad values.
    """
    solver = cfg.SOLVER
    if tuple(getattr(solver, "MULTI_MAX_EPOCH", ()) or ()):
        raise ValueError("SOLVER.MULTI_MAX_EPOCH (multi-stage schedules) is not supported; no FIBER config uses it")
    warmup = dict(warmup_factor=solver.WARMUP_FACTOR, warmup_iters=int(solver.WARMUP_ITERS),
                  warmup_method=solver.WARMUP_METHOD)
    if solver.USE_COSINE:
        return WarmupCosineAnnealingLR(optimizer, int(solver.MAX_ITER), eta_min=solver.MIN_LR, **warmup)
    if solver.USE_AUTOSTEP:
        return WarmupReduceLROnPlateau(optimizer, gamma=solver.GAMMA, eta_min=solver.MIN_LR,
                                       patience=int(solver.STEP_PATIENCE), **warmup)
    milestones = resolve_milestones(solver.STEPS, int(solver.MAX_ITER))
    ratio = float(solver.WEIGHT_DECAY_SCHEDULE_RATIO) if solver.WEIGHT_DECAY_SCHEDULE else None
    return WarmupMultiStepLR(optimizer, milestones, gamma=solver.GAMMA, weight_decay_schedule_ratio=ratio,
                             **warmup)


def make_model_ema(cfg, model: nn.Module) -> ModelEMA | None:
    """A :class:`ModelEMA` when ``SOLVER.MODEL_EMA > 0``, else None."""
    decay = float(cfg.SOLVER.MODEL_EMA)
    return ModelEMA(model, decay) if decay > 0 else None


def gradient_clip_settings(cfg) -> tuple[float, float] | None:
    """(max_norm, norm_type) for full-model clipping, or None when off.

    ``SOLVER.CLIP_GRADIENTS`` (``ENABLED``, ``CLIP_TYPE`` "full_model", ``CLIP_VALUE``, ``NORM_TYPE``) wins;
    otherwise ``SOLVER.GRAD_CLIP > 0`` clips the L2 norm.

    Raises:
        ValueError: an unsupported ``CLIP_TYPE``.
    """
    clip = cfg.SOLVER.CLIP_GRADIENTS
    if clip.ENABLED:
        if clip.CLIP_TYPE != "full_model":
            raise ValueError(f"SOLVER.CLIP_GRADIENTS.CLIP_TYPE {clip.CLIP_TYPE!r} is not supported (use "
                             f"'full_model', the only type upstream implements)")
        if clip.CLIP_VALUE > 0:
            return float(clip.CLIP_VALUE), float(clip.NORM_TYPE)
        return None
    grad_clip = float(getattr(cfg.SOLVER, "GRAD_CLIP", 0.0))
    return (grad_clip, 2.0) if grad_clip > 0 else None


def clip_gradients(parameters: Iterable[nn.Parameter], max_norm: float, norm_type: float = 2.0) -> float:
    """Clips the global gradient norm of ``parameters`` to ``max_norm``; returns the norm before clipping."""
    params = [p for p in parameters if p.grad is not None]
    if not params:
        return 0.0
    return float(torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type=norm_type))
