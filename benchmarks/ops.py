"""Speed of the compiled ops vs their pure-torch paths; prints one JSON document.

    python benchmarks/ops.py                 # CPU, small repeat counts (a few minutes on 2 cores)
    python benchmarks/ops.py --device cuda   # GPU

Cases: nms (10k boxes), ml_nms (10k boxes, 80 classes), DCNv2 forward+backward at the DyHead sizes (batch 1,
256 channels, P3..P7 = 100x136, 50x68, 25x34, 13x17, 7x9) and the token focal loss forward+backward at
(20267 anchors, 256 tokens). Times are medians in milliseconds; "speedup" = torch / compiled.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import git_commit  # noqa: E402

from maskrcnn_benchmark.layers import _ext, ml_nms, modulated_deform_conv, nms, token_sigmoid_focal_loss  # noqa: E402

DYHEAD_LEVELS = [(100, 136), (50, 68), (25, 34), (13, 17), (7, 9)]


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, device, repeat, warmup=1):
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def _boxes(n, device, seed):
    g = torch.Generator().manual_seed(seed)
    centers = torch.rand(n, 2, generator=g) * 800
    sizes = torch.rand(n, 2, generator=g) * 120 + 8
    boxes = torch.cat([centers - sizes / 2, centers + sizes / 2], dim=1)
    return boxes.to(device), torch.rand(n, generator=g).to(device)


def _compare(name, shape, make_fn, device, repeat, impls):
    row = {"op": name, "shape": shape}
    for impl in impls:
        row[f"{impl}_ms"] = round(_time(make_fn(impl), device, repeat), 3)
    if "compiled_ms" in row and "torch_ms" in row and row["compiled_ms"] > 0:
        row["speedup"] = round(row["torch_ms"] / row["compiled_ms"], 2)
    return row


def bench_nms(device, repeat, impls):
    boxes, scores = _boxes(10000, device, 0)
    labels = torch.randint(1, 81, (10000,), generator=torch.Generator().manual_seed(1)).to(device)
    return [
        _compare("nms", "10000 boxes, iou 0.5", lambda impl: lambda: nms(boxes, scores, 0.5, impl=impl), device,
                 repeat, impls),
        _compare("ml_nms", "10000 boxes, 80 classes, iou 0.6",
                 lambda impl: lambda: ml_nms(boxes, scores, labels, 0.6, impl=impl), device, repeat, impls),
    ]


def bench_dcn(device, repeat, impls, channels=256):
    rows = []
    g = torch.Generator().manual_seed(2)
    weight = (torch.randn(channels, channels, 3, 3, generator=g) * 0.02).to(device).requires_grad_(True)
    bias = torch.zeros(channels, device=device, requires_grad=True)
    for height, width in DYHEAD_LEVELS:
        x = torch.randn(1, channels, height, width, generator=g).to(device).requires_grad_(True)
        offset = torch.randn(1, 18, height, width, generator=g).to(device).requires_grad_(True)
        mask = torch.rand(1, 9, height, width, generator=g).to(device).requires_grad_(True)

        def make(impl, x=x, offset=offset, mask=mask):
            def step():
                out = modulated_deform_conv(x, offset, mask, weight, bias, padding=1, impl=impl)
                out.sum().backward()

            return step

        rows.append(_compare("dcn_fwd_bwd", f"1x{channels}x{height}x{width}, 3x3", make, device, repeat, impls))
    return rows


def bench_dcn_inference(device, repeat, impls, batch, levels, channels=256):
    """DCN forward only (no grad) at the DyHead's levels for ``batch`` samples (chunk-batched inference): every
    implementation in float32, and on CUDA also the compiled kernel in bf16 / fp16 (reduced_precision_dcn)."""
    from maskrcnn_benchmark.layers.deform_conv import reduced_precision_dcn

    rows = []
    g = torch.Generator().manual_seed(5)
    weight = (torch.randn(channels, channels, 3, 3, generator=g) * 0.02).to(device)
    bias = torch.zeros(channels, device=device)
    for height, width in levels:
        x = torch.randn(batch, channels, height, width, generator=g).to(device)
        offset = torch.randn(batch, 18, height, width, generator=g).to(device)
        mask = torch.rand(batch, 9, height, width, generator=g).to(device)
        row = {"op": "dcn_forward_inference", "shape": f"{batch}x{channels}x{height}x{width}, 3x3"}
        args = (x, offset, mask, weight, bias)
        with torch.no_grad():
            for impl in impls:
                row[f"{impl}_fp32_ms"] = round(_time(
                    lambda impl=impl, args=args: modulated_deform_conv(*args, padding=1, impl=impl), device, repeat), 3)
            if device.type == "cuda" and "compiled" in impls:
                for name, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
                    def low(dtype=dtype, args=args):
                        with torch.autocast("cuda", dtype=dtype), reduced_precision_dcn():
                            return modulated_deform_conv(*args, padding=1, impl="compiled")

                    row[f"compiled_{name}_ms"] = round(_time(low, device, repeat), 3)
        rows.append(row)
    return rows


def bench_focal(device, repeat, impls):
    g = torch.Generator().manual_seed(3)
    logits = (torch.randn(1, 20267, 256, generator=g) * 3).to(device).requires_grad_(True)
    targets = (torch.rand(1, 20267, 256, generator=g) < 0.01).float().to(device)
    text_mask = torch.zeros(1, 256, dtype=torch.long, device=device)
    text_mask[:, :40] = 1

    def make(impl):
        def step():
            token_sigmoid_focal_loss(logits, targets, 0.25, 2.0, mask=text_mask, impl=impl).sum().backward()

        return step

    return [_compare("token_focal_loss_fwd_bwd", "1x20267x256", make, device, repeat, impls)]


def main():
    parser = argparse.ArgumentParser(description="compiled vs pure-torch op timings (JSON)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeat", type=int, default=None, help="timed runs per case (default 3 cpu, 20 cuda)")
    parser.add_argument("--skip-dcn", action="store_true", help="leave out the (slowest) DCN cases")
    parser.add_argument("--dcn-inference-only", action="store_true",
                        help="only the forward-only DCN cases of chunk-batched inference")
    parser.add_argument("--dcn-batch", type=int, default=8, help="samples of the forward-only DCN cases")
    parser.add_argument("--dcn-levels", default="100x168,50x84,25x42",
                        help="forward-only DCN cases: comma list of HxW (default: P3..P5 of 800x1344)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but no GPU is visible")
    repeat = args.repeat or (3 if device.type == "cpu" else 20)
    impls = ["compiled", "torch"] if _ext.compiled_available(device.type) else ["torch"]
    levels = [tuple(int(v) for v in level.split("x")) for level in args.dcn_levels.split(",") if level]
    if args.dcn_inference_only:
        results = bench_dcn_inference(device, repeat, impls, args.dcn_batch, levels)
    else:
        results = bench_nms(device, repeat, impls) + bench_focal(device, repeat, impls)
    if not args.skip_dcn and not args.dcn_inference_only:
        results += bench_dcn(device, max(1, repeat - 1) if device.type == "cpu" else repeat, impls)
        results += bench_dcn_inference(device, max(1, repeat - 1) if device.type == "cpu" else repeat, impls,
                                       args.dcn_batch, levels)
    report = {
        "device": (torch.cuda.get_device_name(device) if device.type == "cuda"
                   else f"cpu ({torch.get_num_threads()} threads)"),
        "torch": torch.__version__,
        "commit": git_commit(),
        "compiled_available": _ext.compiled_available(device.type),
        "repeat": repeat,
        "results": results,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
