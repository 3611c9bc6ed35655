"""The embedded demo: ``python -m maskrcnn_benchmark.demo``.

On a CPU, in a few minutes, it runs the whole pipeline the real tools run:

1. writes a synthetic COCO-format data set of coloured shapes ("red square", "blue circle", ...) under
   ``<output>/data`` (``data/synthetic.py``) and a local roberta-style BPE tokenizer under ``<output>/tokenizer``;
2. builds the tiny FIBER model (``configs/tiny/fiber_tiny.yaml`` + ``configs/tiny/demo.yaml``) and evaluates
   its random initialisation on the validation split with the machinery of ``tools/test_grounding_net.py``
   (detection prompts from the class names, COCO AP);
3. trains it from that initialisation with the machinery of ``tools/train_net.py`` (detection-as-grounding
   captions, AdamW, warm-up + steps, checkpoints);
4. evaluates the trained weights the same way and prints untrained vs trained metrics.

The exit status is 0 when training raised the AP, 1 otherwise. Everything lands in ``--output-dir``
(default ``OUTPUT/demo``): data, tokenizer, checkpoints, ``metrics.jsonl``, evaluation outputs and
``demo_results.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["main", "build_parser", "run_demo"]

logger = logging.getLogger("maskrcnn_benchmark.demo")

_REPO_CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "tiny"
SHOWN_METRICS = ("AP", "AP50", "AP75")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m maskrcnn_benchmark.demo",
                                     description="train and evaluate a tiny FIBER on synthetic shapes (CPU)")
    parser.add_argument("--output-dir", default=os.path.join("OUTPUT", "demo"), help="where everything is written")
    parser.add_argument("--config-file", default=str(_REPO_CONFIGS / "fiber_tiny.yaml"), help="tiny model config")
    parser.add_argument("--demo-config", default=str(_REPO_CONFIGS / "demo.yaml"),
                        help="data/schedule settings merged on top of --config-file")
    parser.add_argument("--num-images", type=int, default=None, help="images per split (default 48)")
    parser.add_argument("--seed", type=int, default=0, help="data and initialisation seed")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides, e.g. SOLVER.MAX_ITER 100")
    return parser


def _configure_logging(output_dir: str) -> None:
    """Library INFO goes to ``<output>/demo_log.txt``; the console shows the demo's steps and warnings."""
    from maskrcnn_benchmark.utils.logger import setup_logger

    library = setup_logger("maskrcnn_benchmark", output_dir, 0, filename="demo_log.txt")
    for handler in library.handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            handler.setLevel(logging.WARNING)
    demo = logging.getLogger("maskrcnn_benchmark.demo")
    demo.setLevel(logging.INFO)
    demo.propagate = True
    console = logging.StreamHandler(sys.stdout)
    console.setLevel(logging.INFO)
    console.setFormatter(logging.Formatter("[demo] %(message)s"))
    demo.handlers = [console]


def _prepare(args, output_dir: str):
    """Data, tokenizer and the merged config."""
    from maskrcnn_benchmark.config import clean_opts, load_config
    from maskrcnn_benchmark.data.synthetic import write_coco
    from maskrcnn_benchmark.modeling.language_backbone.tokenizer import write_local_bpe_tokenizer

    data_root = os.path.join(output_dir, "data")
    num_images = args.num_images or 48
    logger.info("step 1/4: writing %d synthetic training and %d validation images to %s", num_images, num_images,
                data_root)
    manifest = write_coco(data_root, seed=args.seed, num_images=num_images)
    os.environ["DATASET"] = os.path.abspath(data_root)
    tokenizer_dir = write_local_bpe_tokenizer(os.path.join(output_dir, "tokenizer"))
    opts = ["MODEL.LANGUAGE_BACKBONE.TOKENIZER_TYPE", tokenizer_dir, "OUTPUT_DIR", os.path.join(output_dir, "train"),
            "SOLVER.SEED", str(args.seed)] + clean_opts(args.opts)
    cfg = load_config(args.config_file, opts, task_configs=[args.demo_config])
    return cfg, manifest


def _evaluate(cfg, weight: str, device, label: str) -> dict[str, Any]:
    from maskrcnn_benchmark.engine.evaluate import evaluate_checkpoint

    eval_cfg = cfg.clone()
    eval_cfg.defrost()
    eval_cfg.OUTPUT_DIR = os.path.join(os.path.dirname(cfg.OUTPUT_DIR), f"eval_{label}")
    summary = evaluate_checkpoint(eval_cfg, weight, [], False, device)
    (metrics,) = [m for datasets in summary["tasks"].values() for m in datasets.values()]
    return metrics


