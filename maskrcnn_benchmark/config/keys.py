"""Dotted key paths in a config: read, write and list them (``"MODEL.ATSS.INFERENCE_TH"``).

Shared by the cross-key validation (:mod:`.validate`) and the task-config rules (:mod:`.task_config`).
"""

from __future__ import annotations

from typing import Any

__all__ = ["get_key", "set_key", "flatten"]


def get_key(cfg: Any, dotted: str) -> Any:
    """The value at ``dotted`` (``"MODEL.ATSS.NMS_TH"``); raises KeyError naming the missing part."""
    node = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


def set_key(cfg: Any, dotted: str, value: Any) -> None:
    """Sets the value at ``dotted`` in a mutable config (no type check: callers copy values of the same key)."""
    *parents, leaf = dotted.split(".")
    node = cfg
    for part in parents:
        node = node[part]
    node[leaf] = value


def flatten(node: Any, prefix: str) -> dict[str, Any]:
    """Every leaf under ``node`` as ``{"PREFIX.A.B": value}`` (``prefix`` is ``node``'s own dotted name)."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        name = f"{prefix}.{key}"
        if hasattr(value, "items"):
            out.update(flatten(value, name))
        else:
            out[name] = value
    return out
