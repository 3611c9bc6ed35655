"""Optimizers, learning-rate schedules, EMA and gradient clipping."""

from maskrcnn_benchmark.solver.build import (
    build_param_groups,
    clip_gradients,
    gradient_clip_settings,
    make_lr_scheduler,
    make_model_ema,
    make_optimizer,
)
from maskrcnn_benchmark.solver.ema import ModelEMA, evaluation_model
from maskrcnn_benchmark.solver.lr_scheduler import (
    WarmupCosineAnnealingLR,
    WarmupMultiStepLR,
    WarmupReduceLROnPlateau,
)

__all__ = [
    "build_param_groups",
    "clip_gradients",
    "gradient_clip_settings",
    "make_lr_scheduler",
    "make_model_ema",
    "make_optimizer",
    "ModelEMA",
    "evaluation_model",
    "WarmupCosineAnnealingLR",
    "WarmupMultiStepLR",
    "WarmupReduceLROnPlateau",
]
