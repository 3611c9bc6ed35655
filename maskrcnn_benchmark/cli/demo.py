"""Run a FIBER model on your images; write annotated PNGs and a detections JSON.

    # detection: class names (comma-separated, or @file with one name per line)
    python tools/demo.py --config-file configs/e2e_dyhead_SwinT_B_FPN_coco_finetuning_fusion_backbone.yaml \
        --weight MODEL/fiber_coco.pth --input street.jpg photos/ --output demo_out \
        --classes "person,bicycle,car" --threshold 0.5

    # grounding: a caption; phrases are the pieces between "." "," ";" unless given with --phrases
    python tools/demo.py --config-file configs/refcoco.yaml --weight MODEL/fiber_refcoco.pth \
        --input img.jpg --output out --caption "the man on the left. a red umbrella"

Writes ``<output>/<image name>.png`` (boxes in a fixed colour per class, "name score" tags) and
``<output>/detections.json``: ``{"config", "weight", "prompt", "threshold", "images": [{"source", "output",
"width", "height", "detections": [{"box": [x1, y1, x2, y2], "score", "label", "name"}]}], "unreadable": [...]}``
with boxes in original image pixels. Trailing ``KEY VALUE`` pairs override the config.

The output folder is created (and checked to be writable) before the model is built. An image that cannot be
read is skipped with a warning, the others are written, and the exit status is 1 at the end (``--strict``
stops at the first one instead).

The same tool as ``fiber-demo`` (installed console script) and ``python tools/demo.py``
(upstream's path).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Sequence

from maskrcnn_benchmark.config import load_config
from maskrcnn_benchmark.engine.defaults import (
    UserInputError,
    run_tool,
    tool_parser,
)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
logger = logging.getLogger("demo")


def build_parser() -> argparse.ArgumentParser:
    parser = tool_parser("FIBER demo: detections on your images")
    parser.add_argument("--weight", default=None, metavar="FILE", help="checkpoint (default MODEL.WEIGHT)")
    parser.add_argument("--input", nargs="+", required=True, help="image files and/or folders of images")
    parser.add_argument("--output", required=True, help="folder for the annotated PNGs and detections.json")
    parser.add_argument("--threshold", type=float, default=0.5, help="minimum score of a drawn detection")
    prompt = parser.add_mutually_exclusive_group(required=True)
    prompt.add_argument("--classes", help="comma-separated class names, or @FILE with one name per line")
    prompt.add_argument("--caption", help="a caption to ground")
    parser.add_argument("--phrases", default=None,
                        help="'|'-separated phrases of --caption (default: split at . , ;)")
    parser.add_argument("--batch-size", dest="batch_size", type=int, default=4, help="images per forward pass")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default MODEL.DEVICE)")
    parser.add_argument("--allow-untrained-weights", dest="allow_untrained", action="store_true",
                        help="run with a weight file that leaves parts of the detector untrained (e.g. a "
                             "coarse-stage checkpoint: random FPN and head); refused without this flag")
    parser.add_argument("--strict", action="store_true",
                        help="stop at the first unreadable image (default: skip it with a warning, write the "
                             "others and exit with status 1 at the end)")
    return parser


def collect_images(inputs):
    """Files as given, folders expanded to their image files (sorted); missing paths are an error."""
    files = []
    for item in inputs:
        if os.path.isdir(item):
            found = sorted(os.path.join(item, name) for name in os.listdir(item)
                           if name.lower().endswith(IMAGE_EXTENSIONS))
            if not found:
                raise UserInputError(f"--input folder {item} holds no image ({', '.join(IMAGE_EXTENSIONS)})")
            files.extend(found)
        elif os.path.isfile(item):
            files.append(item)
        elif item[:1].isupper() and "." in item and os.path.splitext(item)[1].lower() not in IMAGE_EXTENSIONS:
            raise UserInputError(f"--input {item} looks like a config key: give KEY VALUE overrides after the "
                                 f"other flags (e.g. ... --input img.jpg --output DIR {item} VALUE)")
        else:
            raise FileNotFoundError(f"--input {item} does not exist")
    return files


def parse_classes(spec: str):
    if spec.startswith("@"):
        with open(spec[1:], encoding="utf-8") as handle:
            names = [line.strip() for line in handle]
    else:
        names = [name.strip() for name in spec.split(",")]
    names = [name for name in names if name]
    if not names:
        raise UserInputError("--classes holds no class name")
    return names


def _output_names(files):
    """One PNG name per input; clashes (same stem in two folders) get a numeric suffix."""
    names, used = [], set()
    for path in files:
        stem = os.path.splitext(os.path.basename(path))[0]
        name, k = f"{stem}.png", 1
        while name in used:
            name, k = f"{stem}_{k}.png", k + 1
        used.add(name)
        names.append(name)
    return names


def prepare_output_folder(folder: str) -> None:
    """Creates ``--output`` (before the model is built) and checks that files can be written there."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise UserInputError(f"--output {folder} is a file, not a folder")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise UserInputError(f"--output {folder}: cannot create the folder ({e.strerror or e})") from e
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserInputError(f"--output {folder}: the folder is not writable")


