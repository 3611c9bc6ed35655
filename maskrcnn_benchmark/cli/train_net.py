"""Train a FIBER model from a YAML config (upstream's flags; single process, or ``torchrun`` for DDP).

    python tools/train_net.py --config-file configs/tiny/fiber_tiny.yaml OUTPUT_DIR out/tiny
    torchrun --nproc_per_node 8 tools/train_net.py --config-file CONFIG --skip-test MODEL.WEIGHT W.pth
    (multi-node: torchrun --nnodes N --node_rank i --rdzv_endpoint HOST:PORT ...)

A relaunch with the same OUTPUT_DIR resumes from ``OUTPUT_DIR/last_checkpoint`` (``--skip_optimizer_resume``: with a
fresh optimizer, e.g. after changing the learning rates). Training that turns NaN/inf stops with a one-line message
and a non-zero exit status, having saved nothing non-finite. Unless ``--skip-test`` is given,
the trained model is evaluated on DATASETS.TEST at the end (upstream's flag was a no-op).

The same tool as ``fiber-train`` (installed console script) and ``python tools/train_net.py`` (upstream's path).
"""

from __future__ import annotations

import argparse
import os
import shutil
from collections.abc import Sequence

from maskrcnn_benchmark.config import load_config
from maskrcnn_benchmark.engine.defaults import (
    default_setup,
    output_dir_from_environment,
    resolve_device,
    run_tool,
    tool_parser,
)


def build_parser() -> argparse.ArgumentParser:
    parser = tool_parser("FIBER training", training=True)
    parser.add_argument("--save_original_config", action="store_true",
                        help="copy the --config-file as given to OUTPUT_DIR/original_config.yaml")
    parser.add_argument("--disable_output_distributed", action="store_true",
                        help="let every rank log, not only rank 0")
    parser.add_argument("--debug_nan_checkpoint", action="store_true",
                        help="save the weights to OUTPUT_DIR/nan_debug_<iter>.pth when the loss, the gradients or "
                             "the weights turn non-finite")
    parser.add_argument("--skip_optimizer_resume", action="store_true",
                        help="when resuming, keep the weights, EMA and iteration but start a fresh optimizer (its "
                             "schedule continues at the resumed iteration): after a change of SOLVER.BASE_LR, "
                             "LANG_LR, ... or of the frozen parts that alters the optimizer's parameter groups")
    parser.add_argument("--override_output_dir", default=None, help="use this OUTPUT_DIR instead of the config's")
    return parser


def run(args: argparse.Namespace) -> int:
    """The tool's work for parsed arguments; bad input raises (``main`` turns that into a message)."""
    from maskrcnn_benchmark.engine.runner import evaluate_datasets, train
    from maskrcnn_benchmark.utils.distributed import init_distributed_from_env, synchronize

    distributed = init_distributed_from_env()
    cfg = load_config(args.config_file, args.opts)
    if args.override_output_dir:
        cfg.OUTPUT_DIR = args.override_output_dir
    output_dir_from_environment(cfg)
    log = default_setup(cfg, args, "train_net", all_ranks_log=args.disable_output_distributed)
    if args.save_original_config and cfg.OUTPUT_DIR:
        shutil.copyfile(args.config_file, os.path.join(cfg.OUTPUT_DIR, "original_config.yaml"))
    device = resolve_device(cfg)
    model, summary = train(cfg, distributed, device, use_tensorboard=args.use_tensorboard,
                           debug_nan_checkpoint=args.debug_nan_checkpoint,
                           skip_optimizer_resume=args.skip_optimizer_resume)
    log.info("training finished: %s", {k: v for k, v in summary.items() if k != "meters"})
    if not args.skip_test and len(cfg.DATASETS.TEST) > 0:
        synchronize()
        evaluate_datasets(cfg, model, distributed, device, os.path.join(cfg.OUTPUT_DIR, "inference"))
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    """``fiber-train`` and ``tools/train_net.py``: parse ``argv`` and run (see ``run_tool``)."""
    run_tool(lambda: run(build_parser().parse_args(argv)))


if __name__ == "__main__":
    main()
