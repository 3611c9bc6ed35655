"""Learning-rate schedules with warm-up (upstream ``solver/lr_scheduler.py`` semantics).

All schedules are stepped once per training iteration (``scheduler.step()`` after ``optimizer.step()``);
``last_epoch`` counts iterations. Each is a closed-form function of the iteration, so ``state_dict`` /
``load_state_dict`` resume exactly.

* :class:`WarmupMultiStepLR`: ``lr = base_lr * warmup(it) * gamma ** (#milestones <= it)``, optionally
  also decaying every group's weight decay (upstream's ``SOLVER.WEIGHT_DECAY_SCHEDULE``: from iteration
  ``ratio * milestone`` on, weight decay is multiplied by ``gamma`` once per milestone).
* :class:`WarmupCosineAnnealingLR`: warm-up, then cosine from ``base_lr`` to ``eta_min`` exactly at
  ``max_iters``.
* :class:`WarmupReduceLROnPlateau`: warm-up by iteration, then ``ReduceLROnPlateau`` (mode ``max``) on a
  validation metric given through ``step(metric)`` (upstream's ``SOLVER.USE_AUTOSTEP``).

Warm-up factor at iteration ``it < warmup_iters``: ``constant`` -> ``warmup_factor``; ``linear`` ->
``warmup_factor * (1 - a) + a`` with ``a = it / warmup_iters``; 1 afterwards.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence

import torch
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

__all__ = [
    "warmup_factor_at",
    "WarmupMultiStepLR",
    "WarmupCosineAnnealingLR",
    "WarmupReduceLROnPlateau",
]

_WARMUP_METHODS = ("constant", "linear")


def _check_warmup(method: str, warmup_iters: int) -> None:
    if method not in _WARMUP_METHODS:
        raise ValueError(f"SOLVER.WARMUP_METHOD must be one of {_WARMUP_METHODS}, got {method!r}")
    if warmup_iters < 0:
        raise ValueError(f"SOLVER.WARMUP_ITERS must be >= 0, got {warmup_iters}")


def warmup_factor_at(iteration: int, method: str, warmup_iters: int, warmup_factor: float) -> float:
    """The multiplier applied to the base LR at ``iteration`` (1.0 once warm-up is over)."""
    if iteration >= warmup_iters:
        return 1.0
    if method == "constant":
        return warmup_factor
    alpha = float(iteration) / warmup_iters
    return warmup_factor * (1.0 - alpha) + alpha


class WarmupMultiStepLR(LRScheduler):
    """Warm-up, then step decay by ``gamma`` at each milestone (and optional weight-decay decay).

    Args:
        optimizer: the optimizer.
        milestones: increasing iteration numbers.
        gamma: decay factor per milestone.
        warmup_factor, warmup_iters, warmup_method: see the module docstring.
        weight_decay_schedule_ratio: when set, each group's weight decay is its initial value times
            ``gamma ** k`` where k = number of milestones m with ``iteration >= ratio * m``
            (upstream: 0.667, pre-training only).
        last_epoch: iteration to resume from (-1 = start).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, milestones: Sequence[int], gamma: float = 0.1,
                 warmup_factor: float = 1.0 / 3, warmup_iters: int = 500, warmup_method: str = "linear",
                 weight_decay_schedule_ratio: float | None = None, last_epoch: int = -1):
        milestones = [int(m) for m in milestones]
        if milestones != sorted(milestones):
            raise ValueError(f"milestones (SOLVER.STEPS) must be increasing, got {milestones}")
        _check_warmup(warmup_method, warmup_iters)
        self.milestones = milestones
        self.gamma = gamma
        self.warmup_factor = warmup_factor
        self.warmup_iters = warmup_iters
        self.warmup_method = warmup_method
        self.weight_decay_schedule_ratio = weight_decay_schedule_ratio
        for group in optimizer.param_groups:
            group.setdefault("initial_weight_decay", group.get("weight_decay", 0.0))
        super().__init__(optimizer, last_epoch)

    def _lr_factor(self, iteration: int) -> float:
        warm = warmup_factor_at(iteration, self.warmup_method, self.warmup_iters, self.warmup_factor)
        return warm * self.gamma ** bisect_right(self.milestones, iteration)

    def weight_decay_factor(self, iteration: int) -> float:
        """Multiplier of the initial weight decay at ``iteration`` (1.0 without the schedule)."""
        if self.weight_decay_schedule_ratio is None:
            return 1.0
        # UPSTREAM-QUIRK: 2.2 - float comparison "iteration >= milestone * ratio", as upstream's trainer.
        passed = sum(1 for m in self.milestones if iteration >= m * self.weight_decay_schedule_ratio)
        return self.gamma ** passed

    def get_lr(self) -> list[float]:
        factor = self._lr_factor(self.last_epoch)
        if self.weight_decay_schedule_ratio is not None:
            wd_factor = self.weight_decay_factor(self.last_epoch)
            for group in self.optimizer.param_groups:
                group["weight_decay"] = group["initial_weight_decay"] * wd_factor
        return [base_lr * factor for base_lr in self.base_lrs]

    _get_closed_form_lr = get_lr

    def load_state_dict(self, state_dict) -> None:
        """Restores the schedule and re-applies the weight decay of the restored iteration."""
        super().load_state_dict(state_dict)
        if self.weight_decay_schedule_ratio is not None:
            wd_factor = self.weight_decay_factor(self.last_epoch)
            for group in self.optimizer.param_groups:
                group["weight_decay"] = group["initial_weight_decay"] * wd_factor


