"""Few-shot splits of the ODinW data sets: k-shot subsets (k in 1, 3, 5, 10) for several seeds.

    python -m odinw.fewshot --root DATASET [--which 13] [--shots 1,3,5,10] [--seeds 3,30,300] [--splits train,val]

writes ``fewshot_{split}_shot{k}_seed{s}.json`` next to each split's annotation file: exactly the files that
the task yamls register as ``{split}_{k}_{s}`` (e.g. ``train_5_30``), so ``DATASETS.TRAIN ("train_5_30",)``
works. GLIP ships such files pre-made without the code that made them; the rule here is:

- images are visited in a seeded random order (``random.Random(seed)`` shuffling the sorted image ids);
- an image is kept if at least one of its categories has been seen in fewer than k kept images so far;
  every category of a kept image then counts that image (k-shot = at least k images per category, the
  same counting as upstream's DATASETS.FEW_SHOT greedy pass, which has no shuffling);
- kept images keep all their annotations; categories, info and licenses are copied unchanged.

The result depends only on the annotation file, k and the seed (deterministic per seed).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from maskrcnn_benchmark.data.evaluation.base import read_json
from maskrcnn_benchmark.utils.atomic_io import atomic_write_json

from .catalog import get_dataset, resolve_names

__all__ = ["SHOTS", "SEEDS", "select_few_shot", "write_fewshot_splits", "main"]

SHOTS = (1, 3, 5, 10)
SEEDS = (3, 30, 300)


def select_few_shot(coco: dict[str, Any], shots: int, seed: int, source: str = "annotations") -> dict[str, Any]:
    """A k-shot subset of a COCO-format dict (see the module docstring for the rule).

    Args:
        coco: loaded COCO json ("images", "annotations", "categories").
        shots: k >= 1.
        seed: seed of the image order.
        source: name used in error messages.

    Returns:
        a new COCO dict with the kept images (in id order) and their annotations.
    """
    if shots < 1:
        raise ValueError(f"shots must be >= 1, got {shots}")
    for key in ("images", "annotations", "categories"):
        if key not in coco:
            raise ValueError(f"{source}: no {key!r} list; not a COCO-format annotation file")
    category_ids = {category["id"] for category in coco["categories"]}
    categories_of: dict[int, set] = {}
    for annotation in coco["annotations"]:
        if annotation["category_id"] not in category_ids:
            raise ValueError(
                f"{source}: annotation {annotation.get('id')} has unknown category {annotation['category_id']}"
            )
        if annotation.get("iscrowd", 0):
            continue
        categories_of.setdefault(annotation["image_id"], set()).add(annotation["category_id"])
    order = sorted(image["id"] for image in coco["images"])
    random.Random(seed).shuffle(order)
    seen = {category_id: 0 for category_id in category_ids}
    kept = set()
    for image_id in order:
        present = categories_of.get(image_id, set())
        if any(seen[category_id] < shots for category_id in present):
            kept.add(image_id)
            for category_id in present:
                seen[category_id] += 1
        if all(count >= shots for count in seen.values()):
            break
    subset = {key: value for key, value in coco.items() if key not in ("images", "annotations")}
    subset["images"] = sorted((image for image in coco["images"] if image["id"] in kept), key=lambda i: i["id"])
    subset["annotations"] = [a for a in coco["annotations"] if a["image_id"] in kept]
    return subset


def write_fewshot_splits(root: str, name: str, shots: Sequence[int] = SHOTS, seeds: Sequence[int] = SEEDS,
                         splits: Iterable[str] = ("train", "val")) -> list[str]:
    """Write the registered few-shot files of one data set; returns the written paths.

    Only registered splits are read and written (a "minival" request is skipped for a data set without one).
    """
    dataset = get_dataset(name)
    written = []
    for split in splits:
        if split not in dataset.register:
            continue
        source = os.path.join(root, dataset.split(split)["ann_file"])
        coco = read_json(source)
        for k in shots:
            for seed in seeds:
                target_split = f"{split}_{k}_{seed}"
                if target_split not in dataset.register:
                    continue
                target = os.path.join(root, dataset.register[target_split]["ann_file"])
                atomic_write_json(target, select_few_shot(coco, k, seed, source))
                written.append(target)
    return written


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m odinw.fewshot",
                                     description="Write ODinW few-shot split files (deterministic per seed).")
    parser.add_argument("--root", default=os.environ.get("DATASET", "DATASET"), help="data root (default $DATASET)")
    parser.add_argument("--which", default="13", help="13, 35, all, or comma-separated data set names")
    parser.add_argument("--shots", default="1,3,5,10")
    parser.add_argument("--seeds", default="3,30,300")
    parser.add_argument("--splits", default="train,val")
    args = parser.parse_args(argv)
    summary: dict[str, Any] = {}
    for name in resolve_names(args.which):
        paths = write_fewshot_splits(args.root, name, _ints(args.shots), _ints(args.seeds),
                                     [s for s in args.splits.split(",") if s])
        summary[name] = len(paths)
    print(json.dumps({"written": summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
