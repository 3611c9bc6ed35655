"""A yacs ``CfgNode`` whose merges name the offending key and file.

yacs reports an unknown key as ``KeyError: 'Non-existent config key: MODEL.FOO'`` without saying which file it
came from, and rejects an ``int`` for a ``float`` key. This subclass keeps yacs' behaviour (values that are
strings are ``literal_eval``-ed, so ``("train",)`` becomes a tuple and a ``CAPTION_PROMPT`` string becomes a list
of dicts; ``None`` defaults accept any type; tuple <-> list) and adds:

* unknown keys raise :class:`UnknownConfigKeyError` (a ``KeyError`` and ``ValueError``):
  ``"configs/x.yaml: unknown config key MODEL.FOO.BAR"``, with close matches suggested;
* type mismatches raise :class:`ConfigTypeError` (a ``TypeError`` and ``ValueError``) naming key, file, both
  types and both values; an ``int`` given for a ``float`` key is accepted as a float;
* a missing file raises ``FileNotFoundError`` naming it;
* a key listed in ``defaults.INERT_KEYS`` that a file changes is logged with the reason it has no effect.
"""

import copy
import difflib
import logging
import os
from ast import literal_eval
from collections.abc import Iterable, Mapping
from typing import Any

import yaml
from yacs.config import CfgNode as _YacsCfgNode

__all__ = ["CfgNode", "UnknownConfigKeyError", "ConfigTypeError"]

logger = logging.getLogger(__name__)

_VALID_TYPES = (tuple, list, str, int, float, bool, type(None))


class UnknownConfigKeyError(KeyError, ValueError):
    """A merged file or command line names a key that the defaults do not define."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ConfigTypeError(TypeError, ValueError):
    """A merged value has a type that does not match the default's."""


def _decode_value(value: Any) -> Any:
    """yacs' value decoding: dicts become nodes, strings are literal-eval'ed when they are Python literals."""
    if isinstance(value, dict):
        return CfgNode(value, new_allowed=True)
    if not isinstance(value, str):
        return value
    try:
        return literal_eval(value)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return value


def _coerce(replacement: Any, original: Any, full_key: str, source: str) -> Any:
    """Return ``replacement`` converted to the type of ``original`` or raise :class:`ConfigTypeError`."""
    original_type, replacement_type = type(original), type(replacement)
    if replacement_type == original_type:
        return replacement
    if replacement is None and original is not None:
        # yacs lets None replace anything; a key left empty in YAML ("BASE_LR:") would then fail far away
        raise ConfigTypeError(
            f"{source}: config key {full_key} has no value (null); expected {original_type.__name__} "
            f"(current value {original!r})"
        )
    if original is None:
        return replacement
    if original_type is tuple and replacement_type is list:
        return tuple(replacement)
    if original_type is list and replacement_type is tuple:
        return list(replacement)
    if original_type is float and replacement_type is int:
        return float(replacement)
    raise ConfigTypeError(
        f"{source}: type mismatch for config key {full_key}: expected {original_type.__name__} "
        f"(current value {original!r}), got {replacement_type.__name__} ({replacement!r})"
    )


