"""Shared plumbing of the command-line tools (tools/train_net.py, test_grounding_net.py, finetune.py, demo).

* :func:`add_common_arguments` - upstream's flags every tool accepts (``--config-file``, ``--local_rank`` /
  ``--local-rank``, trailing ``opts``); :func:`tool_parser` - a tool's parser with them, plus the flags the
  training tools share (``--skip-test``, ``--use-tensorboard``);
* :func:`output_dir_from_environment` - ``AMLT_OUTPUT_DIR`` overrides ``OUTPUT_DIR`` (training tools);
* ``load_config`` - re-exported from :func:`maskrcnn_benchmark.config.load_config`, the one config loader;
* :func:`default_setup` - output folder, logging (rank 0 verbose, others warnings), the command line, the
  environment and the merged config in the log, ``config.yaml`` saved next to the outputs, seeding;
* :func:`run_tool` - turns bad user input (missing file, unknown key, bad weight file, unwritable output) into
  an ``error:`` message and exit status 2 instead of a traceback wall (``--debug`` or ``FIBER_DEBUG=1`` shows
  the traceback).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable

import torch

from maskrcnn_benchmark.config import load_config
from maskrcnn_benchmark.utils.cli_errors import add_debug_argument
from maskrcnn_benchmark.utils.distributed import get_rank, get_world_size
from maskrcnn_benchmark.utils.logger import setup_logger
from maskrcnn_benchmark.utils.miscellaneous import save_config, seed_all

__all__ = [
    "add_common_arguments",
    "tool_parser",
    "output_dir_from_environment",
    "load_config",
    "default_setup",
    "resolve_device",
    "expand_config_list",
    "run_tool",
    "UserInputError",
]

logger = logging.getLogger(__name__)


class UserInputError(ValueError):
    """A problem with what the user asked for (reported in one line by :func:`run_tool`)."""


def add_common_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``--config-file``, ``--local_rank``/``--local-rank`` (ignored: torchrun sets LOCAL_RANK), ``--debug``
    (tracebacks instead of one-line errors) and ``opts``."""
    parser.add_argument("--config-file", "--config_file", dest="config_file", default="", metavar="FILE",
                        help="path to the model config (YAML)")
    parser.add_argument("--local_rank", "--local-rank", dest="local_rank", type=int, default=0,
                        help="set by torch.distributed.launch; torchrun uses the LOCAL_RANK variable instead")
    add_debug_argument(parser)
    parser.add_argument("opts", default=None, nargs=argparse.REMAINDER,
                        help="config overrides as KEY VALUE pairs, e.g. SOLVER.MAX_ITER 100")
    return parser


def tool_parser(description: str, training: bool = False) -> argparse.ArgumentParser:
    """A tool's argument parser with :func:`add_common_arguments`' flags.

    Args:
        description: the tool's one-line description (``--help``).
        training: also add the flags of the training tools (train_net, finetune): ``--skip-test`` (no final
            evaluation on DATASETS.TEST) and ``--use-tensorboard``.
    """
    parser = add_common_arguments(argparse.ArgumentParser(description=description))
    if training:
        parser.add_argument("--skip-test", dest="skip_test", action="store_true",
                            help="do not evaluate the final model on DATASETS.TEST")
        parser.add_argument("--use-tensorboard", dest="use_tensorboard", action="store_true",
                            help="write TensorBoard events to OUTPUT_DIR/tensorboard")
    return parser


def output_dir_from_environment(cfg) -> bool:
    """Sets ``cfg.OUTPUT_DIR`` from the ``AMLT_OUTPUT_DIR`` environment variable (Azure ML jobs) when it is set.

    Returns:
        True when the variable overrode ``OUTPUT_DIR``.
    """
    folder = os.environ.get("AMLT_OUTPUT_DIR")
    if not folder:
        return False
    cfg.OUTPUT_DIR = folder
    return True


def expand_config_list(spec: str | None, flag: str) -> list:
    """Comma-separated YAML paths or globs -> existing files, in the given order (globs sorted), no duplicates.

    Raises:
        FileNotFoundError: an entry matches no file (the message names the flag and the entry).
    """
    import glob

    files: list = []
    for pattern in [p.strip() for p in (spec or "").split(",") if p.strip()]:
        matches = sorted(glob.glob(pattern)) if any(c in pattern for c in "*?[") else [pattern]
        matches = [m for m in matches if os.path.isfile(m)]
        if not matches:
            raise FileNotFoundError(f"{flag}: {pattern} matches no file")
        files.extend(m for m in matches if m not in files)
    return files


def resolve_device(cfg) -> torch.device:
    """``MODEL.DEVICE``, falling back to the CPU (with a warning) when CUDA is asked for but absent."""
    name = str(cfg.MODEL.DEVICE)
    if name.startswith("cuda") and not torch.cuda.is_available():
        logger.warning("MODEL.DEVICE is %s but no CUDA device is visible: running on the CPU", name)
        return torch.device("cpu")
    if name.startswith("cuda") and get_world_size() > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device(name)


def _environment_summary() -> str:
    import platform

    cuda = torch.version.cuda if torch.cuda.is_available() else "not available"
    return (f"python {platform.python_version()}, torch {torch.__version__} (CUDA {cuda}), "
            f"{torch.cuda.device_count()} GPU(s), world size {get_world_size()}")


def default_setup(cfg, args, tool: str, save_cfg: bool = True, seed: int | None = None,
                  all_ranks_log: bool = False) -> logging.Logger:
    """Create OUTPUT_DIR, configure logging, log the command/environment/config, save config.yaml, seed.

    Args:
        cfg: the merged config.
        args: parsed arguments (logged).
        tool: tool name used as the log file prefix and logger name.
        save_cfg: write ``OUTPUT_DIR/config.yaml`` (rank 0).
        seed: seed for this process (default ``SOLVER.SEED + rank``, as upstream's train_net).
        all_ranks_log: let every rank log INFO (upstream's ``--disable_output_distributed``).
    """
    rank = get_rank()
    output_dir = cfg.OUTPUT_DIR
    if output_dir and rank == 0:
        os.makedirs(output_dir, exist_ok=True)
    tool_logger = setup_logger("maskrcnn_benchmark", output_dir, rank, filename=f"{tool}_log.txt",
                               all_ranks=all_ranks_log)
    setup_logger(tool, output_dir, rank, filename=f"{tool}_log.txt", all_ranks=all_ranks_log)
    tool_logger.info("command: %s", " ".join(sys.argv))
    tool_logger.info("arguments: %s", args)
    tool_logger.info("environment: %s", _environment_summary())
    tool_logger.debug("running with config:\n%s", cfg)
    if save_cfg and output_dir and rank == 0:
        save_config(cfg, os.path.join(output_dir, "config.yaml"))
    seed_all(int(cfg.SOLVER.SEED) + rank if seed is None else seed)
    return tool_logger


def run_tool(main: Callable[[], int]) -> None:
    """Run a tool's ``main`` and exit with its status; a user error exits 2 after a message on stderr.

    The message is the error's whole text (``error: <Type>: <message>``), and an ``OSError`` about a path
    names the path; ``--debug`` (or ``FIBER_DEBUG=1``) shows the traceback instead. See
    :mod:`maskrcnn_benchmark.utils.cli_errors`.
    """
    from maskrcnn_benchmark.utils.cli_errors import report_user_errors
    from maskrcnn_benchmark.utils.distributed import cleanup_distributed

    sys.exit(report_user_errors(main, cleanup=cleanup_distributed))
