"""Reading the user's JSON files (plain or gzip-compressed) with errors that name the file.

Every reader of annotation, prediction and result files goes through :func:`read_json_file`: a missing
file raises ``FileNotFoundError``, a directory, an unreadable gzip stream, non-UTF-8 bytes or malformed JSON
raise ``ValueError`` - all naming the path. A file is read as gzip when it starts with gzip's magic bytes
(whatever its name), so ``predictions.json.gz`` and a renamed ``.json`` both work.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from typing import Any

__all__ = ["read_json_file"]

_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as stream:
        data = stream.read()
    if not data.startswith(_GZIP_MAGIC):
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f"{path}: starts like a gzip file but does not decompress ({e})") from e


def read_json_file(path: str | os.PathLike, what: str = "file") -> Any:
    """Loads a JSON (or gzip-compressed JSON) file.

    Args:
        path: the file.
        what: what the file is, for the "not found" message (``"annotation file"``, ``"predictions file"``).

    Raises:
        FileNotFoundError: no such file.
        ValueError: a directory, bad gzip data, bytes that are not UTF-8, malformed or too deeply nested JSON.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"{path}: is a directory, not a JSON {what}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    data = _read_bytes(path)
    if not data.strip():
        raise ValueError(f"{path}: the file is empty (expected JSON)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not a JSON text file (byte {e.start} is not UTF-8: {e.reason})") from e
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    except RecursionError as e:
        raise ValueError(f"{path}: JSON nested too deeply to read") from e
