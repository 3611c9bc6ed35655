"""The training state: every part of a run that a checkpoint carries, written and read back here only.

A training checkpoint keeps upstream's keys, so upstream code (and our older files) read it as before::

    {"model": state_dict,                    # the unwrapped model: no "module." / "_orig_mod." keys
     "optimizer": ..., "scheduler": ...,
     "iteration": int,                       # batches consumed, skipped ones included
     "model_ema": state_dict,                # when SOLVER.MODEL_EMA > 0 (same keys as "model")
     "scaler": ...,                          # when a float16 GradScaler is in use
     "best_metric": float | None, "patience": int, "terminated": bool,
     "rng_state": [per rank: {"python", "numpy", "torch"[, "cuda"]}],   # or one dict (single saves)
     "config": str}                          # YAML of the config that built the run

:class:`TrainingState` holds the live objects (model, optimizer, scheduler, EMA, scaler), the loop's counters
(:class:`TrainProgress`) and the RNG states still to restore. :meth:`TrainingState.to_checkpoint` builds the dict
above; :meth:`TrainingState.restore` puts a resumed checkpoint back, except the model weights, which
``DetectronCheckpointer.load`` reads through the key map (any kind of file) before calling it. RNG states are
restored by :meth:`TrainingState.restore_rng` where the loop starts, after its data-loader iterator exists
(creating that iterator draws from torch's generator), so a resumed run draws what an uninterrupted one does.

Nothing non-finite is saved: :func:`check_finite_weights` runs before every write and raises
:class:`NonFiniteError` naming the first NaN/inf tensor. A resumed optimizer whose parameter groups no longer
fit the config raises :class:`OptimizerMismatchError` naming the config keys that changed the groups.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import yaml
from torch import nn

from maskrcnn_benchmark.utils.distributed import get_rank, unwrap_model
from maskrcnn_benchmark.utils.miscellaneous import get_rng_state, set_rng_state
from maskrcnn_benchmark.utils.model_serialization import strip_prefix_if_present

__all__ = [
    "TrainProgress",
    "TrainingState",
    "NonFiniteError",
    "OptimizerMismatchError",
    "non_finite_tensors",
    "check_finite_weights",
    "FRESH_OPTIMIZER_HINT",
]

logger = logging.getLogger(__name__)

#: How a user resumes the weights with a fresh optimizer (quoted by error messages and the README).
FRESH_OPTIMIZER_HINT = ("relaunch with --skip_optimizer_resume (tools/train_net.py, tools/finetune.py) to keep the "
                        "weights, EMA and iteration with a fresh optimizer whose schedule continues at that iteration")

# Config keys that decide the optimizer's parameter groups (solver/build.py make_optimizer and the freezing
# switches that decide which parameters train at all).
_GROUP_SOLVER_KEYS = ("SOLVER.OPTIMIZER", "SOLVER.BASE_LR", "SOLVER.LANG_LR", "SOLVER.BACKBONE_BODY_LR_FACTOR",
                      "SOLVER.BIAS_LR_FACTOR", "SOLVER.WEIGHT_DECAY", "SOLVER.WEIGHT_DECAY_BIAS",
                      "SOLVER.WEIGHT_DECAY_NORM_FACTOR", "SOLVER.TUNING_HIGHLEVEL_OVERRIDE")
_GROUP_KEY_NAMES = ("LINEAR_PROB", "ADD_LINEAR_LAYER")


class NonFiniteError(FloatingPointError):
    """Training produced NaN or infinity (in the loss, the gradients or the weights); nothing was saved."""


class OptimizerMismatchError(ValueError):
    """A resumed optimizer state does not fit the parameter groups the current config builds."""


@dataclass
class TrainProgress:
    """The training loop's counters, saved beside the weights.

    Attributes:
        iteration: batches consumed (skipped ones included), so the sampler restarts at the right batch.
        best_metric: best validation metric so far (higher is better), None before the first validation.
        patience: validations since the last improvement (``SOLVER.AUTO_TERMINATE_PATIENCE``).
        terminated: auto-termination happened; a relaunch does not train again.
    """

    iteration: int = 0
    best_metric: float | None = None
    patience: int = 0
    terminated: bool = False

    @classmethod
    def from_entries(cls, entries: Mapping[str, Any]) -> TrainProgress:
        """Reads the counters of a checkpoint dict (missing ones take their defaults)."""
        best = entries.get("best_metric")
        return cls(iteration=int(entries.get("iteration", 0)), best_metric=None if best is None else float(best),
                   patience=int(entries.get("patience", 0)), terminated=bool(entries.get("terminated", False)))

    def entries(self) -> dict[str, Any]:
        """The counters as checkpoint entries."""
        return asdict(self)


def non_finite_tensors(state_dict: Mapping[str, torch.Tensor]) -> list[str]:
    """The keys of the floating-point tensors holding a NaN or an infinite value, in the state dict's order.

    The one such check: before every save here, and when weights are loaded to run a model
    (``engine/weights.load_inference_weights``).
    """
    return [key for key, value in state_dict.items()
            if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all())]


def check_finite_weights(data: Mapping[str, Any], context: str) -> None:
    """Raises :class:`NonFiniteError` when ``data["model"]`` or ``data["model_ema"]`` holds NaN/inf.

    Args:
        data: a checkpoint dict (:meth:`TrainingState.to_checkpoint`).
        context: what was about to happen, for the message (e.g. "iteration 5: not writing model_0000005.pth").
    """
    for entry in ("model", "model_ema"):
        weights = data.get(entry)
        if not isinstance(weights, Mapping):
            continue
        bad = non_finite_tensors(weights)
        if bad:
            raise NonFiniteError(f"{context}: {len(bad)} of {len(weights)} {entry} tensors are NaN or infinite, "
                                 f"first {bad[0]}")


@dataclass(eq=False)
class TrainingState:
    """Everything a training run saves and resumes (see the module docstring for the file layout).

    Attributes:
        model: the model (possibly DDP-wrapped; saved unwrapped).
        optimizer, scheduler: torch optimizer and per-iteration LR scheduler, or None.
        ema: a ``ModelEMA`` (``state_dict``, ``load_state_dict``, ``set_from``, ``module``), or None.
        scaler: a float16 ``torch.amp.GradScaler``, or None.
        config: the run's config (saved as YAML text, compared with a resumed checkpoint's), or None.
        progress: the loop's counters.
        pending_rng: RNG states read from a checkpoint, waiting for :meth:`restore_rng`.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer | None = None
    scheduler: Any = None
    ema: Any = None
    scaler: Any = None
    config: Any = None
    progress: TrainProgress = field(default_factory=TrainProgress)
    pending_rng: Any = None

    # ---- saving -----------------------------------------------------------------------------------------
    def resume_entries(self, rng_state: Any = None) -> dict[str, Any]:
        """Everything but model/optimizer/scheduler (what a loop hands to ``checkpointer.save(name, **entries)``).

        Args:
            rng_state: the RNG states to store (the loop passes one per rank); None -> this process's states.
        """
        entries = self.progress.entries()
        entries["rng_state"] = get_rng_state() if rng_state is None else rng_state
        if self.ema is not None:
            entries["model_ema"] = self.ema.state_dict()
        if self.scaler is not None:
            entries["scaler"] = self.scaler.state_dict()
        if hasattr(self.config, "dump"):
            entries["config"] = self.config.dump()
        return entries

    def to_checkpoint(self, rng_state: Any = None) -> dict[str, Any]:
        """The whole checkpoint dict (upstream's keys plus :meth:`resume_entries`)."""
        data: dict[str, Any] = {"model": unwrap_model(self.model).state_dict()}
        if self.optimizer is not None:
            data["optimizer"] = self.optimizer.state_dict()
        if self.scheduler is not None:
            data["scheduler"] = self.scheduler.state_dict()
        data.update(self.resume_entries(rng_state))
        return data

    def check_finite(self, context: str) -> None:
        """Raises :class:`NonFiniteError` when the model or EMA weights hold NaN/inf (see check_finite_weights)."""
        data = {"model": unwrap_model(self.model).state_dict()}
        if self.ema is not None:
            data["model_ema"] = self.ema.state_dict()
        check_finite_weights(data, context)

    # ---- restoring --------------------------------------------------------------------------------------
    def restore(self, checkpoint: Mapping[str, Any], source: str, restore_optimizer: bool = True) -> None:
        """Puts a resumed checkpoint back (all but the model weights, which the checkpointer loads first).

        Args:
            checkpoint: the file's dict.
            source: the file, for messages.
            restore_optimizer: False -> keep the fresh optimizer and scheduler, the schedule fast-forwarded to
                the resumed iteration (``--skip_optimizer_resume``).

        Raises:
            OptimizerMismatchError: the saved optimizer's parameter groups do not fit the current ones.
        """
        self.restore_loop(checkpoint)
        if self.ema is not None and "model_ema" not in checkpoint:
            logger.warning("%s has no model_ema; EMA restarts from the loaded weights", source)
            self.restart_ema()
        if self.scaler is not None and "scaler" not in checkpoint:
            logger.warning("%s has no scaler state; the AMP scaler starts fresh", source)
        if restore_optimizer:
            self._restore_optimizer(checkpoint, source)
        else:
            self._continue_schedule(source)

    def restore_loop(self, entries: Mapping[str, Any]) -> None:
        """Counters, pending RNG states, and the EMA / scaler states that ``entries`` holds."""
        self.progress = TrainProgress.from_entries(entries)
        if entries.get("rng_state") is not None:
            self.pending_rng = entries["rng_state"]
        if self.ema is not None and entries.get("model_ema") is not None:
            self.ema.load_state_dict(strip_prefix_if_present(entries["model_ema"], "module."))
        if self.scaler is not None and entries.get("scaler"):
            self.scaler.load_state_dict(entries["scaler"])

    def restart_ema(self) -> None:
        """Resets the EMA to the model's current weights (after loading initial weights or an EMA-less file)."""
        if self.ema is not None and hasattr(self.ema, "set_from"):
            self.ema.set_from(unwrap_model(self.model))

    def restore_rng(self) -> None:
        """Applies the pending RNG states (this rank's entry of a per-rank list) once; no-op without any."""
        state, self.pending_rng = self.pending_rng, None
        if state is None:
            return
        if isinstance(state, (list, tuple)):
            state = state[get_rank()] if get_rank() < len(state) else state[0]
        set_rng_state(state)

    def _restore_optimizer(self, checkpoint: Mapping[str, Any], source: str) -> None:
        if self.optimizer is not None:
            if "optimizer" in checkpoint:
                self._check_groups(checkpoint["optimizer"], checkpoint.get("config"), source)
                self.optimizer.load_state_dict(checkpoint["optimizer"])
                logger.info("restored optimizer state from %s", source)
            else:
                logger.warning("%s has no optimizer state; it starts fresh", source)
        if self.scheduler is not None:
            if "scheduler" in checkpoint:
                self.scheduler.load_state_dict(checkpoint["scheduler"])
                logger.info("restored scheduler state from %s", source)
            else:
                logger.warning("%s has no scheduler state; it starts fresh", source)
        changed = _changed_group_keys(checkpoint.get("config"), self.config)
        if changed and self.optimizer is not None and "optimizer" in checkpoint:
            logger.warning("%s: %s changed since this checkpoint; the resumed optimizer keeps the checkpoint's "
                           "learning rates and weight decays (%s)", source, ", ".join(changed), FRESH_OPTIMIZER_HINT)

    def _continue_schedule(self, source: str) -> None:
        """Fresh optimizer; the schedule is stepped to the resumed iteration (as if the run had used it all along)."""
        iteration = self.progress.iteration
        logger.info("%s: resuming the weights at iteration %d with a fresh optimizer (optimizer state not restored)",
                    source, iteration)
        if self.scheduler is None:
            return
        with warnings.catch_warnings():  # torch warns about scheduler steps before any optimizer step
            warnings.simplefilter("ignore", UserWarning)
            for _ in range(iteration):
                self.scheduler.step()

    def _check_groups(self, saved: Mapping[str, Any], saved_config: str | None, source: str) -> None:
        problem = _group_mismatch(saved.get("param_groups", []), self.optimizer.param_groups)
        if problem is None:
            return
        changed = _changed_group_keys(saved_config, self.config)
        if changed:
            keys = "config keys that change the groups and differ from the checkpoint's config: " + ", ".join(changed)
        elif saved_config is None:
            keys = "this checkpoint does not record its config, so the changed keys are unknown"
        else:
            keys = ("no optimizer key differs from the checkpoint's config (the model's trainable parameters "
                    "changed)")
        raise OptimizerMismatchError(f"{source}: its optimizer state does not fit the optimizer this config builds "
                                     f"({problem}); {keys}; {FRESH_OPTIMIZER_HINT}")


