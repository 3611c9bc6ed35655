"""Exponential moving average of model weights (``SOLVER.MODEL_EMA``).

After every optimizer step: ``ema = decay * ema + (1 - decay) * current`` for every floating-point entry of
the state dict (parameters and float buffers). Integer buffers (Swin ``relative_position_index``, RoBERTa
``position_ids``, counters) are copied, not averaged: upstream pushes them through float math and truncates
the result back, which can corrupt them (upstream-facts.md 2.2). The EMA weights are saved in checkpoints
under ``model_ema`` with the same keys as ``model``; ``TEST.USE_EMA_WEIGHTS`` chooses whether evaluation
uses them (upstream always evaluates the plain weights).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping

import torch
from torch import nn

from maskrcnn_benchmark.utils.distributed import unwrap_model

__all__ = ["ModelEMA", "evaluation_model"]

logger = logging.getLogger(__name__)


class ModelEMA:
    """Keeps an averaged copy of a model.

    Args:
        model: the model being trained (a DDP wrapper is unwrapped; the copy never has ``module.`` keys).
        decay: EMA decay in [0, 1); 0.999 in FIBER's configs.
        device: where to keep the copy (default: same as the model).

    Attributes:
        module (nn.Module): the averaged model, in eval mode, without gradients.
        decay (float): the decay.
        updates (int): number of :meth:`update` calls (informational).
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, device: torch.device | None = None):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"SOLVER.MODEL_EMA must be in [0, 1), got {decay}")
        self.module = copy.deepcopy(unwrap_model(model)).eval()
        if device is not None:
            self.module.to(device)
        for param in self.module.parameters():
            param.requires_grad_(False)
        self.decay = float(decay)
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One EMA step towards ``model``'s current weights."""
        current = unwrap_model(model).state_dict()
        for key, averaged in self.module.state_dict().items():
            value = current[key].detach().to(averaged.device)
            if averaged.dtype.is_floating_point:
                averaged.mul_(self.decay).add_(value.to(averaged.dtype), alpha=1.0 - self.decay)
            else:
                averaged.copy_(value)
        self.updates += 1

    @torch.no_grad()
    def set_from(self, model: nn.Module) -> None:
        """Resets the average to ``model``'s weights."""
        self.module.load_state_dict(unwrap_model(model).state_dict())

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The averaged weights (same keys as the model's state dict; upstream's ``model_ema`` entry)."""
        return self.module.state_dict()

    def load_state_dict(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Loads averaged weights (a leading ``module.`` on all keys, as upstream saves them, is removed)."""
        keys = list(state_dict)
        if keys and all(k.startswith("module.") for k in keys):
            state_dict = {k[len("module."):]: v for k, v in state_dict.items()}
        self.module.load_state_dict(state_dict)


def evaluation_model(model: nn.Module, ema: ModelEMA | None, use_ema_weights: bool) -> nn.Module:
    """The model to evaluate: the EMA copy when ``use_ema_weights`` (``TEST.USE_EMA_WEIGHTS``) and EMA is on.

    Raises:
        ValueError: ``use_ema_weights`` is set but no EMA is kept (``SOLVER.MODEL_EMA`` is 0).
    """
    if not use_ema_weights:
        return model
    if ema is None:
        raise ValueError("TEST.USE_EMA_WEIGHTS is True but SOLVER.MODEL_EMA is 0 (no EMA weights are kept)")
    return ema.module