class WarmupCosineAnnealingLR(LRScheduler):
    """Warm-up, then half a cosine from ``base_lr`` down to ``eta_min`` reached at ``max_iters``.

    Upstream divides the cosine phase by ``max_iters`` instead of ``max_iters - warmup_iters``, so its LR
    never reaches ``eta_min`` when warm-up is on; no FIBER config uses the cosine schedule, so we use the
    exact end point.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, max_iters: int, warmup_factor: float = 1.0 / 3,
                 warmup_iters: int = 500, warmup_method: str = "linear", eta_min: float = 0.0,
                 last_epoch: int = -1):
        _check_warmup(warmup_method, warmup_iters)
        if max_iters <= warmup_iters:
            raise ValueError(f"SOLVER.MAX_ITER ({max_iters}) must exceed SOLVER.WARMUP_ITERS ({warmup_iters}) "
                             f"for the cosine schedule")
        self.max_iters = max_iters
        self.warmup_factor = warmup_factor
        self.warmup_iters = warmup_iters
        self.warmup_method = warmup_method
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        it = self.last_epoch
        if it < self.warmup_iters:
            factor = warmup_factor_at(it, self.warmup_method, self.warmup_iters, self.warmup_factor)
            return [base_lr * factor for base_lr in self.base_lrs]
        progress = min(1.0, (it - self.warmup_iters) / (self.max_iters - self.warmup_iters))
        cosine = (1.0 + math.cos(math.pi * progress)) / 2.0
        return [self.eta_min + (base_lr - self.eta_min) * cosine for base_lr in self.base_lrs]

    _get_closed_form_lr = get_lr


class WarmupReduceLROnPlateau(ReduceLROnPlateau):
    """Warm-up per iteration, then reduce the LR by ``gamma`` when the validation metric stalls.

    ``step()`` (no argument) is called every iteration and only acts during warm-up; ``step(metric)`` (or
    :meth:`step_metric`) is called after each validation, with a higher-is-better metric (AP).

    Args:
        optimizer: the optimizer.
        gamma: LR factor on a plateau.
        warmup_factor, warmup_iters, warmup_method: see the module docstring.
        eta_min: lowest LR.
        patience: validations without improvement before reducing (SOLVER.STEP_PATIENCE).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, gamma: float = 0.1, warmup_factor: float = 1.0 / 3,
                 warmup_iters: int = 500, warmup_method: str = "linear", eta_min: float = 0.0,
                 patience: int = 5):
        _check_warmup(warmup_method, warmup_iters)
        self.warmup_factor = warmup_factor
        self.warmup_iters = warmup_iters
        self.warmup_method = warmup_method
        self.eta_min = eta_min
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.iteration = 0
        super().__init__(optimizer, mode="max", factor=gamma, patience=patience, min_lr=eta_min)
        self._apply_warmup()

    def _apply_warmup(self) -> None:
        factor = warmup_factor_at(self.iteration, self.warmup_method, self.warmup_iters, self.warmup_factor)
        for group, base_lr in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base_lr * factor

    def step(self, metrics: float | None = None) -> None:  # type: ignore[override]
        """Per iteration (``metrics`` None): advance warm-up. With a metric: plateau logic."""
        if metrics is None:
            self.iteration += 1
            if self.iteration <= self.warmup_iters:
                self._apply_warmup()
            return
        # Upstream ignores a metric of exactly 0.0 ("elif metrics:"); any number counts here.
        super().step(float(metrics))

    def step_metric(self, metric: float) -> None:
        """Feeds one validation result (higher is better)."""
        self.step(metrics=float(metric))

    def get_last_lr(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]
