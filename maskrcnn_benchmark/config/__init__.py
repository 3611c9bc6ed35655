"""Configuration: yacs defaults (``cfg``), YAML merging that names bad keys and files, cross-key validation,
and the dataset paths catalog.

Typical use (what the tools do)::

    from maskrcnn_benchmark.config import cfg, validate_config
    cfg = cfg.clone()
    cfg.merge_from_file("configs/refcoco.yaml")
    cfg.merge_from_list(["TEST.IMS_PER_BATCH", 1])
    validate_config(cfg)
    cfg.freeze()

or in one call: ``cfg = load_config("configs/refcoco.yaml", opts=["TEST.IMS_PER_BATCH", "1"])``.
"""

import logging
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


def load_config(
    config_file: str | None = None,
    opts: Sequence | None = None,
    task_configs: Iterable[str] = (),
    freeze: bool = True,
) -> CfgNode:
    """Defaults + ``config_file`` + each task config + ``opts``, validated (and frozen by default).

    Command-line ``opts`` are applied last, so they win over task configs, as in upstream's tools.
    """
    merged = get_cfg()
    if config_file:
        merged.merge_from_file(config_file)
    for task_config in task_configs:
        merged.merge_from_file(task_config)
    if opts:
        merged.merge_from_list(list(opts))
    validate_config(merged)
    if freeze:
        merged.freeze()
    return merged