def _describe_groups(groups) -> str:
    parts = [f"lr {group.get('initial_lr', group.get('lr'))}/wd {group.get('weight_decay')}: "
             f"{len(group['params'])} tensors" for group in groups]
    return "[" + ", ".join(parts) + "]"


def _group_mismatch(saved_groups, current_groups) -> str | None:
    """None when the saved param groups fit the current ones (count, sizes and, when recorded, names)."""
    description = (f"checkpoint: {len(saved_groups)} group(s) {_describe_groups(saved_groups)}, config: "
                   f"{len(current_groups)} group(s) {_describe_groups(current_groups)}")
    if len(saved_groups) != len(current_groups):
        return description
    for saved, current in zip(saved_groups, current_groups):
        if len(saved["params"]) != len(current["params"]):
            return description
        if "names" in saved and "names" in current and list(saved["names"]) != list(current["names"]):
            return description
    return None


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(node, Mapping):
        return {prefix: node}
    out: dict[str, Any] = {}
    for key, value in node.items():
        out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _changed_group_keys(saved_config: str | None, config: Any) -> list[str]:
    """``KEY (old -> new)`` for each group-deciding key that differs between a saved config and ``config``."""
    if not saved_config or not hasattr(config, "dump"):
        return []
    try:
        old = _flatten(yaml.safe_load(saved_config))
    except yaml.YAMLError:
        logger.warning("the checkpoint's config is not readable YAML; not comparing configs")
        return []
    new = _flatten(yaml.safe_load(config.dump()))
    changed = []
    for key in sorted(set(old) | set(new)):
        last = key.rsplit(".", 1)[-1]
        deciding = key in _GROUP_SOLVER_KEYS or "FREEZE" in last or last in _GROUP_KEY_NAMES
        if deciding and old.get(key) != new.get(key):
            changed.append(f"{key} ({old.get(key)!r} -> {new.get(key)!r})")
    return changed
