"""The training loop (``do_train``): iteration-based, AMP, gradient clipping, EMA, checkpoints, validation.

Upstream file: maskrcnn_benchmark/engine/trainer.py (GLIP/FIBER). What it does, step by step, per batch:

1. skip the batch when more than ``SOLVER.MAX_NEG_PER_BATCH`` of its images have no box (upstream rule; under
   DDP every rank skips when any rank would, so the ranks never deadlock - upstream hangs there);
2. forward under autocast (``SOLVER.USE_AMP``; ``SOLVER.AMP_DTYPE`` float16 with a GradScaler, or bfloat16),
   sum the loss dict in fp32; a non-finite total loss stops training with every loss term and the iteration in
   the error (upstream zeroes NaN and goes on; we refuse to train on garbage silently);
3. backward, optional full-model gradient-norm clipping on the unscaled gradients, optimizer and scheduler step,
   EMA update;
4. every ``checkpoint_period`` iterations (and at the end): validation if a validator is given (primary metric ->
   ReduceLROnPlateau when ``SOLVER.USE_AUTOSTEP``, ``model_best.pth`` on improvement, auto-termination after
   ``SOLVER.AUTO_TERMINATE_PATIENCE`` validations without improvement), then ``model_{iteration:07d}.pth``;
   ``model_final.pth`` at ``SOLVER.MAX_ITER``.

Resume is exact: each checkpoint carries the iteration (= batches consumed, skipped ones included, so the
sampler restarts at the right batch), optimizer, scheduler, GradScaler, EMA, best metric, patience and the
Python/NumPy/torch RNG states. The RNG states are restored right after the data-loader iterator is created, so
a run killed at any point and relaunched ends with the same weights as an uninterrupted one (given a data
pipeline whose randomness comes from those generators, e.g. ``DATALOADER.NUM_WORKERS 0``).

Logging: a tqdm bar on rank 0 (ETA, losses, lr), a log line every ``log_period`` iterations (ETA, losses, lr,
max memory), ``metrics.jsonl`` and optional TensorBoard events in ``OUTPUT_DIR``.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from maskrcnn_benchmark.utils.distributed import (
    all_reduce_max,
    get_rank,
    get_world_size,
    is_main_process,
    reduce_loss_dict,
    synchronize,
    unwrap_model,
)
from maskrcnn_benchmark.utils.metric_logger import MetricLogger
from maskrcnn_benchmark.utils.miscellaneous import get_rng_state, set_rng_state

__all__ = ["do_train", "resolve_checkpoint_period", "AmpSettings", "amp_settings", "Validator", "TrainLogWriter"]

logger = logging.getLogger(__name__)

# validator(model, iteration) -> primary metric (higher is better) or None when nothing was measured.
Validator = Callable[[nn.Module, int], float | None]


def resolve_checkpoint_period(cfg, max_iter: int) -> int:
    """Checkpoint/validation period in iterations.

    ``SOLVER.CHECKPOINT_PER_EPOCH`` (epochs, when != -1 and ``SOLVER.MAX_EPOCH`` >= 1) wins over
    ``SOLVER.CHECKPOINT_PERIOD``, as upstream: ``max_iter * per_epoch // MAX_EPOCH``; never below 1.
    """
    per_epoch = float(cfg.SOLVER.CHECKPOINT_PER_EPOCH)
    if per_epoch != -1 and cfg.SOLVER.MAX_EPOCH >= 1:
        return max(1, int(max_iter * per_epoch // cfg.SOLVER.MAX_EPOCH))
    return max(1, int(cfg.SOLVER.CHECKPOINT_PERIOD))


@dataclass
class AmpSettings:
    """How the forward pass runs: autocast on/off, its dtype and whether a GradScaler is needed."""

    enabled: bool
    dtype: torch.dtype
    device_type: str

    @property
    def needs_scaler(self) -> bool:
        return self.enabled and self.dtype == torch.float16

    def autocast(self):
        if not self.enabled:
            return nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)


def amp_settings(cfg, device: torch.device) -> AmpSettings:
    """Read ``SOLVER.USE_AMP`` / ``SOLVER.AMP_DTYPE`` for ``device``.

    float16 autocast on a CPU is slow and gains nothing, so there it is turned off (with a warning); bfloat16
    works on both CPU and GPU.
    """
    device = torch.device(device)
    name = str(getattr(cfg.SOLVER, "AMP_DTYPE", "float16")).lower()
    dtypes = {"float16": torch.float16, "fp16": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
    if name not in dtypes:
        raise ValueError(f"SOLVER.AMP_DTYPE must be one of {sorted(dtypes)}, got {name!r}")
    dtype = dtypes[name]
    enabled = bool(cfg.SOLVER.USE_AMP)
    if enabled and device.type == "cpu" and dtype == torch.float16:
        logger.warning("SOLVER.USE_AMP with float16 on a CPU: training in float32 (set SOLVER.AMP_DTYPE bfloat16 "
                       "for CPU autocast)")
        enabled = False
    return AmpSettings(enabled=enabled, dtype=dtype, device_type=device.type)


class TrainLogWriter:
    """Rank-0 writer of ``metrics.jsonl`` (one JSON object per line) and optional TensorBoard scalars."""

    def __init__(self, output_dir: str | None, use_tensorboard: bool):
        self.enabled = bool(output_dir) and is_main_process()
        self.path = os.path.join(output_dir, "metrics.jsonl") if self.enabled else None
        self.tb = None
        if self.enabled:
            os.makedirs(output_dir, exist_ok=True)
            if use_tensorboard:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(log_dir=os.path.join(output_dir, "tensorboard"))

    def write(self, iteration: int, values: dict[str, float], prefix: str = "train") -> None:
        if not self.enabled:
            return
        row = {"iteration": iteration, **{f"{prefix}/{k}": v for k, v in values.items()}}
        with open(self.path, "a") as handle:
            handle.write(json.dumps(row) + "\n")
        if self.tb is not None:
            for key, value in values.items():
                self.tb.add_scalar(f"{prefix}/{key}", value, iteration)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.flush()
            self.tb.close()


@dataclass
class _LoopState:
    """Everything of the loop that a checkpoint carries besides model/optimizer/scheduler."""

    iteration: int = 0
    best_metric: float | None = None
    patience: int = 0
    terminated: bool = False


def _batch_parts(batch):
    """Split a collated batch into (images, targets, positive_map); extra trailing parts are ignored."""
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise TypeError(f"a training batch must be (images, targets, ids, positive_map, ...), got {type(batch)}")
    images, targets = batch[0], batch[1]
    positive_map = batch[3] if len(batch) > 3 else None
    return images, targets, positive_map


def _should_skip(targets, max_neg_fraction: float) -> bool:
    """Upstream rule: skip when every image, or more than the allowed fraction, has no box."""
    negatives = sum(1 for target in targets if len(target) < 1)
    total = len(targets)
    return total == negatives or negatives > total * max_neg_fraction


def _forward_losses(model, images, targets, positive_map, device, amp: AmpSettings) -> dict[str, torch.Tensor]:
    images = images.to(device)
    targets = [target.to(device) for target in targets]
    captions = [target.get_field("caption") for target in targets if target.has_field("caption")]
    if positive_map is not None:
        positive_map = positive_map.to(device)
    with amp.autocast():
        if captions and len(captions) == len(targets):
            loss_dict = model(images, targets, captions=captions, positive_map=positive_map)
        else:
            loss_dict = model(images, targets)
    if not isinstance(loss_dict, dict) or not loss_dict:
        raise TypeError(f"the model returned {type(loss_dict).__name__} in training mode, expected a dict of losses")
    return {name: value.float() for name, value in loss_dict.items()}


def _check_finite(losses: torch.Tensor, loss_dict: dict[str, torch.Tensor], iteration: int, on_nan=None) -> None:
    if torch.isfinite(losses).all():
        return
    terms = ", ".join(f"{name}={value.item():.6g}" for name, value in loss_dict.items())
    logger.error("non-finite loss at iteration %d: %s", iteration, terms)
    if on_nan is not None:
        on_nan(iteration)
    raise FloatingPointError(f"non-finite loss at iteration {iteration}: {terms}")


def _clip_gradients(cfg, model: nn.Module) -> float | None:
    """Full-model gradient-norm clipping (SOLVER.CLIP_GRADIENTS or SOLVER.GRAD_CLIP); returns the norm or None."""
    from maskrcnn_benchmark.solver import clip_gradients, gradient_clip_settings

    settings = gradient_clip_settings(cfg)
    if settings is None:
        return None
    max_norm, norm_type = settings
    return clip_gradients(model.parameters(), max_norm, norm_type)


def _current_lr(optimizer) -> float:
    return max(group["lr"] for group in optimizer.param_groups)


def _step_plateau(scheduler, metric: float) -> None:
    """Feed a validation metric to a ReduceLROnPlateau-style scheduler (several APIs accepted)."""
    for name in ("step_metric", "step_plateau"):
        if hasattr(scheduler, name):
            getattr(scheduler, name)(metric)
            return
    scheduler.step(metric)


class _Trainer:
    """One training run; ``do_train`` is the public face."""

    def __init__(self, cfg, model, data_loader, optimizer, scheduler, checkpointer, device, checkpoint_period,
                 arguments, validator, model_ema, log_period, use_tensorboard, on_nan):
        self.cfg = cfg
        self.model = model
        self.data_loader = data_loader
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.checkpointer = checkpointer
        self.device = torch.device(device)
        self.checkpoint_period = max(1, int(checkpoint_period))
        self.arguments = arguments
        self.validator = validator
        self.model_ema = model_ema
        self.log_period = max(1, int(log_period))
        self.on_nan = on_nan
        self.max_iter = int(cfg.SOLVER.MAX_ITER)
        self.amp = amp_settings(cfg, self.device)
        self.scaler = torch.amp.GradScaler(self.amp.device_type) if self.amp.needs_scaler else None
        self.meters = MetricLogger(delimiter="  ")
        self.writer = TrainLogWriter(cfg.OUTPUT_DIR, use_tensorboard)
        self.state = _LoopState(
            iteration=int(arguments.get("iteration", 0)),
            best_metric=arguments.get("best_metric"),
            patience=int(arguments.get("patience", 0)),
            terminated=bool(arguments.get("terminated", False)),
        )
        self._restore_components()

    # ---- resume ---------------------------------------------------------------------------------------
    def _restore_components(self) -> None:
        if self.scaler is not None and self.arguments.get("scaler"):
            self.scaler.load_state_dict(self.arguments["scaler"])
        if self.model_ema is not None and self.arguments.get("model_ema") is not None:
            self.model_ema.load_state_dict(self.arguments["model_ema"])

    def _restore_rng(self) -> None:
        rng_state = self.arguments.get("rng_state")
        if rng_state is None:
            return
        # Per-rank states: a checkpoint stores rank 0's; other ranks re-derive theirs from the list if present.
        if isinstance(rng_state, list):
            rng_state = rng_state[get_rank()] if get_rank() < len(rng_state) else rng_state[0]
        set_rng_state(rng_state)

    # ---- checkpoints ----------------------------------------------------------------------------------
    def _extras(self) -> dict[str, Any]:
        from maskrcnn_benchmark.utils.distributed import all_gather

        extras: dict[str, Any] = {
            "iteration": self.state.iteration,
            "best_metric": self.state.best_metric,
            "patience": self.state.patience,
            "terminated": self.state.terminated,
            "rng_state": all_gather(get_rng_state()),
        }
        if self.scaler is not None:
            extras["scaler"] = self.scaler.state_dict()
        if self.model_ema is not None:
            extras["model_ema"] = self.model_ema.state_dict()
        return extras

    def _save(self, name: str) -> None:
        extras = self._extras()
        if self.checkpointer is not None and is_main_process():
            self.checkpointer.save(name, **extras)
        synchronize()

    # ---- one iteration --------------------------------------------------------------------------------
    def _train_step(self, batch) -> dict[str, float] | None:
        images, targets, positive_map = _batch_parts(batch)
        skip = _should_skip(targets, float(self.cfg.SOLVER.MAX_NEG_PER_BATCH))
        if all_reduce_max(1.0 if skip else 0.0) > 0:
            logger.info("iteration %d: skipping a batch with too many images without boxes (%d of %d empty here)",
                        self.state.iteration, sum(len(t) < 1 for t in targets), len(targets))
            return None
        loss_dict = _forward_losses(self.model, images, targets, positive_map, self.device, self.amp)
        losses = sum(loss_dict.values())
        _check_finite(losses, loss_dict, self.state.iteration, self.on_nan)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(losses).backward()
            self.scaler.unscale_(self.optimizer)
            grad_norm = _clip_gradients(self.cfg, self.model)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            losses.backward()
            grad_norm = _clip_gradients(self.cfg, self.model)
            self.optimizer.step()
        self.scheduler.step()
        if self.model_ema is not None:
            self.model_ema.update(unwrap_model(self.model))
        reduced = reduce_loss_dict(loss_dict)
        logged = {name: float(value) for name, value in reduced.items()}
        logged["loss"] = sum(logged.values())
        if grad_norm is not None:
            logged["grad_norm"] = grad_norm
        return logged

    # ---- validation -----------------------------------------------------------------------------------
    def _validate(self) -> None:
        if self.validator is None:
            return
        use_ema = bool(getattr(self.cfg.SOLVER, "USE_EMA_FOR_MONITOR", False)) and self.model_ema is not None
        eval_model = self.model_ema.module if use_ema else self.model
        metric = self.validator(eval_model, self.state.iteration)
        self.model.train()
        if metric is None:
            logger.info("iteration %d: validation gave no primary metric", self.state.iteration)
            return
        metric = float(metric)
        self.writer.write(self.state.iteration, {"metric": metric}, prefix="val")
        if self.cfg.SOLVER.USE_AUTOSTEP:
            _step_plateau(self.scheduler, metric)
        if self.state.best_metric is None or metric > self.state.best_metric:
            logger.info("iteration %d: new best validation metric %.4f (was %s)", self.state.iteration, metric,
                        self.state.best_metric)
            self.state.best_metric = metric
            self.state.patience = 0
            self._save("model_best")
        else:
            self.state.patience += 1
            logger.info("iteration %d: validation metric %.4f, best %.4f, %d validation(s) without improvement",
                        self.state.iteration, metric, self.state.best_metric, self.state.patience)
        patience_limit = int(self.cfg.SOLVER.AUTO_TERMINATE_PATIENCE)
        if patience_limit != -1 and self.state.patience >= patience_limit:
            logger.info("auto-termination at iteration %d: best metric %.4f", self.state.iteration,
                        self.state.best_metric)
            self.state.terminated = True

    # ---- logging --------------------------------------------------------------------------------------
    def _log(self, logged: dict[str, float], start_time: float, start_iter: int, bar) -> None:
        lr = _current_lr(self.optimizer)
        self.meters.update(**logged)
        iteration = self.state.iteration
        if bar is not None:
            shown = {k: f"{self.meters.meters[k].median:.3f}" for k in logged if k != "grad_norm"}
            shown["lr"] = f"{lr:.2e}"
            bar.set_postfix(shown, refresh=False)
        if iteration % self.log_period == 0 or iteration == self.max_iter:
            done = iteration - start_iter
            seconds = (time.time() - start_time) / max(done, 1) * (self.max_iter - iteration)
            memory = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else 0.0
            logger.info("iter %d/%d  eta %s  %s  lr %.6g  max mem %.0f MB", iteration, self.max_iter,
                        datetime.timedelta(seconds=int(seconds)), self.meters, lr, memory)
            self.writer.write(iteration, {**self.meters.medians(logged.keys()), "lr": lr})

    # ---- the loop ---------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        start_iter = self.state.iteration
        if self.state.terminated or start_iter >= self.max_iter:
            logger.info("training already finished at iteration %d (terminated=%s)", start_iter, self.state.terminated)
            return self._summary()
        logger.info("start training at iteration %d of %d (world size %d)", start_iter, self.max_iter,
                    get_world_size())
        self.model.train()
        iterator = iter(self.data_loader)
        self._restore_rng()
        bar = self._progress_bar(start_iter)
        start_time = time.time()
        try:
            while self.state.iteration < self.max_iter:
                try:
                    batch = next(iterator)
                except StopIteration:
                    logger.warning("the data loader ended at iteration %d before SOLVER.MAX_ITER %d",
                                   self.state.iteration, self.max_iter)
                    break
                logged = self._train_step(batch)
                self.state.iteration += 1
                if bar is not None:
                    bar.update(1)
                if logged is not None:
                    self._log(logged, start_time, start_iter, bar)
                if self._end_of_period():
                    if self._periodic() is False:
                        break
        finally:
            if bar is not None:
                bar.close()
            self.writer.close()
        total = time.time() - start_time
        logger.info("training time %s (%.4f s / it)", datetime.timedelta(seconds=int(total)),
                    total / max(self.state.iteration - start_iter, 1))
        self.arguments.update(iteration=self.state.iteration, best_metric=self.state.best_metric)
        return self._summary()

    def _end_of_period(self) -> bool:
        return self.state.iteration % self.checkpoint_period == 0 or self.state.iteration == self.max_iter

    def _periodic(self) -> bool:
        """Validation + checkpoint; returns False when training must stop (auto-termination)."""
        self._validate()
        if self.state.terminated:
            self._save("model_final")
            return False
        if self.state.iteration == self.max_iter:
            self._save("model_final")
        elif self.state.iteration % self.checkpoint_period == 0:
            self._save(f"model_{self.state.iteration:07d}")
        return True

    def _progress_bar(self, start_iter: int):
        if not is_main_process():
            return None
        from tqdm import tqdm

        return tqdm(total=self.max_iter, initial=start_iter, desc="train", dynamic_ncols=True, mininterval=1.0,
                    leave=True)

    def _summary(self) -> dict[str, Any]:
        return {
            "iteration": self.state.iteration,
            "best_metric": self.state.best_metric,
            "terminated": self.state.terminated,
            "meters": {name: meter.global_avg for name, meter in self.meters.meters.items()},
        }


def do_train(
    cfg,
    model: nn.Module,
    data_loader,
    optimizer: torch.optim.Optimizer,
    scheduler,
    checkpointer,
    device,
    checkpoint_period: int,
    arguments: dict[str, Any],
    validator: Validator | None = None,
    model_ema=None,
    log_period: int = 20,
    use_tensorboard: bool = False,
    on_nan: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Train ``model`` until ``SOLVER.MAX_ITER`` (or auto-termination); see the module docstring.

    Args:
        cfg: the frozen config (reads SOLVER.*, OUTPUT_DIR).
        model: the detector (optionally DDP-wrapped); in train mode it returns a dict of scalar losses.
        data_loader: yields ``(images: ImageList, targets: list[BoxList], ids, positive_map[N, L] | None, ...)``,
            starting at batch ``arguments["iteration"]`` (the loader is built with that ``start_iter``).
        optimizer, scheduler: torch optimizer and a per-iteration LR scheduler (``step()`` each iteration).
        checkpointer: object with ``save(name, **extras)`` (``DetectronCheckpointer``); None to save nothing.
        device: where batches go.
        checkpoint_period: iterations between checkpoints/validations (:func:`resolve_checkpoint_period`).
        arguments: resume state; ``iteration`` plus what an earlier checkpoint saved ("rng_state", "scaler",
            "model_ema", "best_metric", "patience", "terminated"). Updated in place at the end.
        validator: ``validator(model, iteration) -> float | None``, higher is better; None disables validation.
        model_ema: object with ``update(model)``, ``state_dict()``, ``load_state_dict()`` (and ``module``).
        log_period: iterations between log lines / metrics.jsonl rows.
        use_tensorboard: also write TensorBoard events to ``OUTPUT_DIR/tensorboard``.
        on_nan: called with the iteration before a non-finite loss raises (e.g. to save a debug checkpoint).

    Returns:
        dict with the final "iteration", "best_metric", "terminated" and the global-average "meters".

    Raises:
        FloatingPointError: the total loss became NaN or infinite (every loss term is in the message).
    """
    trainer = _Trainer(cfg, model, data_loader, optimizer, scheduler, checkpointer, device, checkpoint_period,
                       arguments, validator, model_ema, log_period, use_tensorboard, on_nan)
    return trainer.run()
