#!/usr/bin/env python
"""Run a FIBER model on your images; write annotated PNGs and a detections JSON.

    python tools/demo.py --config-file CONFIG --weight W.pth --input street.jpg photos/ --output demo_out \
        --classes "person,bicycle,car" --threshold 0.5

The body is :mod:`maskrcnn_benchmark.cli.demo` (flags, outputs, details); once installed, ``fiber-demo`` runs
the same code from any folder.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from maskrcnn_benchmark.cli.demo import build_parser, collect_images, main, parse_classes, run  # noqa: E402, F401

if __name__ == "__main__":
    main()
