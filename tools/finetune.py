#!/usr/bin/env python
"""Fine-tune a FIBER checkpoint on task configs (ODinW / custom data), full or few-shot, several seeds.

    python tools/finetune.py --config-file CONFIG --ft-tasks "configs/odinw_13/*.yaml" \
        --custom_shot_and_epoch_and_general_copy 3_200_4 --shuffle_seeds 3,30,300 MODEL.WEIGHT W.pth ...

The body is :mod:`maskrcnn_benchmark.cli.finetune` (flags, outputs, details); once installed, ``fiber-finetune`` runs
the same code from any folder.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from maskrcnn_benchmark.cli.finetune import build_parser, main, run  # noqa: E402, F401

if __name__ == "__main__":
    main()
