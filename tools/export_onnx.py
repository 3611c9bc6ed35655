#!/usr/bin/env python
"""Export a FIBER model to ONNX (opset 19): images + tokenised caption -> the VL head's raw outputs.

    python tools/export_onnx.py --config-file configs/e2e_dyhead_SwinT_B_FPN_coco_finetuning_fusion_backbone.yaml \
        --weight MODEL/fiber_coco.pth --output fiber_coco.onnx --image-size 800 1344 --check

The graph's inputs are ``images`` float32 [B, 3, H, W] (normalised BGR, zero-padded to the --image-size
canvas), ``input_ids`` and ``attention_mask`` int64 [B, L]; its outputs are ``box_regression_l``,
``centerness_l`` and ``dot_product_logits_l`` for each FPN level l. Batch and caption length are dynamic, the
canvas is fixed (default: a square of INPUT.MAX_SIZE_TEST). The config is stored in the file, so
``maskrcnn_benchmark.export.onnx_predictor(path)`` runs it with onnxruntime behind the usual Predictor (anchors,
box decoding, NMS and the token-to-label mapping run in Python). ``--check`` runs onnxruntime and PyTorch on
random inputs and prints the largest difference of each output (the tool fails above --tolerance).
Trailing ``KEY VALUE`` pairs override the config.
"""

import json
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from maskrcnn_benchmark.config import load_config  # noqa: E402
from maskrcnn_benchmark.engine.defaults import UserInputError, run_tool, tool_parser  # noqa: E402

logger = logging.getLogger("export_onnx")


def build_parser():
    parser = tool_parser("Export a FIBER model to ONNX (opset 19, DeformConv) and check it with onnxruntime")
    parser.add_argument("--weight", default=None, metavar="FILE", help="checkpoint (default MODEL.WEIGHT)")
    parser.add_argument("--output", required=True, metavar="FILE", help="the ONNX file to write")
    parser.add_argument("--image-size", dest="image_size", type=int, nargs=2, default=None, metavar=("H", "W"),
                        help="canvas height and width, multiples of 32 (default: a square of INPUT.MAX_SIZE_TEST)")
    parser.add_argument("--max-batch", dest="max_batch", type=int, default=64, help="largest batch of the graph")
    parser.add_argument("--check", action="store_true", help="compare onnxruntime with PyTorch on random inputs")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="largest absolute difference --check accepts")
    parser.add_argument("--allow-untrained-weights", dest="allow_untrained", action="store_true",
                        help="accept a checkpoint that leaves parts of the detector untrained (e.g. a coarse-stage "
                             "file)")
    return parser


def check_export(model, cfg, path, image_size) -> float:
    """Run PyTorch and onnxruntime on two random images and a random caption; print the errors per output as
    JSON and return the largest."""
    from maskrcnn_benchmark.export import DetectorGraph, OnnxDetector
    from maskrcnn_benchmark.export.onnx_export import sample_inputs

    images, input_ids, attention_mask = sample_inputs(cfg, image_size, batch=2, length=24, seed=1)
    expected = DetectorGraph(model.eval()).run(images, input_ids, attention_mask)
    detector = OnnxDetector(path, cfg=cfg)
    feeds = {"images": images.numpy(), "input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy()}
    got = dict(zip(expected, detector.session.run(None, feeds)))
    errors = {name: float(abs(expected[name].numpy() - got[name]).max()) for name in expected}
    worst = max(errors.values())
    print(json.dumps({"max_abs_error": worst, "per_output": errors}, indent=1))
    return worst


def main(args) -> int:
    from maskrcnn_benchmark.engine.weights import load_inference_weights
    from maskrcnn_benchmark.export import export_onnx
    from maskrcnn_benchmark.modeling.detector import build_detection_model
    from maskrcnn_benchmark.utils.logger import setup_logger

    setup_logger("maskrcnn_benchmark")
    setup_logger("export_onnx")
    cfg = load_config(args.config_file, args.opts)
    weight = args.weight or cfg.MODEL.WEIGHT or None
    if weight is None:
        logger.warning("no --weight and no MODEL.WEIGHT: exporting random weights")
    if args.max_batch < 1:
        raise UserInputError(f"--max-batch must be >= 1, got {args.max_batch}")
    model = build_detection_model(cfg)
    load_inference_weights(model, weight, use_ema=bool(cfg.TEST.USE_EMA_WEIGHTS), allow_untrained=args.allow_untrained)
    info = export_onnx(model, cfg, args.output, image_size=args.image_size, max_batch=args.max_batch)
    logger.info("wrote %s: %.1f MB, canvas %dx%d, batch 1..%d, captions 2..%d tokens, %.0f s", info.path,
                info.num_bytes / 1e6, *info.image_size, args.max_batch, info.max_caption_length, info.seconds)
    if args.check:
        worst = check_export(model, cfg, info.path, info.image_size)
        if worst > args.tolerance:
            logger.error("onnxruntime differs from PyTorch by %.3g > --tolerance %g", worst, args.tolerance)
            return 1
        logger.info("onnxruntime matches PyTorch: largest difference %.3g <= %g", worst, args.tolerance)
    return 0


if __name__ == "__main__":
    run_tool(lambda: main(build_parser().parse_args()))
