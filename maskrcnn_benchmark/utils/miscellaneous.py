"""Small helpers used by the tools and the training loop: seeding, RNG state capture, folders, config dumps."""

from __future__ import annotations

import errno
import logging
import os
import random
from typing import Any

import numpy as np
import torch

from maskrcnn_benchmark.utils.atomic_io import atomic_write_text

__all__ = ["seed_all", "get_rng_state", "set_rng_state", "mkdir", "save_config"]

logger = logging.getLogger(__name__)


def seed_all(seed: int) -> None:
    """Seed Python's ``random``, NumPy and torch (CPU and every CUDA device).

    Args:
        seed: a non-negative integer (tools pass ``SOLVER.SEED + rank``).
    """
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def get_rng_state() -> dict[str, Any]:
    """Capture the Python, NumPy, torch CPU (and CUDA) generator states, for exact resume.

    Returns:
        dict with keys "python", "numpy", "torch" and, when CUDA is available, "cuda" (list per device);
        torch states are uint8 tensors so the dict survives ``torch.load(weights_only=True)``.
    """
    py_version, py_state, py_gauss = random.getstate()
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": py_version, "state": torch.tensor(py_state, dtype=torch.int64), "gauss": py_gauss},
        "numpy": {
            "name": np_state[0],
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore generator states captured by :func:`get_rng_state`.

    Raises:
        ValueError: a required entry is missing (the message names it).
    """
    for key in ("python", "numpy", "torch"):
        if key not in state:
            raise ValueError(f"rng_state has no {key!r} entry (keys: {sorted(state)})")
    python = state["python"]
    random.setstate((python["version"], tuple(int(v) for v in python["state"].tolist()), python["gauss"]))
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["name"],
            numpy_state["keys"].numpy().astype(np.uint32),
            int(numpy_state["pos"]),
            int(numpy_state["has_gauss"]),
            float(numpy_state["cached_gaussian"]),
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
        else:
            logger.warning(
                "rng_state holds %d CUDA generator states but %d devices are visible: CUDA RNG not restored",
                len(cuda_states),
                torch.cuda.device_count(),
            )


def mkdir(path: str) -> None:
    """Create ``path`` and its parents; an existing folder is fine."""
    try:
        os.makedirs(path)
    except OSError as e:
        if e.errno != errno.EEXIST:
            raise


def save_config(cfg, path: str) -> None:
    """Dump a yacs config as YAML (what the run actually used) to ``path``, atomically."""
    atomic_write_text(path, cfg.dump())
    logger.info("config saved to %s", path)
