#!/usr/bin/env python
"""Write the small synthetic data sets (every real format) under one data root.

    python tools/make_synthetic_data.py --root DATASET_SYNTH --num-images 12
    DATASET=DATASET_SYNTH python tools/test_grounding_net.py ...   # the real configs now find the files
"""

import argparse
import json
import logging
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from maskrcnn_benchmark.data import synthetic  # noqa: E402

WRITERS = {
    "coco": synthetic.write_coco,
    "lvis": synthetic.write_lvis,
    "odinw": synthetic.write_odinw,
    "flickr": synthetic.write_flickr,
    "refexp": synthetic.write_refexp,
    "mixed": synthetic.write_mixed,
    "objects365": synthetic.write_objects365,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="output data root (created)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed -> same files)")
    parser.add_argument("--num-images", type=int, default=12, help="images per split")
    parser.add_argument("--lvis-categories", type=int, default=40,
                        help="LVIS category count (a few hundred exercises chunked prompts)")
    parser.add_argument("--image-size", type=int, nargs=2, metavar=("W", "H"), default=None,
                        help="fixed image size (default: random 128-200 px, both orientations)")
    parser.add_argument("--only", default="", help=f"comma list of data sets to write ({', '.join(WRITERS)}); "
                                                   "default: all")
    return parser


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    size = tuple(args.image_size) if args.image_size else None
    if not args.only:
        manifest = synthetic.make_all(args.root, args.seed, args.num_images, args.lvis_categories,
                                      image_size=size)
    else:
        manifest = {}
        for name in [n.strip() for n in args.only.split(",") if n.strip()]:
            if name not in WRITERS:
                print(f"unknown data set {name!r}; choose from {', '.join(WRITERS)}", file=sys.stderr)
                return 2
            extra = {"num_categories": args.lvis_categories} if name == "lvis" else {}
            extra["image_size"] = size
            manifest[name] = WRITERS[name](args.root, args.seed, args.num_images, **extra)
    files = sorted(f for entry in manifest.values() if isinstance(entry, dict)
                   for f in entry.get("ann_files", {}).values())
    logging.info("wrote %d annotation files under %s", len(files), os.path.abspath(args.root))
    print(json.dumps({"root": os.path.abspath(args.root), "annotation_files": files}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(build_parser().parse_args()))
