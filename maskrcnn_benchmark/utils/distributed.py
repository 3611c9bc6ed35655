"""Process-group helpers: rank/world size, barriers, gathering Python objects, reducing loss dicts, unwrapping.

Every helper works without an initialised process group (single process): then rank is 0, world size 1,
gathers return ``[obj]`` and reductions are the identity. ``init_distributed_from_env`` reads the variables
that ``torchrun`` (and the deprecated ``torch.distributed.launch``) export - ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT`` - and starts NCCL on GPUs, gloo on CPUs. Multi-node runs are
plain ``torchrun --nnodes N --node_rank i --rdzv_endpoint host:port``; there is no home-made launcher.
:func:`unwrap_model` is the one place that looks through DDP / DataParallel / ``torch.compile`` wrappers.
"""

from __future__ import annotations

import datetime
import logging
import os
from typing import Any

import torch
import torch.distributed as dist

__all__ = [
    "is_dist_avail_and_initialized",
    "get_rank",
    "get_world_size",
    "get_local_rank",
    "is_main_process",
    "synchronize",
    "all_gather",
    "broadcast_object",
    "reduce_dict",
    "reduce_loss_dict",
    "all_reduce_max",
    "init_distributed_from_env",
    "cleanup_distributed",
    "unwrap_model",
]

logger = logging.getLogger(__name__)

# Upstream uses a 2 h timeout so that a slow rank (e.g. rank 0 evaluating) does not kill the others.
DEFAULT_TIMEOUT = datetime.timedelta(seconds=7200)


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside its wrappers: DDP and DataParallel (``.module``), ``torch.compile`` (``._orig_mod``).

    Wrappers may be nested (a compiled DDP model); anything else is returned as it is. Saving, EMA updates and
    calls on the detector's own methods go through this, so state-dict keys never carry ``module.`` or
    ``_orig_mod.``.
    """
    while isinstance(model, torch.nn.Module):
        inner = getattr(model, "module", None)
        if not isinstance(inner, torch.nn.Module):
            inner = getattr(model, "_orig_mod", None)
        if not isinstance(inner, torch.nn.Module):
            return model
        model = inner
    return model


def is_dist_avail_and_initialized() -> bool:
    """True when torch.distributed is usable and a default process group exists."""
    return dist.is_available() and dist.is_initialized()


def get_world_size() -> int:
    """Number of processes in the default group (1 without a group)."""
    return dist.get_world_size() if is_dist_avail_and_initialized() else 1


def get_rank() -> int:
    """Global rank of this process (0 without a group)."""
    return dist.get_rank() if is_dist_avail_and_initialized() else 0


def get_local_rank() -> int:
    """Rank of this process on its machine, from ``LOCAL_RANK`` (0 when unset)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main_process() -> bool:
    """True on global rank 0."""
    return get_rank() == 0


def synchronize() -> None:
    """Barrier across all processes; a no-op for a single process."""
    if get_world_size() > 1:
        dist.barrier()


def all_gather(data: Any) -> list[Any]:
    """Gather an arbitrary picklable object from every rank.

    Args:
        data: any picklable object (tensors are moved to CPU first so that gathers work on any backend).

    Returns:
        list with one entry per rank, ordered by rank (``[data]`` for a single process).
    """
    world_size = get_world_size()
    if world_size == 1:
        return [data]
    gathered: list[Any] = [None] * world_size
    dist.all_gather_object(gathered, _to_cpu(data))
    return gathered


def broadcast_object(data: Any, src: int = 0) -> Any:
    """Send ``data`` from rank ``src`` to every rank and return it (identity for one process)."""
    if get_world_size() == 1:
        return data
    box = [_to_cpu(data) if get_rank() == src else None]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def _to_cpu(data: Any) -> Any:
    if isinstance(data, torch.Tensor):
        return data.detach().cpu()
    if isinstance(data, dict):
        return {key: _to_cpu(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        converted = [_to_cpu(value) for value in data]
        return type(data)(converted) if isinstance(data, list) else tuple(converted)
    if hasattr(data, "to") and hasattr(data, "bbox"):  # BoxList
        return data.to("cpu")
    return data


def reduce_dict(input_dict: dict[str, torch.Tensor], average: bool = True) -> dict[str, torch.Tensor]:
    """Sum (or average) a dict of scalar tensors over all ranks; every rank gets the result.

    Args:
        input_dict: name -> 0-d tensor, the same names on every rank.
        average: divide the sum by the world size.

    Returns:
        dict with the same keys (sorted reduction order, so every rank agrees), detached.
    """
    world_size = get_world_size()
    if world_size == 1:
        return {key: value.detach() for key, value in input_dict.items()}
    names = sorted(input_dict.keys())
    values = torch.stack([input_dict[name].detach().float().reshape(()) for name in names])
    dist.all_reduce(values)
    if average:
        values /= world_size
    return dict(zip(names, values))


def reduce_loss_dict(loss_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Average a loss dict over ranks, for logging (upstream name)."""
    return reduce_dict(loss_dict, average=True)


def all_reduce_max(value: float) -> float:
    """Maximum of a Python number over all ranks."""
    if get_world_size() == 1:
        return value
    device = torch.device("cuda") if dist.get_backend() == "nccl" else torch.device("cpu")
    tensor = torch.tensor([float(value)], dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return float(tensor.item())


def init_distributed_from_env(backend: str | None = None, timeout: datetime.timedelta = DEFAULT_TIMEOUT) -> bool:
    """Start the default process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1).

    Args:
        backend: "nccl" or "gloo"; default NCCL when CUDA is available, else gloo.
        timeout: collective timeout.

    Returns:
        True if a process group with more than one process is now running.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1 or is_dist_avail_and_initialized():
        return is_dist_avail_and_initialized()
    for name in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        if name not in os.environ:
            raise ValueError(f"WORLD_SIZE={world_size} but environment variable {name} is not set: "
                             "launch with torchrun")
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(get_local_rank())
    dist.init_process_group(backend=backend, init_method="env://", timeout=timeout)
    logger.info("process group started: backend %s, rank %d of %d", backend, get_rank(), get_world_size())
    synchronize()
    return True


def cleanup_distributed() -> None:
    """Destroy the default process group if one is running."""
    if is_dist_avail_and_initialized():
        dist.destroy_process_group()