def read_images(files, strict: bool):
    """``(path, 8-bit RGB image)`` for every readable file; an unreadable one is skipped with a warning.

    Returns:
        ``(readable, failures)``: failures are ``"path: reason"`` lines.

    Raises:
        ImageReadError / FileNotFoundError: with ``strict``, at the first unreadable file.
    """
    from maskrcnn_benchmark.data.image_io import ImageReadError, load_image

    readable, failures = [], []
    for path in files:
        try:
            readable.append((path, load_image(path)[0]))
        except (ImageReadError, FileNotFoundError) as e:
            if strict:
                raise
            logger.warning("skipping %s: %s", path, e)
            failures.append(str(e))
    return readable, failures


def _prompt(predictor, args):
    """``(prompt for Predictor.predict, its description for detections.json)``."""
    if args.caption is not None:
        phrases = [p for p in args.phrases.split("|")] if args.phrases else None
        prompt = predictor.grounding_prompt(args.caption, phrases=phrases)
        return prompt, {"caption": args.caption, "phrases": [prompt.names[k] for k in sorted(prompt.names)]}
    if args.phrases:
        raise UserInputError("--phrases goes with --caption")
    classes = parse_classes(args.classes)
    return classes, {"classes": classes}


def run(args: argparse.Namespace) -> int:
    """The tool's work for parsed arguments; bad input raises (``main`` turns that into a message)."""
    from maskrcnn_benchmark.engine.predictor import Predictor
    from maskrcnn_benchmark.utils.atomic_io import atomic_write_text
    from maskrcnn_benchmark.utils.logger import setup_logger
    from maskrcnn_benchmark.utils.visualizer import draw_detections

    setup_logger("maskrcnn_benchmark")
    setup_logger("demo")
    cfg = load_config(args.config_file, args.opts)
    weight = args.weight or cfg.MODEL.WEIGHT or None
    if weight is None:
        logger.warning("no --weight and no MODEL.WEIGHT: the model has random weights")
    files = collect_images(args.input)
    prepare_output_folder(args.output)
    images, failures = read_images(files, args.strict)
    predictor = Predictor(cfg, weight=weight, device=args.device, batch_size=args.batch_size,
                          allow_untrained=args.allow_untrained)
    prompt, prompt_info = _prompt(predictor, args)
    results = predictor.predict([image for _, image in images], prompt, threshold=args.threshold) if images else []
    records = []
    for (path, image), name, detections in zip(images, _output_names([p for p, _ in images]), results):
        out_path = os.path.join(args.output, name)
        draw_detections(image, detections).save(out_path)
        detections.source = path
        record = detections.to_dict()
        record["output"] = out_path
        records.append(record)
        logger.info("%s: %d detections -> %s", path, len(detections), out_path)
    summary = {"config": args.config_file, "weight": weight, "prompt": prompt_info, "threshold": args.threshold,
               "images": records, "unreadable": failures}
    atomic_write_text(os.path.join(args.output, "detections.json"), json.dumps(summary, indent=1))
    logger.info("wrote %d images and %s", len(records), os.path.join(args.output, "detections.json"))
    if failures:
        logger.error("%d of %d images could not be read (skipped): %s", len(failures), len(files),
                     "; ".join(failures))
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    """``fiber-demo`` and ``tools/demo.py``: parse ``argv`` and run (see ``run_tool``)."""
    run_tool(lambda: run(build_parser().parse_args(argv)))


if __name__ == "__main__":
    main()
