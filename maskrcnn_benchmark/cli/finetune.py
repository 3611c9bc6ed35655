"""Fine-tune a FIBER checkpoint on task configs (ODinW / custom data), full or few-shot, several seeds.

    python tools/finetune.py --config-file CONFIG --ft-tasks "configs/odinw_13/*.yaml" \
        --custom_shot_and_epoch_and_general_copy 3_200_4 --shuffle_seeds 3,30,300 \
        --evaluate_only_best_on_test MODEL.WEIGHT W.pth SOLVER.TUNING_HIGHLEVEL_OVERRIDE full ...

"S_E_C" = shots (0 = all data; 10000 = no training, evaluate the initial weights), epochs, copies of the
training set per epoch. Each (task, seed) trains into OUTPUT_DIR/ft_task_<i>[_seed_<s>]; the per-run and
averaged results are printed and saved to OUTPUT_DIR/finetune_results.{json,txt}. ``--skip-test`` skips the
final-model evaluation on DATASETS.TEST; ``--evaluate_only_best_on_test`` evaluates model_best.pth on the "test"
split (``--push_both_val_and_test`` also on "val").

The same tool as ``fiber-finetune`` (installed console script) and ``python tools/finetune.py`` (upstream's path).
"""

from __future__ import annotations

import argparse
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
    parser = tool_parser("FIBER fine-tuning on task configs", training=True)
    parser.add_argument("--ft-tasks", "--ft_tasks", dest="ft_tasks", required=True,
                        help="comma-separated task YAML paths or globs")
    parser.add_argument("--skip-train", dest="skip_train", action="store_true", help="only evaluate")
    parser.add_argument("--skip_optimizer_resume", action="store_true",
                        help="when resuming, keep the weights, EMA and iteration but start a fresh optimizer (its "
                             "schedule continues at the resumed iteration)")
    parser.add_argument("--custom_shot_and_epoch_and_general_copy", default=None, metavar="S_E_C",
                        help='few-shot setting "shots_epochs_copies", e.g. 3_200_4 (0_200_1 = all data)')
    parser.add_argument("--shuffle_seeds", default=None,
                        help="comma-separated DATASETS.SHUFFLE_SEED values, one run each (few-shot subsets differ)")
    parser.add_argument("--evaluate_only_best_on_test", action="store_true",
                        help="evaluate model_best.pth on the registered 'test' split")
    parser.add_argument("--push_both_val_and_test", action="store_true",
                        help="with the best model, report the 'val' split as well")
    parser.add_argument("--keep_testing", action="store_true", help="accepted for upstream's command lines")
    return parser


def run(args: argparse.Namespace) -> int:
    """The tool's work for parsed arguments; bad input raises (``main`` turns that into a message)."""
    from maskrcnn_benchmark.engine.finetune import (
        FinetuneOptions,
        expand_task_globs,
        parse_shot_epoch_copy,
        run_finetune,
    )
    from maskrcnn_benchmark.utils.distributed import init_distributed_from_env

    distributed = init_distributed_from_env()
    cfg = load_config(args.config_file, args.opts)
    from_environment = output_dir_from_environment(cfg)
    default_setup(cfg, args, "finetune")
    tasks = expand_task_globs(args.ft_tasks)
    seeds = [int(s) for s in args.shuffle_seeds.split(",") if s.strip()] if args.shuffle_seeds else [None]
    options = FinetuneOptions(skip_train=args.skip_train, skip_test=args.skip_test,
                              skip_optimizer_resume=args.skip_optimizer_resume,
                              evaluate_only_best_on_test=args.evaluate_only_best_on_test,
                              push_both_val_and_test=args.push_both_val_and_test,
                              use_tensorboard=args.use_tensorboard)
    opts = list(args.opts or [])
    if from_environment:
        opts += ["OUTPUT_DIR", cfg.OUTPUT_DIR]
    run_finetune(args.config_file, opts, tasks, parse_shot_epoch_copy(
        args.custom_shot_and_epoch_and_general_copy), seeds, cfg.OUTPUT_DIR, options, distributed,
        resolve_device(cfg))
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    """``fiber-finetune`` and ``tools/finetune.py``: parse ``argv`` and run (see ``run_tool``)."""
    run_tool(lambda: run(build_parser().parse_args(argv)))


if __name__ == "__main__":
    main()
