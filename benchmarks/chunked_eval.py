#!/usr/bin/env python
"""Chunked-prompt evaluation speed: a full forward per chunk vs the image prefix reused across chunks.

LVIS evaluation runs every image once per 40-class prompt chunk (31 chunks for 1,203 classes). With
``TEST.REUSE_IMAGE_PREFIX`` (engine/inference.py ``PrefixReuse``) the caption-independent image prefix runs once
per batch and the pre-fusion text layers once per chunk. This script times both on random weights and prints JSON.

    python benchmarks/chunked_eval.py                                   # tiny model, CPU
    python benchmarks/chunked_eval.py \
        --config-file configs/e2e_dyhead_SwinT_B_FPN_lvis_finetuning_fusion_backbone.yaml \
        --device cuda --height 800 --width 1344 --chunks 31 --batch 1 [--amp]
"""

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

WORDS = ("apple bag ball bear bed bell bench bird boat book bottle bowl box bread bucket cake camera candle "
         "car cat chair clock cup desk dog door drum duck egg fan fish flag fork frog glass hat horse jar kite "
         "lamp").split()


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", default="configs/tiny/fiber_tiny.yaml")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--chunks", type=int, default=8)
    parser.add_argument("--classes-per-chunk", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--amp", action="store_true", help="fp16 autocast (CUDA)")
    return parser


def _plans(tokenizer, chunks, per_chunk, max_len):
    from maskrcnn_benchmark.data.prompts import plan_detection_prompts

    names = {}
    for label in range(1, chunks * per_chunk + 1):
        names[label] = f"{WORDS[label % len(WORDS)]} {WORDS[(label // len(WORDS)) % len(WORDS)]}"
    return plan_detection_prompts(names, tokenizer, chunk_size=per_chunk, max_query_len=max_len)


def _time(fn, device, repeats):
    fn()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def main(args):
    from maskrcnn_benchmark.config import load_config
    from maskrcnn_benchmark.engine.inference import PrefixReuse, _forward_detection
    from maskrcnn_benchmark.modeling.detector import build_detection_model
    from maskrcnn_benchmark.modeling.language_backbone.tokenizer import build_tokenizer, write_local_bpe_tokenizer
    from maskrcnn_benchmark.structures.image_list import ImageList

    tokenizer_dir = write_local_bpe_tokenizer(os.path.join(tempfile.gettempdir(), "fiber_bench_tokenizer"))
    cfg = load_config(args.config_file, ["MODEL.LANGUAGE_BACKBONE.TOKENIZER_TYPE", tokenizer_dir, "MODEL.WEIGHT", "",
                                         "MODEL.DEVICE", args.device,
                                         "TEST.MDETR_STYLE_AGGREGATE_CLASS_NUM", "3000"])
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build_detection_model(cfg).to(device).eval()
    plans = _plans(build_tokenizer(tokenizer_dir), args.chunks, args.classes_per_chunk,
                   int(cfg.MODEL.LANGUAGE_BACKBONE.MAX_QUERY_LEN))
    images = ImageList(torch.randn(args.batch, 3, args.height, args.width, device=device),
                       [(args.height, args.width)] * args.batch)
    autocast = torch.autocast(device.type, dtype=torch.float16, enabled=args.amp)

    def full():
        with torch.no_grad(), autocast:
            return _forward_detection(model, images, plans)

    def reuse():
        with torch.no_grad(), autocast:
            return PrefixReuse(model)(images, plans)  # a fresh cache per batch: the text prefix cost is included

    full_s = _time(full, device, args.repeats)
    reuse_s = _time(reuse, device, args.repeats)
    result = {
        "config": args.config_file, "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(), "image": [args.height, args.width], "batch": args.batch,
        "chunks": len(plans), "classes_per_chunk": args.classes_per_chunk, "amp": args.amp,
        "full_forward_per_chunk_s": round(full_s, 4), "prefix_reuse_s": round(reuse_s, 4),
        "speedup": round(full_s / reuse_s, 3),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(build_parser().parse_args()))
