"""Configuration: yacs defaults (``cfg``), YAML merging that names bad keys and files, cross-key validation,
the task-config rules and the dataset paths catalog.

:func:`load_config` is the one way a config is built from files (tools, evaluation, fine-tuning, the
Predictor, the demo)::

    from maskrcnn_benchmark.config import load_config
    cfg = load_config("configs/refcoco.yaml", opts=["TEST.IMS_PER_BATCH", "1"],
                      task_configs=["configs/refexp/_refcoco_testA.yaml"])

It starts from pristine defaults: changes a script made to the process-wide ``cfg`` (upstream's style,
``cfg.merge_from_file(...)``) never leak into it, and it never writes to ``cfg``.
"""

import logging
import os
from collections.abc import Iterable, Sequence

from maskrcnn_benchmark.config.config_node import CfgNode, ConfigTypeError, UnknownConfigKeyError
from maskrcnn_benchmark.config.defaults import _C as cfg
from maskrcnn_benchmark.config.defaults import INERT_KEYS
from maskrcnn_benchmark.config.paths_catalog import try_to_find
from maskrcnn_benchmark.config.validate import validate_config

__all__ = [
    "cfg",
    "CfgNode",
    "ConfigTypeError",
    "UnknownConfigKeyError",
    "INERT_KEYS",
    "get_cfg",
    "merge_from_file",
    "merge_from_list",
    "clean_opts",
    "load_config",
    "validate_config",
    "try_to_find",
]

logger = logging.getLogger(__name__)


# Untouched copy taken at import: scripts written for upstream merge into the global ``cfg`` in place, which must
# not leak into configs built later in the same process.
_PRISTINE_DEFAULTS = cfg.clone()


def get_cfg() -> CfgNode:
    """A fresh, mutable copy of the defaults (unaffected by merges into the global ``cfg``)."""
    fresh = _PRISTINE_DEFAULTS.clone()
    fresh.defrost()
    return fresh


def merge_from_file(config: CfgNode, path: str) -> CfgNode:
    """Merge a YAML file into ``config`` (in place) and return it. Errors name the key and the file."""
    config.merge_from_file(path)
    return config


def merge_from_list(config: CfgNode, opts: Sequence, source: str = "command line") -> CfgNode:
    """Merge ``[KEY, VALUE, ...]`` overrides into ``config`` (in place) and return it."""
    config.merge_from_list(list(opts), source=source)
    return config


def clean_opts(opts: Sequence | None) -> list:
    """Command-line ``KEY VALUE`` overrides, cleaned of shell copy-paste artefacts.

    Items that are a lone ``\\`` or only whitespace (what ``\\`` or ``\\ `` before a line break of a pasted
    multi-line command turns into) are dropped, as is a leading ``--``; an empty string stays (it is a value,
    e.g. ``MODEL.WEIGHT ""``).

    Raises:
        ValueError: an odd number of items remains (the message lists them).
    """
    items = [item for item in (opts or []) if item != "\\" and not (item and not str(item).strip())]
    if items and items[0] == "--":
        items = items[1:]
    if len(items) % 2:
        raise ValueError(f"config overrides must be KEY VALUE pairs; got an odd number of items: {items}")
    return items


def load_config(
    config_file: str | os.PathLike,
    opts: Sequence | None = None,
    task_configs: str | os.PathLike | Iterable[str | os.PathLike] = (),
    freeze: bool = False,
) -> CfgNode:
    """Pristine defaults + ``config_file`` + each task config + ``opts``, validated.

    ``opts`` (cleaned by :func:`clean_opts`) are applied once, last, so the command line wins over the model
    and task configs, as in upstream's tools. Nothing is read from or written to the global ``cfg``.

    Args:
        config_file: the model YAML.
        opts: flat ``[KEY, VALUE, ...]`` overrides.
        task_configs: task YAMLs (one path or several) merged after the model YAML, in order.
        freeze: freeze the result (default: a mutable config, as the tools set OUTPUT_DIR etc. afterwards).

    Returns:
        A new CfgNode.

    Raises:
        ValueError: no config file given, odd ``opts``, a bad key/value (naming key and file) or a failed
            cross-key validation. FileNotFoundError: a missing YAML (naming it).
    """
    if not config_file:
        raise ValueError("no config file given (--config-file FILE)")
    task_configs = [task_configs] if isinstance(task_configs, (str, os.PathLike)) else list(task_configs)
    merged = get_cfg()
    merged.merge_from_file(os.fspath(config_file))
    for task_config in task_configs:
        merged.merge_from_file(os.fspath(task_config))
    overrides = clean_opts(opts)
    if overrides:
        merged.merge_from_list(overrides)
    try:
        validate_config(merged)
    except ValueError as e:  # cross-key problems: name the files they came from
        sources = " + ".join([os.fspath(config_file), *(os.fspath(t) for t in task_configs)])
        raise ValueError(f"{sources}{' + command line' if overrides else ''}: {e}") from e
    if freeze:
        merged.freeze()
    return merged
