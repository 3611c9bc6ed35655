"""String-keyed registries of builders.

A :class:`Registry` maps the string names that appear in YAML configs (for example
``MODEL.BACKBONE.CONV_BODY: "SWINT-FPN-RETINANET"``) to the callables that build the matching module. Builders
are registered with a decorator next to their definition and looked up with :meth:`Registry.get`, whose error
names the config key, the bad value and every known name.
"""

import logging
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["Registry"]

logger = logging.getLogger(__name__)


class Registry:
    """A named mapping from string keys to builders.

    Args:
        name: family name used in messages, e.g. ``"BACKBONES"``.
        cfg_key: the config key whose value selects an entry (e.g. ``"MODEL.BACKBONE.CONV_BODY"``); used as the
            default in error messages of :meth:`get`.

    Example::

        BACKBONES = Registry("BACKBONES", cfg_key="MODEL.BACKBONE.CONV_BODY")

        @BACKBONES.register("SWINT-FPN-RETINANET")
        def build_swint_fpn_retinanet(cfg):
            ...

        builder = BACKBONES.get(cfg.MODEL.BACKBONE.CONV_BODY)
    """

    def __init__(self, name: str, cfg_key: str | None = None) -> None:
        self._name = name
        self._cfg_key = cfg_key
        self._entries: dict[str, Any] = {}

    @property
    def name(self) -> str:
        """Family name given at construction."""
        return self._name

    @property
    def cfg_key(self) -> str | None:
        """Config key that selects an entry of this registry (None if not config driven)."""
        return self._cfg_key

    def _add(self, key: str, obj: Any) -> None:
        if not isinstance(key, str) or not key:
            raise TypeError(f"{self._name}: registry names must be non-empty strings, got {key!r}")
        if key in self._entries:
            raise KeyError(
                f"{self._name}: {key!r} is already registered (to {self._entries[key]!r}); "
                "names must be unique within a registry"
            )
        self._entries[key] = obj

    def register(self, key: str, obj: Any = None) -> Any:
        """Register ``obj`` under ``key``; without ``obj`` return a decorator doing so.

        Args:
            key: the string name used in configs.
            obj: the builder (function or class). If omitted, a decorator is returned.

        Returns:
            ``obj`` when given, else a decorator that registers and returns its argument unchanged.

        Raises:
            KeyError: ``key`` is already registered.
            TypeError: ``key`` is not a non-empty string.
        """
        if obj is not None:
            self._add(key, obj)
            return obj

        def decorator(fn: Callable) -> Callable:
            self._add(key, fn)
            return fn

        return decorator

    def get(self, key: str, cfg_key: str | None = None) -> Any:
        """Return the entry registered under ``key``.

        Args:
            key: the registered name (usually a config value).
            cfg_key: the config key the value came from, for the error message (defaults to the registry's).

        Raises:
            KeyError: ``key`` is unknown; the message names the config key, the value and the known names.
        """
        if key in self._entries:
            return self._entries[key]
        where = cfg_key or self._cfg_key
        source = f"{where} = {key!r}" if where else repr(key)
        known = ", ".join(repr(k) for k in sorted(self._entries)) or "(none registered)"
        raise KeyError(
            f"{self._name}: unknown name {source}; known names: {known}. "
            "If the name is right, check that the module defining it is imported by its package __init__."
        )

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __getitem__(self, key: str) -> Any:
        return self.get(key)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def keys(self):
        """Sorted registered names."""
        return sorted(self._entries)

    def items(self):
        """``(name, entry)`` pairs sorted by name."""
        return [(k, self._entries[k]) for k in sorted(self._entries)]

    def __repr__(self) -> str:
        return f"Registry({self._name!r}, cfg_key={self._cfg_key!r}, entries={sorted(self._entries)})"
