#!/usr/bin/env python
"""Profile of the fast chunked-prompt path: the operators (CPU) or kernels (CUDA) that take the time.

Runs ``detect_prompts`` with the image prefix reused, cached text prefixes and ``--chunk-batch`` chunks per
pass (the same model and inputs as ``benchmarks/chunked_eval.py``) once to warm up, then once under
``torch.profiler``, and reports the ``--top`` entries by self time (device time on CUDA), with their share of
the total, as JSON (and a readable table on stderr).

    python benchmarks/profile_fast_path.py --output benchmarks/results/profile_fast_path_cpu.json
    B=configs/e2e_dyhead_SwinT_B_FPN_lvis_finetuning_fusion_backbone.yaml
    python benchmarks/profile_fast_path.py --config-file $B --device cuda --height 800 --width 1344 --chunks 31 \\
        --chunk-batch 0 --precision bf16
"""

import argparse
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _report import device_name, git_commit  # noqa: E402
from chunked_eval import build, prime_text_cache  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", default=str(REPO / "configs" / "tiny" / "fiber_tiny.yaml"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--images", type=int, default=1)
    parser.add_argument("--chunks", type=int, default=8)
    parser.add_argument("--classes-per-chunk", type=int, default=40)
    parser.add_argument("--chunk-batch", type=int, default=0)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--inference-th", type=float, default=0.0)
    parser.add_argument("--gate", type=float, default=0.5)
    parser.add_argument("--weight", default=None)
    parser.add_argument("--output", default=None)
    return parser


def main(args) -> dict:
    device = torch.device(args.device)
    _, model, plans, images = build(args, device)
    keywords = dict(chunk_batch=args.chunk_batch, precision=args.precision)
    prime_text_cache(model, plans, [("fast", keywords, False)], device)
    model.detect_prompts(images, plans, **keywords)  # warm-up
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
        torch.cuda.synchronize(device)
    with torch.profiler.profile(activities=activities) as profiler:
        model.detect_prompts(images, plans, **keywords)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    averages = profiler.key_averages()
    attribute = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    total = sum(getattr(event, attribute, 0) for event in averages) or 1
    rows = sorted(averages, key=lambda event: getattr(event, attribute, 0), reverse=True)[:args.top]
    sys.stderr.write(averages.table(sort_by=attribute, row_limit=args.top) + "\n")
    return {
        "config": args.config_file, "device": device_name(device), "torch": torch.__version__, "commit": git_commit(),
        "image_hw": [args.height, args.width], "images": args.images, "chunks": len(plans),
        "chunk_batch": args.chunk_batch, "precision": args.precision, "time_kind": attribute,
        "total_ms": round(total / 1000, 2),
        "top": [{"name": event.key, "calls": event.count, "self_ms": round(getattr(event, attribute, 0) / 1000, 2),
                 "share": round(getattr(event, attribute, 0) / total, 4)} for event in rows],
    }


if __name__ == "__main__":
    from _report import emit

    arguments = build_parser().parse_args()
    emit(main(arguments), arguments.output)