def _initial_weights(cfg, device, path: str) -> None:
    """Build the model with the run's seed and save its random initialisation (the "untrained" model)."""
    import torch

    from maskrcnn_benchmark.engine.runner import build_model
    from maskrcnn_benchmark.utils.atomic_io import atomic_torch_save
    from maskrcnn_benchmark.utils.miscellaneous import seed_all

    seed_all(int(cfg.SOLVER.SEED))
    model = build_model(cfg, device)
    atomic_torch_save({"model": model.state_dict()}, path)
    del model
    torch.set_grad_enabled(True)


def _table(untrained: dict[str, Any], trained: dict[str, Any]) -> str:
    fmt = lambda v: "n/a" if v is None else f"{v:6.2f}"  # noqa: E731
    lines = [f"{'metric (COCO box, %)':<22} {'untrained':>10} {'trained':>10}", "-" * 44]
    for key in SHOWN_METRICS:
        lines.append(f"{key:<22} {fmt(untrained.get(key)):>10} {fmt(trained.get(key)):>10}")
    return "\n".join(lines)


def run_demo(args) -> dict[str, Any]:
    """Run the four steps; returns the results dict (also written to ``<output>/demo_results.json``)."""
    from maskrcnn_benchmark.engine.defaults import resolve_device
    from maskrcnn_benchmark.engine.runner import train
    from maskrcnn_benchmark.utils.miscellaneous import save_config, seed_all

    start = time.time()
    output_dir = os.path.abspath(args.output_dir)
    os.makedirs(output_dir, exist_ok=True)
    _configure_logging(output_dir)
    cfg, _ = _prepare(args, output_dir)
    device = resolve_device(cfg)
    os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
    init_path = os.path.join(output_dir, "untrained.pth")
    _initial_weights(cfg, device, init_path)

    logger.info("step 2/4: evaluating the untrained tiny model on %s", list(cfg.DATASETS.TEST))
    untrained = _evaluate(cfg, init_path, device, "untrained")
    logger.info("untrained AP %.2f", untrained.get("AP") or 0.0)

    logger.info("step 3/4: training for %d iterations (batch %d) on %s", cfg.SOLVER.MAX_ITER,
                cfg.SOLVER.IMS_PER_BATCH, list(cfg.DATASETS.TRAIN))
    train_cfg = cfg.clone()
    train_cfg.MODEL.WEIGHT = init_path
    save_config(train_cfg, os.path.join(train_cfg.OUTPUT_DIR, "config.yaml"))
    seed_all(int(cfg.SOLVER.SEED))
    train_start = time.time()
    _, summary = train(train_cfg, False, device)
    train_seconds = time.time() - train_start
    final = os.path.join(train_cfg.OUTPUT_DIR, "model_final.pth")

    logger.info("step 4/4: evaluating the trained model")
    trained = _evaluate(cfg, final, device, "trained")
    results = {
        "untrained": {k: untrained.get(k) for k in SHOWN_METRICS},
        "trained": {k: trained.get(k) for k in SHOWN_METRICS},
        "iterations": summary["iteration"],
        "train_seconds": round(train_seconds, 1),
        "total_seconds": round(time.time() - start, 1),
        "final_losses": summary["meters"],
        "output_dir": output_dir,
    }
    results["improved"] = (trained.get("AP") or 0.0) > (untrained.get("AP") or 0.0)
    with open(os.path.join(output_dir, "demo_results.json"), "w") as handle:
        json.dump(results, handle, indent=2)
    return results


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    results = run_demo(args)
    untrained, trained = results["untrained"], results["trained"]
    print()
    print(_table(untrained, trained))
    print(f"\ntrained {results['iterations']} iterations in {results['train_seconds']:.0f} s; whole demo "
          f"{results['total_seconds']:.0f} s; outputs in {results['output_dir']}")
    if results["improved"]:
        print("training raised the AP: the pipeline learns.")
        return 0
    print("training did NOT raise the AP (unexpected): see demo_log.txt")
    return 1


if __name__ == "__main__":
    from maskrcnn_benchmark.engine.defaults import run_tool

    run_tool(main)
