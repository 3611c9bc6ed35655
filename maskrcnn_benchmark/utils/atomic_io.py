"""The one place that writes files atomically: checkpoints, predictions, metrics, configs, data sets.

Every writer goes to a temporary file in the destination's folder and ``os.replace``s it onto the
destination only when the write succeeded, so a crash or an exception leaves either the old file or the
new one, never a partial file. The destination folder is created when missing. All functions take the
destination path first, except :func:`atomic_torch_save`, which keeps ``torch.save``'s ``(obj, path)``
order.

The temporary file is ``.<name>.<8 random characters>.tmp`` beside the destination, created with mode 0666
less the process umask (what ``open(path, "w")`` gives; ``tempfile.mkstemp`` would give 0600). A kill
(SIGKILL, power loss) can leave one behind; :func:`remove_stale_temp_files` removes those of given names,
and the checkpointer calls it before its first save.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import logging
import os
import re
import secrets
from collections.abc import Iterable, Iterator
from typing import IO, Any

import numpy as np

__all__ = [
    "atomic_write",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_torch_save",
    "json_default",
    "remove_stale_temp_files",
]

logger = logging.getLogger(__name__)

# ".<destination name>.<8 random characters>.tmp": ours (secrets.token_hex) and older files of ours
# (tempfile.mkstemp: lowercase letters, digits and "_").
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")


def _fsync_dir(directory: str) -> None:
    """Makes a rename inside ``directory`` durable where the platform allows it (no-op elsewhere)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _create_temp(directory: str, name: str) -> tuple[int, str]:
    """Creates ``directory/.<name>.<random>.tmp`` exclusively, mode 0666 less the umask; returns (fd, path)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = os.path.join(directory, f".{name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file for {name} in {directory}")


def remove_stale_temp_files(directory: str, names: Iterable[str]) -> list[str]:
    """Removes temporary files that interrupted atomic writes left in ``directory``.

    Only files named ``.<name>.<8 random characters>.tmp`` whose ``<name>`` matches one of the glob
    patterns ``names`` are touched (e.g. ``("*.pth", "last_checkpoint")`` for a checkpoint folder); call it
    only where no other process is writing those names at the same time.

    Returns:
        The removed paths (each is logged).
    """
    patterns = list(names)
    removed: list[str] = []
    try:
        entries = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in sorted(entries):
        match = _TEMP_NAME.match(entry)
        path = os.path.join(directory, entry)
        if not match or not any(fnmatch.fnmatchcase(match.group("name"), p) for p in patterns):
            continue
        if not os.path.isfile(path) or os.path.islink(path):
            continue
        try:
            os.remove(path)
        except FileNotFoundError:
            continue
        removed.append(path)
        logger.info("removed %s, left by an interrupted save", path)
    return removed


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "w", encoding: str | None = None) -> Iterator[IO]:
    """Yields a handle on a temporary file that replaces ``path`` when the ``with`` block succeeds.

    Args:
        path: destination file; its folder is created when missing.
        mode: ``"w"`` (text) or ``"wb"`` (binary).
        encoding: text encoding; ``"utf-8"`` when ``None`` in text mode, ignored in binary mode.

    Yields:
        The open temporary file. On success it is flushed, fsynced and renamed onto ``path``; on any error
        it is removed and an existing ``path`` is left as it was.

    Raises:
        ValueError: ``mode`` is not a write mode.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write({path!r}): mode must be 'w' or 'wb', got {mode!r}")
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = _create_temp(directory, os.path.basename(path))
    text_encoding = None if "b" in mode else (encoding or "utf-8")
    try:
        with os.fdopen(fd, mode, encoding=text_encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_dir(directory)


def atomic_write_text(path: str, text: str) -> str:
    """Writes ``text`` (UTF-8) to ``path`` atomically; returns ``path``."""
    with atomic_write(path, "w") as handle:
        handle.write(text)
    return os.fspath(path)


def json_default(value: Any) -> Any:
    """``json.dump`` fallback that turns numpy scalars and arrays into Python numbers and lists."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"object of type {type(value).__name__} is not JSON serialisable")


def atomic_write_json(path: str, obj: Any, **dump_kwargs: Any) -> str:
    """Writes ``obj`` as JSON to ``path`` atomically; returns ``path``.

    Args:
        path: destination file.
        obj: JSON-serialisable object; numpy values are converted (:func:`json_default`) unless
            ``dump_kwargs`` gives another ``default``.
        **dump_kwargs: passed to ``json.dump`` (``indent``, ``sort_keys``, ...).
    """
    dump_kwargs.setdefault("default", json_default)
    with atomic_write(path, "w") as handle:
        json.dump(obj, handle, **dump_kwargs)
    return os.fspath(path)


def atomic_torch_save(obj: Any, path: str) -> str:
    """``torch.save(obj, path)`` atomically (same argument order as ``torch.save``); returns ``path``."""
    import torch

    with atomic_write(path, "wb") as handle:
        torch.save(obj, handle)
    return os.fspath(path)
