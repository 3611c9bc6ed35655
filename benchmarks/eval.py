"""Evaluation speed: COCO box AP with pycocotools vs faster-coco-eval, LVIS Fixed AP with lvis vs faster-coco-eval.

    python benchmarks/eval.py                                  # 5,000 images x 100 dets (COCO), 1,000 x 300 (LVIS)
    python benchmarks/eval.py --images 1000 --lvis-images 200  # smaller
    python benchmarks/eval.py --skip-lvis-reference            # LVIS with faster-coco-eval only (lvis is slow)
    python benchmarks/eval.py --only lvis                      # one of the two

Synthetic, seeded ground truth and detections (no data needed): a COCO-like val set (80 classes, ~7 boxes per
image) and an LVIS-like one (1,203 classes with r/c/f frequencies, negative and not-exhaustive lists).
Detections are jittered copies of the ground truth plus random boxes with random classes. Each timing covers
what the evaluator's summarize does (results loading + evaluate + accumulate + summary), measured once per
back end (wall and process CPU seconds; CPU time is the steadier number on a busy machine); the two back
ends' metrics are compared and reported. Prints JSON (also written with --output).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from maskrcnn_benchmark.data.evaluation.coco import evaluate_coco_bbox  # noqa: E402
from maskrcnn_benchmark.data.evaluation.lvis import evaluate_lvis  # noqa: E402


def _random_boxes(rng, count, width, height):
    x = rng.uniform(0, width - 20, count)
    y = rng.uniform(0, height - 20, count)
    w = np.minimum(rng.uniform(4, 250, count), width - x)
    h = np.minimum(rng.uniform(4, 250, count), height - y)
    return np.stack([x, y, w, h], axis=1)


def coco_like(num_images: int, dets_per_image: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    categories = [{"id": c, "name": f"class{c}"} for c in range(1, 81)]
    images, annotations, predictions = [], [], []
    for image_id in range(1, num_images + 1):
        images.append({"id": image_id, "width": 640, "height": 480})
        count = int(rng.integers(1, 15))
        boxes = _random_boxes(rng, count, 640, 480)
        labels = rng.integers(1, 81, count)
        for box, label in zip(boxes, labels):
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": int(label),
                                "bbox": box.tolist(), "area": float(box[2] * box[3]), "iscrowd": 0})
        predictions.extend(_detections(rng, image_id, boxes, labels, dets_per_image, list(range(1, 81))))
    return {"images": images, "annotations": annotations, "categories": categories}, predictions


def _detections(rng, image_id, gt_boxes, gt_labels, count, label_pool) -> list[dict[str, Any]]:
    copies = min(count // 2, 3 * len(gt_boxes))
    picks = rng.integers(0, len(gt_boxes), copies) if len(gt_boxes) else np.zeros(0, dtype=int)
    jittered = gt_boxes[picks] + rng.normal(0, 6, (copies, 4)) if copies else np.zeros((0, 4))
    jittered[:, 2:] = np.abs(jittered[:, 2:]) + 1
    kept = gt_labels[picks] if copies else []
    labels = np.where(rng.uniform(size=copies) < 0.7, kept, rng.choice(label_pool, copies))
    boxes = np.concatenate([jittered, _random_boxes(rng, count - copies, 640, 480)])
    labels = np.concatenate([labels, rng.choice(label_pool, count - copies)]).astype(int)
    scores = rng.uniform(size=count)
    return [{"image_id": image_id, "category_id": int(c), "bbox": b.tolist(), "score": float(s)}
            for b, c, s in zip(boxes, labels, scores)]


def lvis_like(num_images: int, dets_per_image: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    num_categories = 1203
    frequencies = rng.choice(["r", "c", "f"], num_categories, p=[0.28, 0.38, 0.34])
    categories = [{"id": c + 1, "name": f"c{c + 1}", "frequency": str(f)} for c, f in enumerate(frequencies)]
    images, annotations, predictions = [], [], []
    for image_id in range(1, num_images + 1):
        present = rng.choice(np.arange(1, num_categories + 1), int(rng.integers(1, 8)), replace=False)
        candidates = rng.choice(np.arange(1, num_categories + 1), 20, replace=False)
        negatives = [int(c) for c in candidates if c not in present]
        images.append({"id": image_id, "width": 640, "height": 480, "neg_category_ids": negatives,
                       "not_exhaustive_category_ids": [int(present[0])] if image_id % 7 == 0 else []})
        count = int(rng.integers(len(present), 20))
        labels = np.concatenate([present, rng.choice(present, count - len(present))])
        boxes = _random_boxes(rng, count, 640, 480)
        for box, label in zip(boxes, labels):
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": int(label),
                                "bbox": box.tolist(), "area": float(box[2] * box[3])})
        pool = list(present) + negatives + [int(c) for c in rng.integers(1, num_categories + 1, 10)]
        predictions.extend(_detections(rng, image_id, boxes, labels, dets_per_image, pool))
    return {"images": images, "annotations": annotations, "categories": categories}, predictions


def _timed(function, *args, **kwargs):
    """(result, wall seconds, CPU seconds of this process incl. its threads)."""
    start, cpu_start = time.perf_counter(), time.process_time()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start, time.process_time() - cpu_start


def bench_coco(num_images: int, dets: int) -> dict[str, Any]:
    gt, predictions = coco_like(num_images, dets)
    reference, reference_s, reference_cpu = _timed(evaluate_coco_bbox, gt, predictions, backend="pycocotools",
                                                   per_category=False)
    faster, faster_s, faster_cpu = _timed(evaluate_coco_bbox, gt, predictions, backend="faster", per_category=False)
    names = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
    return {
        "images": num_images, "detections": len(predictions), "ground_truth_boxes": len(gt["annotations"]),
        "pycocotools_s": round(reference_s, 2), "faster_coco_eval_s": round(faster_s, 2),
        "pycocotools_cpu_s": round(reference_cpu, 2), "faster_coco_eval_cpu_s": round(faster_cpu, 2),
        "speedup": round(reference_s / faster_s, 2), "AP_pycocotools": reference["AP"], "AP_faster": faster["AP"],
        "max_abs_metric_difference": max(abs(reference[n] - faster[n]) for n in names),
    }


def bench_lvis(num_images: int, dets: int, reference_too: bool) -> dict[str, Any]:
    gt, predictions = lvis_like(num_images, dets)
    report: dict[str, Any] = {"images": num_images, "detections": len(predictions),
                              "ground_truth_boxes": len(gt["annotations"]),
                              "protocol": "fixed_ap_top10000_per_category"}
    faster, faster_s, faster_cpu = _timed(evaluate_lvis, gt, predictions, backend="faster")
    report.update(faster_coco_eval_s=round(faster_s, 2), faster_coco_eval_cpu_s=round(faster_cpu, 2),
                  AP_faster=faster["AP"])
    if reference_too:
        reference, reference_s, reference_cpu = _timed(evaluate_lvis, gt, predictions, backend="lvis")
        names = ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf", "AR")
        report.update(lvis_s=round(reference_s, 2), lvis_cpu_s=round(reference_cpu, 2),
                      speedup=round(reference_s / faster_s, 2), AP_lvis=reference["AP"],
                      max_abs_metric_difference=max(abs((reference[n] or 0) - (faster[n] or 0)) for n in names))
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=5000, help="COCO-like val images")
    parser.add_argument("--dets", type=int, default=100, help="COCO detections per image")
    parser.add_argument("--lvis-images", type=int, default=1000, help="LVIS-like val images")
    parser.add_argument("--lvis-dets", type=int, default=300, help="LVIS detections per image")
    parser.add_argument("--skip-lvis-reference", action="store_true", help="do not time the lvis package")
    parser.add_argument("--only", choices=("coco", "lvis"), help="run one of the two benchmarks")
    parser.add_argument("--output", help="also write the JSON here")
    args = parser.parse_args(argv)
    report = {
        "machine": {"python": platform.python_version(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count()},
    }
    if args.only in (None, "coco"):
        report["coco"] = bench_coco(args.images, args.dets)
    if args.only in (None, "lvis"):
        report["lvis"] = bench_lvis(args.lvis_images, args.lvis_dets, not args.skip_lvis_reference)
    text = json.dumps(report, indent=1)
    print(text)
    if args.output:
        with open(args.output, "w") as stream:
            stream.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