class CfgNode(_YacsCfgNode):
    """yacs ``CfgNode`` with merges whose errors name the key and the file (see the module docstring)."""

    # ------------------------------------------------------------------------------------------ merging
    def merge_from_file(self, cfg_filename: str) -> None:
        """Merge a YAML file into this config.

        Raises:
            FileNotFoundError: the file does not exist.
            UnknownConfigKeyError / ConfigTypeError: a key is unknown or has the wrong type (message names the
                key and the file).
            ValueError: the file is not a YAML mapping.
        """
        path = os.fspath(cfg_filename)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"config file not found: {path} (working directory {os.getcwd()})")
        with open(path, encoding="utf-8") as f:
            try:
                loaded = yaml.safe_load(f)
            except yaml.YAMLError as e:
                raise ValueError(f"{path}: not valid YAML: {e}") from e
            except UnicodeDecodeError as e:
                raise ValueError(f"{path}: not a YAML text file (byte {e.start} is not UTF-8: {e.reason})") from e
        if loaded is None:
            return
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: a config file must hold a mapping of keys, got {type(loaded).__name__}")
        self.merge_from_dict(loaded, source=path)

    def merge_from_other_cfg(self, cfg_other: Mapping[str, Any]) -> None:
        """Merge another config (or plain dict) into this one."""
        self.merge_from_dict(cfg_other, source="<other config>")

    def merge_from_dict(self, values: Mapping[str, Any], source: str = "<dict>") -> None:
        """Merge a nested mapping; ``source`` names it in error messages."""
        self._assert_mutable(source)
        _merge_mapping(self, values, prefix=[], source=source)

    def merge_from_list(self, cfg_list: list[Any], source: str = "command line") -> None:
        """Merge ``[KEY1, VALUE1, KEY2, VALUE2, ...]`` (e.g. trailing command-line ``opts``).

        Raises:
            ValueError: odd number of items. UnknownConfigKeyError / ConfigTypeError as for files.
        """
        self._assert_mutable(source)
        if len(cfg_list) % 2 != 0:
            raise ValueError(
                f"{source}: config overrides must be KEY VALUE pairs, got an odd number of items: {list(cfg_list)}"
            )
        for full_key, raw_value in zip(cfg_list[0::2], cfg_list[1::2]):
            if not isinstance(full_key, str):
                raise ValueError(f"{source}: config key must be a string, got {full_key!r}")
            *parents, leaf = full_key.split(".")
            node = self
            for depth, part in enumerate(parents):
                if part not in node or not isinstance(node[part], _YacsCfgNode):
                    _raise_unknown(node, part, full_key.split(".")[: depth + 1], source, full_key)
                node = node[part]
            _merge_mapping(node, {leaf: raw_value}, prefix=parents, source=source)

    def _assert_mutable(self, source: str) -> None:
        if self.is_frozen():
            raise AttributeError(f"{source}: cannot merge into a frozen config; call cfg.defrost() first")

    # ------------------------------------------------------------------------------------------ helpers
    def clone(self) -> "CfgNode":
        """A deep copy (keeps the frozen state and the subclass)."""
        return copy.deepcopy(self)

    def iter_leaves(self, prefix: str = "") -> Iterable:
        """Yield ``(full_key, value)`` for every non-node entry, depth first."""
        for key, value in self.items():
            full_key = f"{prefix}{key}"
            if isinstance(value, _YacsCfgNode):
                yield from CfgNode.iter_leaves(value, prefix=full_key + ".")
            else:
                yield full_key, value


def _raise_unknown(node: _YacsCfgNode, key: str, key_path: list[str], source: str, full_key: str = "") -> None:
    """Raise for ``key`` missing at ``key_path`` (``full_key``: the whole requested key, if longer)."""
    full_key = full_key or ".".join(key_path)
    suggestions = difflib.get_close_matches(key, [k for k in node.keys()], n=3, cutoff=0.6)
    hint = ""
    if suggestions:
        parent = ".".join(key_path[:-1])
        hint = " (did you mean " + ", ".join(f"{parent + '.' if parent else ''}{s}" for s in suggestions) + "?)"
    raise UnknownConfigKeyError(f"{source}: unknown config key {full_key}{hint}")


def _note_inert(full_key: str, value: Any, default: Any, source: str) -> None:
    from maskrcnn_benchmark.config.defaults import INERT_KEYS  # late import: defaults imports this module

    reason = INERT_KEYS.get(full_key)
    if reason is not None and value != default:
        logger.info("%s: %s = %r has no effect in this implementation: %s", source, full_key, value, reason)


def _merge_mapping(node: _YacsCfgNode, values: Mapping[str, Any], prefix: list[str], source: str) -> None:
    """Merge ``values`` into ``node`` (recursively), checking keys and types."""
    for key, raw_value in values.items():
        key_path = prefix + [str(key)]
        full_key = ".".join(key_path)
        value = _decode_value(copy.deepcopy(raw_value))
        if key not in node:
            if not node.is_new_allowed():
                _raise_unknown(node, str(key), key_path, source)
            if not isinstance(value, (_YacsCfgNode,) + _VALID_TYPES):
                raise ConfigTypeError(f"{source}: config key {full_key} has unsupported type {type(value).__name__}")
            node[key] = value
            continue
        current = node[key]
        if isinstance(current, _YacsCfgNode):
            if not isinstance(value, _YacsCfgNode):
                raise ConfigTypeError(
                    f"{source}: config key {full_key} is a group of keys ({sorted(current.keys())}); "
                    f"got a single value {value!r}"
                )
            _merge_mapping(current, value, key_path, source)
            continue
        if isinstance(value, _YacsCfgNode) and current is not None:
            raise ConfigTypeError(f"{source}: config key {full_key} takes a value, got a group of keys")
        coerced = _coerce(value, current, full_key, source)
        _note_inert(full_key, coerced, current, source)
        node[key] = coerced
