#!/usr/bin/env python
"""Train a FIBER model from a YAML config (upstream's flags; ``torchrun`` for DDP).

    python tools/train_net.py --config-file configs/tiny/fiber_tiny.yaml OUTPUT_DIR out/tiny
    torchrun --nproc_per_node 8 tools/train_net.py --config-file CONFIG --skip-test MODEL.WEIGHT W.pth

The body is :mod:`maskrcnn_benchmark.cli.train_net` (flags, outputs, details); once installed, ``fiber-train`` runs
the same code from any folder.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from maskrcnn_benchmark.cli.train_net import build_parser, main, run  # noqa: E402, F401

if __name__ == "__main__":
    main()
