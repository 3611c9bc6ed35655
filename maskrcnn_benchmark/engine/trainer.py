"""The training loop: iteration-based, AMP, gradient clipping, EMA, checkpoints, validation.

Upstream file: maskrcnn_benchmark/engine/trainer.py (GLIP/FIBER). What it does, step by step, per batch:

1. skip the batch when more than ``SOLVER.MAX_NEG_PER_BATCH`` of its images have no box (upstream rule; under
   DDP every rank skips when any rank would, so the ranks never deadlock - upstream hangs there);
2. forward under autocast (``SOLVER.USE_AMP``; ``SOLVER.AMP_DTYPE`` float16 with a GradScaler, or bfloat16),
   sum the loss dict in fp32; a non-finite total loss stops training with every loss term and the iteration in
   the error (upstream zeroes NaN and goes on; we refuse to train on garbage silently);
3. backward, the total gradient norm (full-model clipping to ``SOLVER.CLIP_GRADIENTS`` when on); a non-finite
   norm stops training before the step, naming the first parameter with a NaN/inf gradient (with a float16
   GradScaler an overflow instead skips the step, as AMP intends); optimizer and scheduler step, EMA update;
4. every ``checkpoint_period`` iterations (and at the end): validation if a validator is given (primary metric ->
   ReduceLROnPlateau when ``SOLVER.USE_AUTOSTEP``, ``model_best.pth`` on improvement, auto-termination after
   ``SOLVER.AUTO_TERMINATE_PATIENCE`` validations without improvement), then ``model_{iteration:07d}.pth``;
   ``model_final.pth`` at ``SOLVER.MAX_ITER``. Before any save the weights (and EMA weights) are checked: a
   NaN/inf tensor stops training naming it, and neither the file nor ``last_checkpoint`` is written.

State: :class:`maskrcnn_benchmark.utils.training_state.TrainingState` holds what a checkpoint carries (model,
optimizer, scheduler, EMA, AMP scaler, iteration, best metric, patience, RNG states); the loop's settings are a
:class:`TrainSettings`. Resume is exact: the RNG states are restored right after the data-loader iterator is
created, so a run killed at any point and relaunched ends with the same weights as an uninterrupted one (given a
data pipeline whose randomness comes from those generators, e.g. ``DATALOADER.NUM_WORKERS 0``).

Logging: a tqdm bar on rank 0 (ETA, losses, lr), a log line every ``log_period`` iterations (ETA, losses, lr,
max memory), ``metrics.jsonl`` and optional TensorBoard events in ``OUTPUT_DIR``; on resume, rows and events past
the resumed iteration (written after its checkpoint by the interrupted run) are dropped, so no row repeats.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from maskrcnn_benchmark.utils.atomic_io import atomic_write_text
from maskrcnn_benchmark.utils.distributed import (
    all_gather,
    all_reduce_max,
    get_world_size,
    is_main_process,
    reduce_loss_dict,
    synchronize,
    unwrap_model,
)
from maskrcnn_benchmark.utils.metric_logger import MetricLogger
from maskrcnn_benchmark.utils.miscellaneous import get_rng_state
from maskrcnn_benchmark.utils.training_state import NonFiniteError, TrainingState

__all__ = [
    "do_train",
    "run_training",
    "TrainSettings",
    "resolve_checkpoint_period",
    "AmpSettings",
    "amp_settings",
    "make_grad_scaler",
    "Validator",
    "TrainLogWriter",
]

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


def make_grad_scaler(amp: AmpSettings) -> torch.amp.GradScaler | None:
    """A GradScaler when ``amp`` autocasts to float16, else None."""
    return torch.amp.GradScaler(amp.device_type) if amp.needs_scaler else None


@dataclass(frozen=True)
class TrainSettings:
    """What the loop needs from the config, as plain values (:meth:`from_config` reads them).

    Attributes:
        max_iter: ``SOLVER.MAX_ITER`` (final, after the MAX_EPOCH derivation).
        checkpoint_period: iterations between checkpoints/validations (:func:`resolve_checkpoint_period`).
        amp: autocast settings (:func:`amp_settings`).
        log_period: iterations between log lines / metrics.jsonl rows.
        max_neg_fraction: ``SOLVER.MAX_NEG_PER_BATCH``.
        clip: (max_norm, norm_type) of full-model gradient clipping, or None.
        use_autostep: feed validation metrics to the scheduler (``SOLVER.USE_AUTOSTEP``).
        patience_limit: ``SOLVER.AUTO_TERMINATE_PATIENCE`` (-1: never).
        monitor_ema: validate the EMA weights (``SOLVER.USE_EMA_FOR_MONITOR``).
        output_dir: where metrics.jsonl / TensorBoard events go ("" for nowhere).
        use_tensorboard: also write TensorBoard events.
    """

    max_iter: int
    checkpoint_period: int
    amp: AmpSettings
    log_period: int = 20
    max_neg_fraction: float = 0.1
    clip: tuple[float, float] | None = None
    use_autostep: bool = False
    patience_limit: int = -1
    monitor_ema: bool = False
    output_dir: str = ""
    use_tensorboard: bool = False

    @classmethod
    def from_config(cls, cfg, device, checkpoint_period: int | None = None, log_period: int = 20,
                    use_tensorboard: bool = False) -> TrainSettings:
        """Reads SOLVER.* and OUTPUT_DIR; ``checkpoint_period`` None -> :func:`resolve_checkpoint_period`."""
        from maskrcnn_benchmark.solver import gradient_clip_settings

        max_iter = int(cfg.SOLVER.MAX_ITER)
        period = resolve_checkpoint_period(cfg, max_iter) if checkpoint_period is None else checkpoint_period
        return cls(max_iter=max_iter, checkpoint_period=max(1, int(period)), amp=amp_settings(cfg, device),
                   log_period=max(1, int(log_period)), max_neg_fraction=float(cfg.SOLVER.MAX_NEG_PER_BATCH),
                   clip=gradient_clip_settings(cfg), use_autostep=bool(cfg.SOLVER.USE_AUTOSTEP),
                   patience_limit=int(cfg.SOLVER.AUTO_TERMINATE_PATIENCE),
                   monitor_ema=bool(getattr(cfg.SOLVER, "USE_EMA_FOR_MONITOR", False)),
                   output_dir=cfg.OUTPUT_DIR or "", use_tensorboard=use_tensorboard)


class TrainLogWriter:
    """Rank-0 writer of ``metrics.jsonl`` (one JSON object per line) and optional TensorBoard scalars.

    Args:
        output_dir: folder of the files ("" / None: write nothing).
        use_tensorboard: also write TensorBoard events to ``output_dir/tensorboard``.
        start_iteration: the iteration training (re)starts from: rows and events after it, left by an
            interrupted run after its last checkpoint, are dropped so that no iteration is logged twice.
    """

    def __init__(self, output_dir: str | None, use_tensorboard: bool, start_iteration: int = 0):
        self.enabled = bool(output_dir) and is_main_process()
        self.path = os.path.join(output_dir, "metrics.jsonl") if self.enabled else None
        self.tb = None
        if self.enabled:
            os.makedirs(output_dir, exist_ok=True)
            self._drop_rows_after(start_iteration)
            if use_tensorboard:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(log_dir=os.path.join(output_dir, "tensorboard"),
                                        purge_step=start_iteration + 1 if start_iteration > 0 else None)

    def _drop_rows_after(self, iteration: int) -> None:
        if not os.path.isfile(self.path):
            return
        with open(self.path) as handle:
            lines = handle.read().splitlines()
        kept = []
        for line in lines:
            try:
                logged_at = int(json.loads(line)["iteration"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                continue  # a line cut short by a kill
            if logged_at <= iteration:
                kept.append(line)
        if len(kept) != len(lines):
            logger.info("%s: dropped %d row(s) after iteration %d (logged after the checkpoint resumed from)",
                        self.path, len(lines) - len(kept), iteration)
            atomic_write_text(self.path, "".join(line + "\n" for line in kept))

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


def _gradient_norm(model: nn.Module, clip: tuple[float, float] | None) -> float:
    """Total gradient norm; with ``clip`` = (max_norm, norm_type) the gradients are clipped to it too."""
    from maskrcnn_benchmark.solver import clip_gradients

    if clip is not None:
        return clip_gradients(model.parameters(), clip[0], clip[1])
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    return float(torch.nn.utils.get_total_norm(grads)) if grads else 0.0


def _first_bad_gradient(model: nn.Module) -> str:
    for name, param in model.named_parameters():
        if param.grad is not None and not bool(torch.isfinite(param.grad).all()):
            return name
    return "<none found>"


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
    """One training run; :func:`run_training` / :func:`do_train` are the public faces (arguments documented there)."""

    def __init__(self, *, model: nn.Module, state: TrainingState, data_loader, settings: TrainSettings,
                 checkpointer=None, device="cpu", validator: Validator | None = None,
                 on_nan: Callable[[int], None] | None = None):
        self.model = model
        self.state = state
        self.data_loader = data_loader
        self.settings = settings
        self.checkpointer = checkpointer
        self.device = torch.device(device)
        self.validator = validator
        self.on_nan = on_nan
        if settings.amp.needs_scaler and state.scaler is None:
            state.scaler = make_grad_scaler(settings.amp)
        self.scaler = state.scaler if settings.amp.needs_scaler else None
        self._grad_norm = 0.0  # of the last step
        self.meters = MetricLogger(delimiter="  ")
        self.writer = TrainLogWriter(settings.output_dir, settings.use_tensorboard, state.progress.iteration)

    @property
    def iteration(self) -> int:
        return self.state.progress.iteration

    # ---- checkpoints ----------------------------------------------------------------------------------
    def _save(self, name: str) -> None:
        self._stop_if(lambda: self.state.check_finite(f"iteration {self.iteration}: not writing {name}.pth "
                                                      f"(last_checkpoint keeps naming the last finite checkpoint)"))
        entries = self.state.resume_entries(rng_state=all_gather(get_rng_state()))
        if self.checkpointer is not None and is_main_process():
            self.checkpointer.save(name, **entries)
        synchronize()

    def _stop_if(self, check: Callable[[], None]) -> None:
        """Runs ``check``; on NonFiniteError calls ``on_nan`` (debug dump) and re-raises."""
        try:
            check()
        except NonFiniteError as error:
            logger.error("%s", error)
            if self.on_nan is not None:
                self.on_nan(self.iteration)
            raise

    # ---- one iteration --------------------------------------------------------------------------------
    def _train_step(self, batch) -> dict[str, float] | None:
        images, targets, positive_map = _batch_parts(batch)
        skip = _should_skip(targets, self.settings.max_neg_fraction)
        if all_reduce_max(1.0 if skip else 0.0) > 0:
            logger.info("iteration %d: skipping a batch with too many images without boxes (%d of %d empty here)",
                        self.iteration, sum(len(t) < 1 for t in targets), len(targets))
            return None
        loss_dict = _forward_losses(self.model, images, targets, positive_map, self.device, self.settings.amp)
        losses = sum(loss_dict.values())
        self._stop_if(lambda: self._check_loss(losses, loss_dict))
        self._optimizer_step(losses)
        if self.state.ema is not None:
            self.state.ema.update(unwrap_model(self.model))
        reduced = reduce_loss_dict(loss_dict)
        logged = {name: float(value) for name, value in reduced.items()}
        logged["loss"] = sum(logged.values())
        if self.settings.clip is not None:
            logged["grad_norm"] = self._grad_norm
        return logged

    def _check_loss(self, losses: torch.Tensor, loss_dict: dict[str, torch.Tensor]) -> None:
        finite = bool(torch.isfinite(losses).all())
        if get_world_size() > 1:  # every rank stops together, or the others would wait in backward forever
            finite = all_reduce_max(0.0 if finite else 1.0) == 0
        if finite:
            return
        terms = ", ".join(f"{name}={value.item():.6g}" for name, value in loss_dict.items())
        raise NonFiniteError(f"non-finite loss at iteration {self.iteration}: {terms}")

    def _optimizer_step(self, losses: torch.Tensor) -> None:
        """Backward, gradient norm (and clipping), optimizer and scheduler step."""
        optimizer = self.state.optimizer
        optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(losses).backward()
            self.scaler.unscale_(optimizer)
            self._grad_norm = _gradient_norm(self.model, self.settings.clip)
            self.scaler.step(optimizer)  # skips the step on inf/NaN gradients and lowers the scale
            self.scaler.update()
        else:
            losses.backward()
            self._grad_norm = _gradient_norm(self.model, self.settings.clip)
            self._stop_if(self._check_gradients)
            optimizer.step()
        self.state.scheduler.step()

    def _check_gradients(self) -> None:
        if math.isfinite(self._grad_norm):
            return
        raise NonFiniteError(f"non-finite gradient at iteration {self.iteration} (total norm {self._grad_norm}): "
                             f"first in {_first_bad_gradient(self.model)}; the weights were not updated")

    # ---- validation -----------------------------------------------------------------------------------
    def _validate(self) -> None:
        if self.validator is None:
            return
        progress = self.state.progress
        use_ema = self.settings.monitor_ema and self.state.ema is not None
        metric = self.validator(self.state.ema.module if use_ema else self.model, progress.iteration)
        self.model.train()
        if metric is None:
            logger.info("iteration %d: validation gave no primary metric", progress.iteration)
            return
        metric = float(metric)
        self.writer.write(progress.iteration, {"metric": metric}, prefix="val")
        if self.settings.use_autostep:
            _step_plateau(self.state.scheduler, metric)
        if progress.best_metric is None or metric > progress.best_metric:
            logger.info("iteration %d: new best validation metric %.4f (was %s)", progress.iteration, metric,
                        progress.best_metric)
            progress.best_metric = metric
            progress.patience = 0
            self._save("model_best")
        else:
            progress.patience += 1
            logger.info("iteration %d: validation metric %.4f, best %.4f, %d validation(s) without improvement",
                        progress.iteration, metric, progress.best_metric, progress.patience)
        if self.settings.patience_limit != -1 and progress.patience >= self.settings.patience_limit:
            logger.info("auto-termination at iteration %d: best metric %.4f", progress.iteration,
                        progress.best_metric)
            progress.terminated = True

    # ---- logging --------------------------------------------------------------------------------------
    def _log(self, logged: dict[str, float], start_time: float, start_iter: int, bar) -> None:
        lr = _current_lr(self.state.optimizer)
        self.meters.update(**logged)
        iteration, max_iter = self.iteration, self.settings.max_iter
        if bar is not None:
            shown = {k: f"{self.meters.meters[k].median:.3f}" for k in logged if k != "grad_norm"}
            shown["lr"] = f"{lr:.2e}"
            bar.set_postfix(shown, refresh=False)
        if iteration % self.settings.log_period == 0 or iteration == max_iter:
            done = iteration - start_iter
            seconds = (time.time() - start_time) / max(done, 1) * (max_iter - iteration)
            memory = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else 0.0
            logger.info("iter %d/%d  eta %s  %s  lr %.6g  max mem %.0f MB", iteration, max_iter,
                        datetime.timedelta(seconds=int(seconds)), self.meters, lr, memory)
            self.writer.write(iteration, {**self.meters.medians(logged.keys()), "lr": lr})

    # ---- the loop ---------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        progress, max_iter = self.state.progress, self.settings.max_iter
        start_iter = progress.iteration
        if progress.terminated or start_iter >= max_iter:
            logger.info("training already finished at iteration %d (terminated=%s)", start_iter, progress.terminated)
            self.writer.close()
            return self._summary()
        logger.info("start training at iteration %d of %d (world size %d)", start_iter, max_iter, get_world_size())
        self.model.train()
        iterator = iter(self.data_loader)
        self.state.restore_rng()
        bar = self._progress_bar(start_iter)
        start_time = time.time()
        try:
            self._loop(iterator, start_time, start_iter, bar)
        finally:
            if bar is not None:
                bar.close()
            self.writer.close()
        total = time.time() - start_time
        logger.info("training time %s (%.4f s / it)", datetime.timedelta(seconds=int(total)),
                    total / max(progress.iteration - start_iter, 1))
        return self._summary()

    def _loop(self, iterator, start_time: float, start_iter: int, bar) -> None:
        progress = self.state.progress
        while progress.iteration < self.settings.max_iter:
            try:
                batch = next(iterator)
            except StopIteration:
                logger.warning("the data loader ended at iteration %d before SOLVER.MAX_ITER %d",
                               progress.iteration, self.settings.max_iter)
                return
            logged = self._train_step(batch)
            progress.iteration += 1
            if bar is not None:
                bar.update(1)
            if logged is not None:
                self._log(logged, start_time, start_iter, bar)
            if self._end_of_period() and self._periodic() is False:
                return

    def _end_of_period(self) -> bool:
        return self.iteration % self.settings.checkpoint_period == 0 or self.iteration == self.settings.max_iter

    def _periodic(self) -> bool:
        """Validation + checkpoint; returns False when training must stop (auto-termination)."""
        self._validate()
        if self.state.progress.terminated:
            self._save("model_final")
            return False
        if self.iteration == self.settings.max_iter:
            self._save("model_final")
        elif self.iteration % self.settings.checkpoint_period == 0:
            self._save(f"model_{self.iteration:07d}")
        return True

    def _progress_bar(self, start_iter: int):
        if not is_main_process():
            return None
        from tqdm import tqdm

        return tqdm(total=self.settings.max_iter, initial=start_iter, desc="train", dynamic_ncols=True,
                    mininterval=1.0, leave=True)

    def _summary(self) -> dict[str, Any]:
        progress = self.state.progress
        return {
            "iteration": progress.iteration,
            "best_metric": progress.best_metric,
            "terminated": progress.terminated,
            "meters": {name: meter.global_avg for name, meter in self.meters.meters.items()},
        }


def run_training(model: nn.Module, state: TrainingState, data_loader, settings: TrainSettings, *,
                 checkpointer=None, device="cpu", validator: Validator | None = None,
                 on_nan: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Train until ``settings.max_iter`` (or auto-termination), resuming from ``state``; see the module docstring.

    Args:
        model: the detector as trained (optionally DDP-wrapped; ``unwrap_model(model)`` is ``state.model``'s
            inner model); in train mode it returns a dict of scalar losses.
        state: optimizer, scheduler, EMA, scaler, counters and pending RNG states (restored from a checkpoint
            when resuming); its counters advance in place.
        data_loader: yields ``(images: ImageList, targets: list[BoxList], ids, positive_map[N, L] | None, ...)``,
            starting at batch ``state.progress.iteration`` (the loader is built with that ``start_iter``).
        settings: the loop's settings (:meth:`TrainSettings.from_config`).
        checkpointer: object with ``save(name, **entries)`` (``DetectronCheckpointer``); None saves nothing.
        device: where batches go.
        validator: ``validator(model, iteration) -> float | None``, higher is better; None disables validation.
        on_nan: called with the iteration before a non-finite loss, gradient or weight stops training (e.g. to
            save a debug copy of the weights).

    Returns:
        dict with the final "iteration", "best_metric", "terminated" and the global-average "meters".

    Raises:
        NonFiniteError: (a FloatingPointError) the loss, the gradients (without a GradScaler) or the weights at
            a save became NaN or infinite; the message names the iteration and the loss terms or first tensor.
    """
    return _Trainer(model=model, state=state, data_loader=data_loader, settings=settings, checkpointer=checkpointer,
                    device=device, validator=validator, on_nan=on_nan).run()


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
    """Upstream's entry point: :func:`run_training` with the state built from these arguments.

    Args:
        cfg: the config (reads SOLVER.*, OUTPUT_DIR; see :meth:`TrainSettings.from_config`).
        model, data_loader, checkpointer, device, validator, on_nan: as :func:`run_training`.
        optimizer, scheduler: torch optimizer and per-iteration LR scheduler, already restored when resuming.
        checkpoint_period: iterations between checkpoints/validations (:func:`resolve_checkpoint_period`).
        arguments: ``{"iteration": 0}`` or the entries a resumed checkpoint holds besides model/optimizer/
            scheduler (``DetectronCheckpointer.load``'s result): counters, "rng_state", "model_ema", "scaler".
            Updated in place with the final counters.
        model_ema: object with ``update(model)``, ``state_dict()``, ``load_state_dict()`` and ``module``.
        log_period: iterations between log lines / metrics.jsonl rows.
        use_tensorboard: also write TensorBoard events to ``OUTPUT_DIR/tensorboard``.

    Returns:
        as :func:`run_training`.
    """
    settings = TrainSettings.from_config(cfg, device, checkpoint_period=checkpoint_period, log_period=log_period,
                                         use_tensorboard=use_tensorboard)
    state = TrainingState(model, optimizer, scheduler, ema=model_ema, scaler=make_grad_scaler(settings.amp),
                          config=cfg)
    state.restore_loop(arguments)
    summary = run_training(model, state, data_loader, settings, checkpointer=checkpointer, device=device,
                           validator=validator, on_nan=on_nan)
    arguments.update(state.progress.entries())
    return summary
