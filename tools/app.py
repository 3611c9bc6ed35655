#!/usr/bin/env python
"""A local web page for a FIBER model: upload an image, type class names or a caption, see the boxes.

    # the tiny model that `python -m maskrcnn_benchmark.demo` trained (no download, CPU)
    python tools/app.py --demo

    # any model; --onnx runs an exported graph with onnxruntime instead of PyTorch
    python tools/app.py --config-file configs/e2e_dyhead_SwinT_B_FPN_coco_finetuning_fusion_backbone.yaml \
        --weight MODEL/fiber_coco.pth --examples street.jpg kitchen.jpg --classes "person,bicycle,car"

Serves http://127.0.0.1:7860 (``--host``/``--port`` to change; nothing is shared publicly). The model is loaded
once, before the page starts. The page shows the picture with boxes, labels and scores (as tools/demo.py
draws them), a table of the detections and a JSON file to download. Needs Gradio: ``pip install -e ".[app]"``.
Trailing ``KEY VALUE`` pairs override the config.
"""

import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from maskrcnn_benchmark.config import load_config  # noqa: E402
from maskrcnn_benchmark.engine.defaults import UserInputError, run_tool, tool_parser  # noqa: E402

logger = logging.getLogger("app")

#: What ``python -m maskrcnn_benchmark.demo`` trains on, and the validation images the README draws (the one
#: with three different shapes first).
DEMO_CLASSES = "red square, blue circle, green triangle, yellow diamond"
DEMO_EXAMPLES = ("000000005001.jpg", "000000005003.jpg", "000000005000.jpg", "000000005002.jpg")


def build_parser():
    parser = tool_parser("FIBER web demo (local Gradio page)")
    parser.add_argument("--weight", default=None, metavar="FILE", help="checkpoint (default MODEL.WEIGHT)")
    parser.add_argument("--demo", action="store_true",
                        help="use the model `python -m maskrcnn_benchmark.demo` trained (in --demo-dir)")
    parser.add_argument("--demo-dir", dest="demo_dir", default=os.path.join("OUTPUT", "demo"),
                        help="the demo's --output-dir (default OUTPUT/demo)")
    parser.add_argument("--onnx", default=None, metavar="FILE",
                        help="run this exported graph (tools/export_onnx.py) with onnxruntime; the config is "
                             "read from the file unless --config-file is given")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--threshold", type=float, default=None, help="default score threshold (0..1)")
    parser.add_argument("--examples", nargs="*", default=None, metavar="IMAGE", help="example images for the page")
    parser.add_argument("--classes", default=None, help="class names pre-filled with the examples")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default MODEL.DEVICE)")
    parser.add_argument("--allow-untrained-weights", dest="allow_untrained", action="store_true",
                        help="accept a checkpoint that leaves parts of the detector untrained")
    return parser


def demo_arguments(args):
    """Fill in config, weight, examples, classes and threshold of ``--demo`` (raises when it was not run)."""
    train = os.path.join(args.demo_dir, "train")
    config, weight = os.path.join(train, "config.yaml"), os.path.join(train, "model_final.pth")
    if not (os.path.isfile(config) and os.path.isfile(weight)):
        raise UserInputError(f"--demo: no trained demo model in {train} (config.yaml and model_final.pth); run "
                             f"`python -m maskrcnn_benchmark.demo --output-dir {args.demo_dir}` first (a few CPU "
                             f"minutes), or give --demo-dir")
    args.config_file, args.weight = args.config_file or config, args.weight or weight
    val = os.path.join(args.demo_dir, "data", "coco", "val2017")
    if args.examples is None:
        args.examples = [os.path.join(val, name) for name in DEMO_EXAMPLES if os.path.isfile(os.path.join(val, name))]
    args.classes = args.classes or DEMO_CLASSES
    args.threshold = 0.4 if args.threshold is None else args.threshold
    return args


def build_predictor(args):
    """The Predictor of the page (PyTorch, or onnxruntime with --onnx), loaded once."""
    from maskrcnn_benchmark.engine.predictor import Predictor

    if args.onnx:
        from maskrcnn_benchmark.export import onnx_predictor

        cfg = load_config(args.config_file, args.opts) if args.config_file else None
        return onnx_predictor(args.onnx, cfg=cfg, batch_size=1)
    if not args.config_file:
        raise UserInputError("give --config-file (and --weight), --demo or --onnx")
    cfg = load_config(args.config_file, args.opts)
    weight = args.weight or cfg.MODEL.WEIGHT or None
    if weight is None:
        logger.warning("no --weight and no MODEL.WEIGHT: the model has random weights")
    return Predictor(cfg, weight=weight, device=args.device, batch_size=1, allow_untrained=args.allow_untrained)


def main(args) -> int:
    from maskrcnn_benchmark.engine.web_demo import WebDemo, build_page, import_gradio, launch
    from maskrcnn_benchmark.utils.logger import setup_logger

    setup_logger("maskrcnn_benchmark")
    setup_logger("app")
    if args.demo:
        demo_arguments(args)
    threshold = 0.5 if args.threshold is None else args.threshold
    if not 0.0 <= threshold <= 1.0:
        raise UserInputError(f"--threshold must lie in 0..1, got {threshold}")
    for path in args.examples or ():
        if not os.path.isfile(path):
            raise FileNotFoundError(f"--examples: {path} does not exist")
    try:
        import_gradio()  # fail before loading the model when Gradio is missing
    except ImportError as e:
        raise UserInputError(str(e)) from e
    demo = WebDemo(build_predictor(args), threshold=threshold)
    examples = [[path, args.classes or ""] for path in args.examples or ()]
    logger.info("serving on http://%s:%d (Ctrl+C stops)", args.host, args.port)
    launch(build_page(demo, examples), host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    run_tool(lambda: main(build_parser().parse_args()))
