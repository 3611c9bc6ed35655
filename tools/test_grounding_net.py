#!/usr/bin/env python
"""Evaluate a FIBER checkpoint on detection / grounding test sets (upstream's flags).

    python tools/test_grounding_net.py --config-file CONFIG --weight W.pth TEST.IMS_PER_BATCH 1 \
        TEST.EVAL_TASK detection OUTPUT_DIR out

The body is :mod:`maskrcnn_benchmark.cli.test_grounding_net` (flags, outputs, details); once installed,
``fiber-test`` runs the same code from any folder.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from maskrcnn_benchmark.cli.test_grounding_net import build_parser, main, run  # noqa: E402, F401

if __name__ == "__main__":
    main()
