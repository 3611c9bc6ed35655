"""Logging set-up for the command-line tools (the library itself only calls ``logging.getLogger``).

``setup_logger`` configures the ``maskrcnn_benchmark`` logger hierarchy (and the tool's own logger) once:
rank 0 logs INFO to the console and to ``<output_dir>/log.txt``; other ranks log WARNING and above only,
unless ``all_ranks=True`` (upstream's ``--disable_output_distributed`` turns that on).
"""

from __future__ import annotations

import logging
import os
import sys

__all__ = ["setup_logger", "log_first_n"]

_FORMAT = "%(asctime)s %(name)s %(levelname)s: %(message)s"
_DATE_FORMAT = "%m/%d %H:%M:%S"


def setup_logger(
    name: str = "maskrcnn_benchmark",
    output_dir: str | None = None,
    distributed_rank: int = 0,
    filename: str = "log.txt",
    all_ranks: bool = False,
) -> logging.Logger:
    """Attach console (and file) handlers to logger ``name``; safe to call more than once.

    Args:
        name: logger to configure ("maskrcnn_benchmark" covers the whole library).
        output_dir: if given and this is rank 0, also write ``output_dir/filename``.
        distributed_rank: global rank of this process.
        filename: log file name inside ``output_dir``.
        all_ranks: let non-zero ranks log INFO too (with their rank in the message).

    Returns:
        the configured logger.
    """
    log = logging.getLogger(name)
    log.setLevel(logging.DEBUG)
    log.propagate = False
    for handler in list(log.handlers):
        if getattr(handler, "_fiber_handler", False):
            log.removeHandler(handler)
            handler.close()
    fmt = _FORMAT if distributed_rank == 0 else f"[rank {distributed_rank}] " + _FORMAT
    formatter = logging.Formatter(fmt, datefmt=_DATE_FORMAT)

    console = logging.StreamHandler(stream=sys.stdout)
    console.setLevel(logging.INFO if (distributed_rank == 0 or all_ranks) else logging.WARNING)
    console.setFormatter(formatter)
    console._fiber_handler = True  # type: ignore[attr-defined]
    log.addHandler(console)

    if output_dir and distributed_rank == 0:
        os.makedirs(output_dir, exist_ok=True)
        file_handler = logging.FileHandler(os.path.join(output_dir, filename), mode="a")
        file_handler.setLevel(logging.DEBUG)
        file_handler.setFormatter(formatter)
        file_handler._fiber_handler = True  # type: ignore[attr-defined]
        log.addHandler(file_handler)
    return log


_LOGGED_ONCE: set = set()


def log_first_n(level: int, message: str, name: str = "maskrcnn_benchmark", key: str | None = None) -> None:
    """Log ``message`` only the first time this key (default: the message) is seen in this process."""
    key = key or message
    if key in _LOGGED_ONCE:
        return
    _LOGGED_ONCE.add(key)
    logging.getLogger(name).log(level, message)
