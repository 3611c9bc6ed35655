"""Ops and layers. Each op has one public function here; the compiled kernel is used when built (see
``python -m maskrcnn_benchmark.utils.collect_env``), else a pure-torch path."""

from .deform_conv import ModulatedDeformConv, modulated_deform_conv
from .nms import ml_nms, nms
from .sigmoid_focal_loss import (
    SigmoidFocalLoss,
    TokenSigmoidFocalLoss,
    sigmoid_focal_loss,
    token_sigmoid_focal_loss,
)

__all__ = [
    "ModulatedDeformConv",
    "SigmoidFocalLoss",
    "TokenSigmoidFocalLoss",
    "ml_nms",
    "modulated_deform_conv",
    "nms",
    "sigmoid_focal_loss",
    "token_sigmoid_focal_loss",
]
