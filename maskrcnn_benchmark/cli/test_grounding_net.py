"""Evaluate a FIBER checkpoint on detection / grounding test sets (upstream's flags).

    python tools/test_grounding_net.py --config-file CONFIG --weight W.pth TEST.IMS_PER_BATCH 1 \
        TEST.EVAL_TASK detection OUTPUT_DIR out
    python tools/test_grounding_net.py --config-file CONFIG --weight W.pth \
        --task_config configs/flickr/test.yaml,configs/flickr/val.yaml TEST.EVAL_TASK grounding ...

The model is built from --config-file + opts. For every task config (comma list; none = the model config's
DATASETS.TEST): task = model config + task file + opts again. Unlike upstream, the task file's post-processing
keys (MODEL.ATSS.INFERENCE_TH / NMS_TH / PRE_NMS_TOP_N / DETECTIONS_PER_IMG, TEST.MDETR_STYLE_AGGREGATE_CLASS_NUM)
take effect; NUM_CLASSES placeholders and keys of heads FIBER lacks are ignored with a note; any other MODEL key
that differs is an error. Outputs per data set under OUTPUT_DIR/eval/<weight name>/<dataset>/: metrics.json,
metrics.txt (table), the COCO-style predictions JSON; OUTPUT_DIR/eval/<weight name>/summary.json holds all of
them (and the ODinW average when several ODinW task configs are given).

The same tool as ``fiber-test`` (installed console script) and ``python tools/test_grounding_net.py``
(upstream's path).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from maskrcnn_benchmark.config import load_config
from maskrcnn_benchmark.engine.defaults import (
    UserInputError,
    default_setup,
    expand_config_list,
    resolve_device,
    run_tool,
    tool_parser,
)


def build_parser() -> argparse.ArgumentParser:
    parser = tool_parser("FIBER detection / grounding evaluation")
    parser.add_argument("--weight", default=None, metavar="FILE", help="checkpoint to evaluate (key 'model')")
    parser.add_argument("--task_config", "--task-config", dest="task_config", default=None,
                        help="comma-separated task YAMLs or globs (data set + evaluation options)")
    parser.add_argument("--world-size", dest="world_size", type=int, default=1,
                        help="number of processes (use torchrun; kept for upstream's command lines)")
    parser.add_argument("--dist-url", dest="dist_url", default="env://", help="kept for upstream's command lines")
    parser.add_argument("--allow-untrained-weights", dest="allow_untrained", action="store_true",
                        help="run with a weight file that leaves parts of the detector untrained (e.g. a "
                             "coarse-stage checkpoint: random FPN and head); refused without this flag")
    return parser


def run(args: argparse.Namespace) -> int:
    """The tool's work for parsed arguments; bad input raises (``main`` turns that into a message)."""
    from maskrcnn_benchmark.engine.evaluate import evaluate_checkpoint
    from maskrcnn_benchmark.utils.distributed import get_world_size, init_distributed_from_env

    distributed = init_distributed_from_env()
    if args.world_size > 1 and get_world_size() == 1:
        raise UserInputError(f"--world-size {args.world_size} needs a launcher: "
                             f"torchrun --nproc_per_node {args.world_size} tools/test_grounding_net.py ...")
    cfg = load_config(args.config_file, args.opts)
    if not args.weight:
        args.weight = cfg.MODEL.WEIGHT or None
    default_setup(cfg, args, "test_grounding_net")
    tasks = expand_config_list(args.task_config, "--task_config")
    evaluate_checkpoint(cfg, args.weight, tasks, distributed, resolve_device(cfg), config_file=args.config_file,
                        opts=args.opts, allow_untrained=args.allow_untrained)
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    """``fiber-test`` and ``tools/test_grounding_net.py``: parse ``argv`` and run (see ``run_tool``)."""
    run_tool(lambda: run(build_parser().parse_args(argv)))


if __name__ == "__main__":
    main()
