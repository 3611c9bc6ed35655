"""Shared bits of the tool tests: repo paths, running a tool in a subprocess, a fixed-size COCO data set."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "tiny" / "fiber_tiny.yaml"
TOOLS = REPO / "tools"

# Small, fast, deterministic training settings for the tiny model (no dropout / DropBlock).
FAST_TRAIN_OPTS = [
    "INPUT.MIN_SIZE_TRAIN", "64", "INPUT.MAX_SIZE_TRAIN", "96", "AUGMENT.MULT_MIN_SIZE_TRAIN", "(64,)",
    "INPUT.MIN_SIZE_TEST", "64", "INPUT.MAX_SIZE_TEST", "96",
    "MODEL.FPN.DROP_BLOCK", "False", "MODEL.LANGUAGE_BACKBONE.HIDDEN_DROPOUT_PROB", "0.0",
    "MODEL.LANGUAGE_BACKBONE.ATTENTION_DROPOUT_PROB", "0.0", "DATALOADER.ASPECT_RATIO_GROUPING", "False",
    "DATALOADER.NUM_WORKERS", "0", "SOLVER.WARMUP_ITERS", "2",
]


def tool_env(data_root=None, threads=1):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    env.pop("FIBER_DEBUG", None)
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    if data_root is not None:
        env["DATASET"] = str(data_root)
    return env


def run_tool(args, cwd, data_root=None, timeout=600):
    return subprocess.run([sys.executable] + [str(a) for a in args], cwd=cwd, env=tool_env(data_root),
                          capture_output=True, text=True, timeout=timeout)


def write_fixed_size_coco(root: Path, num_images: int = 8, size: int = 64, seed: int = 0):
    """COCO-2017-layout train/val sets of same-size images (so batches never pad differently)."""
    from maskrcnn_benchmark.data.synthetic import SHAPE_CLASSES, draw_scene

    rng = np.random.default_rng(seed)
    cats = [{"id": i + 1, "name": c.name} for i, c in enumerate(SHAPE_CLASSES)]
    for split, first in (("train2017", 1), ("val2017", 1000)):
        images, annotations = [], []
        folder = root / "coco" / split
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(num_images):
            image, objects = draw_scene(rng, SHAPE_CLASSES, 2, size=(size, size))
            name = f"{first + k:012d}.jpg"
            image.save(folder / name, quality=95)
            images.append({"id": first + k, "file_name": name, "width": size, "height": size})
            for cls, (x1, y1, x2, y2) in objects:
                w, h = x2 - x1 + 1, y2 - y1 + 1
                annotations.append({"id": len(annotations) + 1 + first * 100, "image_id": first + k,
                                    "category_id": cls + 1, "bbox": [x1, y1, w, h], "area": w * h, "iscrowd": 0})
        ann = root / "coco" / "annotations" / f"instances_{split}.json"
        ann.parent.mkdir(parents=True, exist_ok=True)
        ann.write_text(json.dumps({"images": images, "annotations": annotations, "categories": cats}))
    return root
