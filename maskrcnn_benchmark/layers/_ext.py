"""The one place that touches the compiled extension ``maskrcnn_benchmark._C``.

Importing this module never fails: when ``_C`` is missing (not built, built for another torch, built without
CUDA) the reason is kept for :func:`extension_status` and ``python -m maskrcnn_benchmark.utils.collect_env``,
and every op falls back to its pure-torch path, logging one warning per op the first time it does so.

Ops choose a path with :func:`select_impl`; ``impl="compiled"`` asks for the kernel and raises a
``RuntimeError`` that says what failed and how to fix it when it is unavailable.
"""

import importlib
import logging
import threading
from typing import Any

import torch

logger = logging.getLogger(__name__)

__all__ = [
    "BUILD_HINT",
    "IMPLS",
    "compiled_available",
    "extension_status",
    "get_extension",
    "reset_extension_cache",
    "select_impl",
    "warn_fallback_once",
]

IMPLS = ("auto", "compiled", "torch")

BUILD_HINT = (
    'build it with `pip install --no-build-isolation -e .` from the repository root (add FORCE_CUDA=1 '
    "CUDA_HOME=/usr/local/cuda to build the CUDA kernels; a C++ compiler and ninja are needed), then check "
    "with `python -m maskrcnn_benchmark.utils.collect_env`"
)

_lock = threading.Lock()
_state: dict[str, Any] = {"loaded": False, "module": None, "error": None}
_warned_ops: set[str] = set()


def _load_extension():
    """Imports and returns the compiled module. Tests monkeypatch this to simulate a missing build."""
    return importlib.import_module("maskrcnn_benchmark._C")


def get_extension():
    """Returns the compiled module, or None when it cannot be imported (the reason is kept)."""
    with _lock:
        if not _state["loaded"]:
            try:
                _state["module"] = _load_extension()
                _state["error"] = None
            except (ImportError, OSError) as error:
                _state["module"] = None
                _state["error"] = f"{type(error).__name__}: {error}"
            _state["loaded"] = True
        return _state["module"]


def reset_extension_cache() -> None:
    """Forgets the import result and the warnings already given (for tests)."""
    with _lock:
        _state.update(loaded=False, module=None, error=None)
        _warned_ops.clear()


def _build_info() -> dict[str, Any]:
    ext = get_extension()
    if ext is None:
        return {}
    return dict(ext.build_info())


def compiled_available(device_type: str) -> bool:
    """Whether the compiled kernels can run on tensors of this device type ("cpu" or "cuda")."""
    ext = get_extension()
    if ext is None:
        return False
    if device_type == "cpu":
        return True
    if device_type == "cuda":
        return bool(_build_info().get("with_cuda", False))
    return False


def _unavailable_reason(device_type: str) -> str:
    ext = get_extension()
    if ext is None:
        return f"maskrcnn_benchmark._C could not be imported ({_state['error']})"
    if device_type == "cuda":
        return "maskrcnn_benchmark._C was built without CUDA kernels (FORCE_CUDA was not set or nvcc was missing)"
    return f"maskrcnn_benchmark._C has no kernels for device type {device_type!r}"


def extension_status() -> dict[str, Any]:
    """What the compiled extension provides, for environment reports.

    Returns:
        dict with ``available`` (bool), ``error`` (str or None: why the import failed), ``build_info`` (dict
        from the extension: with_cuda, cuda_version, cuda_arch_list, torch_version, compiler) and ``kernels``
        (op name -> {"cpu": bool, "cuda": bool}).
    """
    ext = get_extension()
    info = _build_info()
    ops = ("nms", "ml_nms", "modulated_deform_conv", "sigmoid_focal_loss", "token_sigmoid_focal_loss")
    return {
        "available": ext is not None,
        "error": _state["error"],
        "file": getattr(ext, "__file__", None),
        "build_info": info,
        "kernels": {op: {"cpu": ext is not None, "cuda": bool(info.get("with_cuda", False))} for op in ops},
    }


def warn_fallback_once(op_name: str, reason: str) -> None:
    """Logs one warning per op the first time its slow pure-torch path is used because of a missing kernel."""
    with _lock:
        if op_name in _warned_ops:
            return
        _warned_ops.add(op_name)
    logger.warning(
        "%s: compiled kernel unavailable (%s); using the pure-torch implementation. To get the kernel, %s.",
        op_name,
        reason,
        BUILD_HINT,
    )


def select_impl(op_name: str, impl: str, device: torch.device) -> str:
    """Chooses "compiled" or "torch" for one call of an op.

    Args:
        op_name: name used in messages.
        impl: "auto" (compiled when available for the device, else torch with a one-time warning),
            "compiled" (error when unavailable) or "torch".
        device: device of the op's inputs.

    Returns:
        "compiled" or "torch".

    Raises:
        ValueError: unknown ``impl``.
        RuntimeError: ``impl="compiled"`` and no kernel for this device.
    """
    if impl not in IMPLS:
        raise ValueError(f"{op_name}: impl must be one of {IMPLS}, got {impl!r}")
    if impl == "torch":
        return "torch"
    device_type = torch.device(device).type
    if compiled_available(device_type):
        return "compiled"
    reason = _unavailable_reason(device_type)
    if impl == "compiled":
        raise RuntimeError(f"{op_name}: impl='compiled' requested but {reason}. To fix: {BUILD_HINT}.")
    warn_fallback_once(op_name, reason)
    return "torch"

