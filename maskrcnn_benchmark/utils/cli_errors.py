"""How the command lines report errors caused by the user's input: one clear message, no traceback wall.

Used by :func:`maskrcnn_benchmark.engine.defaults.run_tool` (tools/*.py) and by the module command lines
(``python -m maskrcnn_benchmark.data.evaluation``, ``python -m maskrcnn_benchmark.utils.checkpoint``).

A user error is a ``ValueError`` (bad file contents, bad values; also ``UserInputError`` and the readers'
``ImageReadError``), a ``FileNotFoundError``, a ``KeyError`` or ``TypeError`` raised with a message, or an
``OSError`` about a named path (permission denied, a file where a folder should be, ...), or a
``FloatingPointError`` (training that turned NaN/inf, e.g. from too high a learning rate; nothing non-finite was
saved). Its whole message is
printed as ``error: <Type>: <message>`` on stderr (every line of it: a checkpoint refusal keeps its convert
command, a shape mismatch its key report), without ANSI escape codes, and the process exits with status 2.
``--debug`` (or ``FIBER_DEBUG=1``) re-raises it instead, with the full traceback. Anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable

__all__ = ["USER_ERRORS", "add_debug_argument", "debug_requested", "user_error_message", "report_user_errors"]

USER_ERRORS = (ValueError, FileNotFoundError, KeyError, TypeError, OSError, FloatingPointError)
DEBUG_HINT = "--debug shows the traceback"

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
_WORKER_TRACEBACK = "\nOriginal Traceback (most recent call last):"
_debug_flag = False


class _DebugAction(argparse.Action):
    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=False, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        global _debug_flag
        _debug_flag = True
        setattr(namespace, self.dest, True)


def add_debug_argument(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Adds ``--debug``: errors show their full traceback instead of the one-line message."""
    parser.add_argument("--debug", action=_DebugAction,
                        help="on an error, show the full Python traceback instead of a one-line message")
    return parser


def debug_requested() -> bool:
    """True after ``--debug`` was parsed, or with ``FIBER_DEBUG`` set in the environment."""
    return _debug_flag or bool(os.environ.get("FIBER_DEBUG"))


def _os_error_message(error: OSError) -> str | None:
    path = error.filename
    if path is None:
        return None
    path = os.fsdecode(path)
    if isinstance(error, (FileExistsError, NotADirectoryError)) and os.path.exists(path) and not os.path.isdir(path):
        return f"{path} is a file, where a folder is needed"
    reason = error.strerror or str(error)
    if error.filename2 is not None:
        return f"{path} -> {os.fsdecode(error.filename2)}: {reason}"
    return f"{path}: {reason}"


def _from_worker(message: str, name: str) -> str:
    """The original message of an error re-raised by a DataLoader worker (drops the worker's traceback)."""
    tail = message.split(_WORKER_TRACEBACK, 1)[1]
    marker = f"{name}: "
    position = tail.rfind(marker)
    if position < 0:
        return message.split(_WORKER_TRACEBACK, 1)[0]
    return "in a data loader worker: " + tail[position + len(marker):].strip()


def user_error_message(error: BaseException) -> str | None:
    """The message to print for a user error, or None when ``error`` is not one (a bug keeps its traceback)."""
    if isinstance(error, OSError) and not isinstance(error, (FileNotFoundError, ValueError)):
        message = _os_error_message(error)
        if message is None:
            return None
    elif isinstance(error, USER_ERRORS):
        args = error.args
        message = args[0] if isinstance(error, KeyError) and len(args) == 1 and isinstance(args[0], str) else str(error)
        if isinstance(error, FileNotFoundError) and error.filename is not None:  # from open(): errno + path
            message = _os_error_message(error) or message
    else:
        return None
    message = _ANSI_ESCAPE.sub("", str(message)).strip()
    if _WORKER_TRACEBACK in message:
        message = _from_worker(message, type(error).__name__)
    return message or type(error).__name__


def report_user_errors(main: Callable[[], int | None], cleanup: Callable[[], None] | None = None) -> int:
    """Runs ``main()``; a user error prints ``error: <Type>: <message>`` on stderr and gives status 2.

    Args:
        main: the command's body; returns its exit status (None means 0).
        cleanup: called after ``main`` however it ends (e.g. tearing down the process group).

    Returns:
        the exit status: ``main``'s, or 2 after a user error. With ``--debug`` a user error propagates.
    """
    try:
        status = main()
    except USER_ERRORS as error:
        message = user_error_message(error)
        if message is None or debug_requested():
            raise
        lines = message.splitlines()
        hint = f" ({DEBUG_HINT})" if len(lines) == 1 else f"\n({DEBUG_HINT})"
        print(f"error: {type(error).__name__}: {message}{hint}", file=sys.stderr)
        return 2
    finally:
        if cleanup is not None:
            cleanup()
    return int(status or 0)
