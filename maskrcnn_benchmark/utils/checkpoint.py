"""Reading checkpoint files safely and the training checkpointer.

* :func:`load_checkpoint_file` reads ``.pth`` / ``.pt`` / ``.bin`` with ``torch.load(weights_only=True)``
  and ``.safetensors`` with the ``safetensors`` package. A file that needs Python pickle (arbitrary code)
  is refused with an explanation and the command that converts it
  (``python -m maskrcnn_benchmark.utils.checkpoint convert IN OUT``).
* :func:`load_checkpoint` puts a file's weights into a model through the explicit key map of
  :mod:`maskrcnn_benchmark.utils.key_map` (upstream training checkpoints with or without ``module.``,
  their ``model_ema``; coarse-stage, Swin ImageNet and roberta-base files) and logs a grouped report.
* :class:`DetectronCheckpointer` (upstream's name, kept for users' scripts) saves atomically (temporary
  file + ``os.replace``) with upstream's key layout, never a file with NaN/inf weights, keeps the
  ``last_checkpoint`` pointer and resumes a run. What a training checkpoint holds (model, EMA, optimizer,
  scheduler, AMP scaler, counters, RNG states, config) and how a resume puts it back is
  :class:`maskrcnn_benchmark.utils.training_state.TrainingState`, the one place for both.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import pickle
import re
import struct
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from maskrcnn_benchmark.utils.atomic_io import atomic_torch_save, atomic_write_text, remove_stale_temp_files
from maskrcnn_benchmark.utils.cli_errors import add_debug_argument, report_user_errors
from maskrcnn_benchmark.utils.miscellaneous import get_rng_state, set_rng_state
from maskrcnn_benchmark.utils.model_serialization import (
    CheckpointMismatchError,
    LoadReport,
    load_state_dict,
    strip_prefix_if_present,
)
from maskrcnn_benchmark.utils.training_state import (
    NonFiniteError,
    OptimizerMismatchError,
    TrainingState,
    check_finite_weights,
)

__all__ = [
    "CheckpointMismatchError",
    "UnsafeCheckpointError",
    "NonFiniteError",
    "OptimizerMismatchError",
    "load_checkpoint_file",
    "extract_state_dict",
    "load_checkpoint",
    "get_rng_state",
    "set_rng_state",
    "DetectronCheckpointer",
    "Checkpointer",
]

logger = logging.getLogger(__name__)

class UnsafeCheckpointError(ValueError):
    """A checkpoint file needs Python pickle (arbitrary code) to be read."""


# ---------------------------------------------------------------------------------------------------
# Reading and writing files
# ---------------------------------------------------------------------------------------------------


def _convert_command(path: str) -> str:
    return f"python -m maskrcnn_benchmark.utils.checkpoint convert {path} {os.path.splitext(path)[0]}_safe.pth"


# torch.save's two formats: a zip archive, or (before torch 1.6) a pickle that starts with a magic number.
_ZIP_MAGIC = b"PK\x03\x04"
_LEGACY_MAGIC = b"\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"  # pickled first, after the protocol header
# What torch.load raises on a damaged file of the right format (found by fuzzing the two formats).
_DAMAGED_FILE_ERRORS = (RuntimeError, EOFError, ValueError, KeyError, IndexError, AssertionError, TypeError,
                        AttributeError, OverflowError, struct.error, zipfile.BadZipFile, MemoryError)
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
_UNSUPPORTED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


def _torch_reason(error: BaseException) -> str:
    """The informative part of torch's message (after "WeightsUnpickler error:" when present), one line,
    without ANSI escape codes, at most 300 characters."""
    text = _ANSI_ESCAPE.sub("", str(error))
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text.split(marker, 1)[1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[0] if lines else type(error).__name__)[:300]


def _names_an_installed_global(reason: str) -> bool:
    """True when torch refused a real Python object (``Unsupported global: GLOBAL numpy.core...``).

    A damaged file can also name a "global", made of garbage: only a name whose top-level module is
    installed counts (found with ``importlib.util.find_spec``, which imports nothing).
    """
    match = _UNSUPPORTED_GLOBAL.search(reason)
    if match is None:
        return False
    top = match.group(1).split(".")[0]
    try:
        return bool(top.isidentifier() and importlib.util.find_spec(top) is not None)
    except (ImportError, ValueError):
        return False


def _short_global_reason(reason: str) -> str:
    match = _UNSUPPORTED_GLOBAL.search(reason)
    return f"the file needs the Python object {match.group(1)}" if match else reason


def _check_torch_file_format(path: str) -> None:
    """Refuses, with the reason, a file that is not in either format torch.save writes."""
    with open(path, "rb") as handle:
        head = handle.read(32)
    if not head:
        raise ValueError(f"{path}: not a readable torch checkpoint (the file is empty)")
    is_pickle = head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")
    if head.startswith(_ZIP_MAGIC) or (is_pickle and _LEGACY_MAGIC in head):
        return
    if is_pickle:
        kind = "a plain Python pickle, not a file written by torch.save"
    elif head.lstrip()[:1] in (b"{", b"["):
        kind = "it looks like JSON text"
    else:
        kind = "neither a torch zip archive nor a legacy torch file"
    raise ValueError(f"{path}: not a readable torch checkpoint ({kind}; first bytes {head[:8]!r})")


def load_checkpoint_file(path: str, map_location: str = "cpu") -> dict[str, Any]:
    """Reads a checkpoint file without executing pickled code.

    Args:
        path: ``.pth`` / ``.pt`` / ``.bin`` (torch zip or legacy format) or ``.safetensors``.
        map_location: device for the tensors.

    Returns:
        The file's top-level dict (a safetensors file gives its flat tensor dict).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        UnsafeCheckpointError: the file needs pickle for objects other than tensors and plain containers.
        ValueError: an unsupported scheme (URL, ``catalog://``), a directory, or a file that is not a readable
            torch checkpoint (empty, random bytes, damaged, another format): "<path>: not a readable torch
            checkpoint (...)".
    """
    path = os.fspath(path)
    if "://" in path:
        raise ValueError(f"{path}: URLs and catalog:// names are not fetched (no network at run time); "
                         f"download the file and pass its local path")
    if os.path.isdir(path):
        raise ValueError(f"{path}: is a directory, not a checkpoint file")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint file {path} does not exist")
    if path.endswith(".safetensors"):
        try:
            from safetensors import SafetensorError
            from safetensors.torch import load_file
        except ImportError as e:  # pragma: no cover - transformers depends on safetensors
            raise ImportError(f"{path}: reading .safetensors needs the 'safetensors' package") from e
        try:
            return dict(load_file(path, device=map_location))
        except SafetensorError as e:
            raise ValueError(f"{path}: not a readable safetensors file ({e})") from e
    if path.endswith(".pkl"):
        raise UnsafeCheckpointError(
            f"{path}: Caffe2/Detectron .pkl weights are not supported (they are pickles and no FIBER config "
            f"uses them)")
    _check_torch_file_format(path)
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        reason = _torch_reason(e)
        if not _names_an_installed_global(reason):
            raise ValueError(
                f"{path}: not a readable torch checkpoint (torch's weights-only reader: {reason}). The file is "
                f"damaged, or uses a pickle feature that reader lacks; if it is intact and you trust it, "
                f"converting it may work:\n    {_convert_command(path)}") from e
        raise UnsafeCheckpointError(
            f"{path}: refused to load. The file stores Python objects that only pickle can rebuild, and "
            f"unpickling can run arbitrary code, so it is read with torch.load(weights_only=True). "
            f"Reason given by torch: {_short_global_reason(reason)}. If you trust the file, convert it once "
            f"into a weights-only copy:\n    {_convert_command(path)}"
        ) from e
    except _DAMAGED_FILE_ERRORS as e:
        raise ValueError(f"{path}: not a readable torch checkpoint (the file is damaged: "
                         f"{type(e).__name__}: {_torch_reason(e)})") from e
    if isinstance(data, Mapping):
        return dict(data)
    raise ValueError(f"{path}: expected a dict at the top level of the checkpoint, got {type(data).__name__}")


# ---------------------------------------------------------------------------------------------------
# State dicts inside files
# ---------------------------------------------------------------------------------------------------


def extract_state_dict(checkpoint: Mapping[str, Any], use_ema: bool = False, source: str = "checkpoint"
                       ) -> OrderedDict[str, torch.Tensor]:
    """Finds the model weights inside a loaded checkpoint dict.

    Handles ``{"model": ...}`` (ours, upstream's, Swin ImageNet's), ``{"state_dict": ...}``
    (PyTorch Lightning, the coarse stage), ``{"model_ema": ...}`` with ``use_ema`` and bare state dicts.
    A leading ``module.`` on every key is removed.

    Raises:
        KeyError: ``use_ema`` and the file has no ``model_ema`` (message lists the file's entries).
        ValueError: no state dict found.
    """
    if use_ema:
        if "model_ema" not in checkpoint:
            raise KeyError(f"{source}: no 'model_ema' entry (EMA weights) in this file; it has "
                           f"{sorted(checkpoint)[:10]}")
        sd = checkpoint["model_ema"]
    elif isinstance(checkpoint.get("model"), Mapping):
        sd = checkpoint["model"]
    elif isinstance(checkpoint.get("state_dict"), Mapping):
        sd = checkpoint["state_dict"]
    elif checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        sd = checkpoint
    else:
        raise ValueError(f"{source}: found no model weights ('model', 'state_dict' or a flat tensor dict); "
                         f"top-level entries: {sorted(checkpoint)[:10]}")
    if isinstance(sd, Mapping) and "state_dict" in sd and isinstance(sd["state_dict"], Mapping):
        sd = sd["state_dict"]
    return strip_prefix_if_present(sd, "module.")


def load_checkpoint(model: torch.nn.Module, path: str, use_ema: bool = False, kind: str | None = None,
                    strict: bool = False) -> LoadReport:
    """Loads the weights of ``path`` into ``model`` and returns (and logs) the key report.

    Args:
        model: the model (a DDP wrapper is unwrapped).
        path: checkpoint file (any kind in :data:`maskrcnn_benchmark.utils.key_map.FILE_KINDS`).
        use_ema: load the ``model_ema`` entry instead of ``model``.
        kind: force the file kind instead of detecting it.
        strict: raise :class:`CheckpointMismatchError` unless the report is clean.
    """
    checkpoint = load_checkpoint_file(path)
    state_dict = extract_state_dict(checkpoint, use_ema=use_ema, source=path)
    source = f"{path} [{'model_ema' if use_ema else 'weights'}]"
    return load_state_dict(model, state_dict, kind=kind, source=source, strict=strict)


# ---------------------------------------------------------------------------------------------------
# The checkpointer
# ---------------------------------------------------------------------------------------------------


class DetectronCheckpointer:
    """Saves and restores training state; upstream's class name and main calls are kept.

    What a checkpoint holds, and how a resume puts it back, is
    :class:`maskrcnn_benchmark.utils.training_state.TrainingState` (``self.state``); this class finds files
    (``last_checkpoint``), reads model weights of any kind through the key map, and writes atomically.

    Args:
        cfg: the run's config (saved in each checkpoint as YAML, compared with it on resume), or None.
        model: the model (DDP-wrapped or not; saved unwrapped).
        optimizer, scheduler: saved/restored when given.
        save_dir: folder of checkpoints and of the ``last_checkpoint`` pointer.
        save_to_disk: False on non-zero ranks (then :meth:`save` does nothing).
        logger: accepted for upstream's signature and ignored (this module logs through ``logging``).
        ema: a :class:`maskrcnn_benchmark.solver.ema.ModelEMA` (or anything with ``state_dict`` /
            ``load_state_dict``), saved as ``model_ema``.
        scaler: an AMP ``GradScaler``, saved as ``scaler``.
    """

    def __init__(self, cfg=None, model: torch.nn.Module | None = None, optimizer=None, scheduler=None,
                 save_dir: str = "", save_to_disk: bool | None = True, logger=None, ema=None, scaler=None):
        if model is None:
            raise TypeError("DetectronCheckpointer needs a model")
        self.cfg = cfg
        self.state = TrainingState(model, optimizer, scheduler, ema=ema, scaler=scaler, config=cfg)
        self.save_dir = save_dir
        self.save_to_disk = bool(save_to_disk) if save_to_disk is not None else True
        self.last_report: LoadReport | None = None
        self._temp_files_checked = False

    model = property(lambda self: self.state.model, doc="the model (as given; saved unwrapped)")
    optimizer = property(lambda self: self.state.optimizer, doc="the optimizer or None")
    scheduler = property(lambda self: self.state.scheduler, doc="the LR scheduler or None")
    ema = property(lambda self: self.state.ema, doc="the EMA or None")
    scaler = property(lambda self: self.state.scaler, doc="the AMP GradScaler or None")

    # -- saving --------------------------------------------------------------------------------------

    def checkpoint_data(self, **extra: Any) -> dict[str, Any]:
        """The dict :meth:`save` writes: ``self.state.to_checkpoint()`` updated with ``extra``.

        The training loop passes its per-rank ``rng_state`` and counters in ``extra``; its values win.
        """
        data = self.state.to_checkpoint(rng_state=extra.pop("rng_state", None))
        data.update(extra)
        return data

    def save(self, name: str, **extra: Any) -> str | None:
        """Writes ``<save_dir>/<name>.pth`` atomically and points ``last_checkpoint`` at it.

        Temporary files that interrupted saves of this folder left behind (``.<name>.pth.<random>.tmp``) are
        removed before the first save.

        Args:
            name: file name without ``.pth`` (e.g. ``model_0002500``, ``model_final``, ``model_best``).
            **extra: more entries (``iteration=...``, ``best_metric=...``); must be tensors or plain values.

        Returns:
            The written path, or None when this rank does not save.

        Raises:
            NonFiniteError: the model or EMA weights hold NaN/inf (nothing is written, the pointer is kept).
        """
        if not self.save_dir or not self.save_to_disk:
            return None
        path = os.path.join(self.save_dir, f"{name}.pth")
        data = self.checkpoint_data(**extra)
        iteration = data.get("iteration")
        check_finite_weights(data, f"{'' if iteration is None else f'iteration {iteration}: '}not writing {path}")
        if not self._temp_files_checked:
            remove_stale_temp_files(self.save_dir, ("*.pth", "last_checkpoint"))
            self._temp_files_checked = True
        atomic_torch_save(data, path)
        self.tag_last_checkpoint(path)
        logger.info("saved checkpoint %s", path)
        return path

    def tag_last_checkpoint(self, path: str) -> None:
        """Atomically writes the ``last_checkpoint`` pointer (the file name, relative to ``save_dir``)."""
        target = os.path.relpath(os.path.abspath(path), os.path.abspath(self.save_dir))
        atomic_write_text(os.path.join(self.save_dir, "last_checkpoint"), target)

    # -- finding -------------------------------------------------------------------------------------

    def has_checkpoint(self) -> bool:
        """True when ``last_checkpoint`` exists and names an existing file."""
        return bool(self.save_dir) and self.get_checkpoint_file() != ""

    def get_checkpoint_file(self) -> str:
        """Path of the last saved checkpoint, or "" when there is none."""
        pointer = os.path.join(self.save_dir, "last_checkpoint")
        try:
            with open(pointer) as handle:
                name = handle.read().strip()
        except FileNotFoundError:
            return ""
        if not name:
            return ""
        candidates = [name if os.path.isabs(name) else os.path.join(self.save_dir, name),
                      os.path.join(self.save_dir, os.path.basename(name))]
        for candidate in candidates:
            if os.path.isfile(candidate):
                return candidate
        logger.warning("%s names %s, which does not exist; ignoring it", pointer, name)
        return ""

    # -- loading -------------------------------------------------------------------------------------

    def load(self, f: str | None = None, force: bool = False, keyword: str = "model",
             skip_optimizer: bool = False, use_ema: bool = False, resume: bool | None = None,
             strict: bool = False, kind: str | None = None, use_latest: bool = True) -> dict[str, Any]:
        """Loads weights (and, when resuming, the training state).

        Without ``force``, an existing ``last_checkpoint`` in ``save_dir`` wins over ``f`` (automatic
        resume, as upstream).

        Args:
            f: checkpoint path (any supported kind); None / "" -> only resume if possible.
            force: load ``f`` even when ``last_checkpoint`` exists.
            keyword: ``"model"`` or ``"model_ema"`` (upstream's argument).
            skip_optimizer: when resuming, keep the fresh optimizer and scheduler (the schedule is stepped to the
                resumed iteration): resumes the weights after a config change of the parameter groups.
            use_ema: load the EMA weights (same as ``keyword="model_ema"``).
            resume: restore the training state (``self.state.restore``: optimizer, scheduler, EMA, scaler,
                counters; the RNG states wait for ``self.state.restore_rng()``, which the training loop calls
                once its data-loader iterator exists); None -> True exactly when the file came from
                ``last_checkpoint``. Without it, an EMA restarts from the loaded weights.
            strict: raise :class:`CheckpointMismatchError` unless every key fits.
            kind: force the file kind (see :mod:`maskrcnn_benchmark.utils.key_map`).
            use_latest: consider ``last_checkpoint`` at all.

        Returns:
            The checkpoint's other entries (``iteration``, ``best_metric``, ``model_ema``, ``scaler``,
            ``rng_state``, user extras) as a dict; empty when nothing was loaded.

        Raises:
            OptimizerMismatchError: resuming, and the saved optimizer's parameter groups do not fit the
                optimizer's (the message names the config keys that changed them and the way out).
        """
        from_pointer = False
        if use_latest and not force and self.has_checkpoint():
            f = self.get_checkpoint_file()
            from_pointer = True
        if not f:
            logger.info("no checkpoint found; the model keeps its initial weights")
            return {}
        if resume is None:
            resume = from_pointer
        use_ema = use_ema or keyword == "model_ema"
        logger.info("loading checkpoint from %s%s", f, " (resuming)" if resume else "")
        checkpoint = load_checkpoint_file(f)
        state_dict = extract_state_dict(checkpoint, use_ema=use_ema, source=f)
        self.last_report = load_state_dict(self.model, state_dict, kind=kind, strict=strict,
                                           source=f"{f} [{'model_ema' if use_ema else 'model'}]")
        if resume:
            self.state.restore(checkpoint, f, restore_optimizer=not skip_optimizer)
        else:
            self.state.restart_ema()  # the EMA follows the newly loaded weights
        # Upstream returns the file's other entries; model_ema / scaler / rng_state stay in them.
        consumed = {"model", "optimizer", "scheduler", "state_dict"}
        return {k: v for k, v in checkpoint.items() if k not in consumed}


#: Short alias.
Checkpointer = DetectronCheckpointer


# ---------------------------------------------------------------------------------------------------
# Command line: inspect / convert
# ---------------------------------------------------------------------------------------------------


_DROP = object()


def _to_plain(obj: Any, path: str = "") -> Any:
    """Keeps tensors and plain containers/values; numpy arrays become tensors; other objects are dropped."""
    if isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj)
    if isinstance(obj, (np.generic,)):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str, bytes)):
        return obj
    if isinstance(obj, Mapping):
        converted = {k: _to_plain(v, f"{path}.{k}") for k, v in obj.items()}
        return {k: v for k, v in converted.items() if v is not _DROP}
    if isinstance(obj, (list, tuple)):
        items = [_to_plain(v, f"{path}[{i}]") for i, v in enumerate(obj)]
        items = [v for v in items if v is not _DROP]
        return tuple(items) if isinstance(obj, tuple) else items
    logger.warning("convert: dropping %s of type %s", path or "<root>", type(obj).__name__)
    return _DROP



def convert_unsafe_checkpoint(src: str, dst: str) -> None:
    """Loads a TRUSTED pickle checkpoint with full unpickling and writes a weights-only copy."""
    if not os.path.isfile(src):
        raise FileNotFoundError(f"checkpoint file {src} does not exist")
    _check_torch_file_format(src)
    try:
        data = torch.load(src, map_location="cpu", weights_only=False)
    except (pickle.UnpicklingError, ImportError, *_DAMAGED_FILE_ERRORS) as e:
        raise ValueError(f"{src}: cannot be converted, torch.load failed even with full unpickling "
                         f"({type(e).__name__}: {_torch_reason(e)})") from e
    plain = _to_plain(data)
    if plain is _DROP:
        raise ValueError(f"{src}: nothing convertible in this file")
    atomic_torch_save(plain, dst)
    load_checkpoint_file(dst)  # proves the copy is weights-only loadable


def main(argv=None) -> int:
    """``python -m maskrcnn_benchmark.utils.checkpoint {inspect,convert} ...``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    ins = sub.add_parser("inspect", help="print the kind, entries and grouped keys of a checkpoint")
    ins.add_argument("path")
    conv = sub.add_parser("convert", help="rewrite a TRUSTED pickle checkpoint as a weights-only file")
    conv.add_argument("src")
    conv.add_argument("dst")
    for command_parser in (parser, ins, conv):
        add_debug_argument(command_parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.cmd == "convert":
        convert_unsafe_checkpoint(args.src, args.dst)
        logger.info("wrote %s (loads with torch.load(weights_only=True))", args.dst)
        return 0
    from maskrcnn_benchmark.utils.key_map import detect_file_kind
    from maskrcnn_benchmark.utils.model_serialization import group_keys

    checkpoint = load_checkpoint_file(args.path)
    logger.info("entries: %s", sorted(checkpoint))
    state_dict = extract_state_dict(checkpoint, source=args.path)
    kind = detect_file_kind(list(state_dict))
    logger.info("kind: %s (%d tensors, %d elements)", kind.name if kind else "unknown", len(state_dict),
                sum(v.numel() for v in state_dict.values()))
    for group in group_keys(list(state_dict)):
        logger.info("  %s", group)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(report_user_errors(main))
