"""onnxruntime (CPU) vs PyTorch (CPU) on an exported FIBER graph: agreement and speed; prints one JSON document.

    python benchmarks/onnx_runtime.py --image-size 800 1344 --iters 3            # FIBER-B, random weights
    python benchmarks/onnx_runtime.py --config-file configs/tiny/fiber_tiny.yaml --image-size 224 224 --iters 20

Builds the model from ``--config-file`` with random weights (seeded; ``--weight`` loads a checkpoint instead),
exports it with :func:`maskrcnn_benchmark.export.export_onnx` (or reuses ``--onnx FILE``) and, on one image of
the canvas size and a caption of ``MAX_QUERY_LEN`` random tokens (no tokenizer needed):

* ``raw``: the largest absolute difference of every output kind (box regression, centerness, token logits),
  onnxruntime vs PyTorch, and the largest magnitude of each for scale;
* ``detections``: both raw outputs through the same post-processing (anchors, decoding, NMS; a label map of
  P labels x 2 tokens, ``INFERENCE_TH`` 0 so that a random model yields boxes): how many detections, how many
  match one to one (same label, box within 0.01 px, score within 1e-4);
* ``time``: the network pass (PyTorch ``DetectorGraph`` forward with the default ops, no grad, vs
  ``InferenceSession.run``), interleaved, ``--iters`` timed runs each after one warm-up, medians in ms, both
  with ``--threads`` threads; and the export time and peak resident memory of the process.

``--spread-scores`` (default on) sets the random head's token-logit bias to 0 and widens its text projection, so
that scores spread over (0, 1) instead of all sitting at the 0.01 prior: the ranking of detections is then
decided by gaps far larger than float32 noise and the detection comparison is meaningful.
"""

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from maskrcnn_benchmark.config import load_config  # noqa: E402
from maskrcnn_benchmark.export import DetectorGraph, OnnxDetector, RawOutputPostProcessor, export_onnx  # noqa: E402
from maskrcnn_benchmark.export.onnx_export import sample_inputs  # noqa: E402
from maskrcnn_benchmark.modeling.detector import build_detection_model  # noqa: E402
from maskrcnn_benchmark.modeling.rpn.vl_head import HeadOutputs  # noqa: E402
from maskrcnn_benchmark.utils.atomic_io import atomic_write_json  # noqa: E402

DEFAULT_CONFIG = REPO / "configs" / "e2e_dyhead_SwinT_B_FPN_coco_finetuning_fusion_backbone.yaml"
KINDS = ("box_regression", "centerness", "dot_product_logits")


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", default=str(DEFAULT_CONFIG))
    parser.add_argument("--weight", default=None, help="checkpoint (default: random weights)")
    parser.add_argument("--image-size", type=int, nargs=2, default=(800, 1344), metavar=("H", "W"))
    parser.add_argument("--onnx", default=None, help="reuse this exported file (must match the config and canvas)")
    parser.add_argument("--keep", default=None, help="write the export here instead of a temporary file")
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-spread-scores", dest="spread_scores", action="store_false")
    parser.add_argument("--output", default=None, help="also write the JSON here")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides")
    return parser


def _model(args, cfg):
    from maskrcnn_benchmark.engine.weights import load_inference_weights

    torch.manual_seed(args.seed)
    model = build_detection_model(cfg).eval()
    if args.weight:
        load_inference_weights(model, args.weight)
    elif args.spread_scores:
        head = model.rpn.head
        with torch.no_grad():
            head.bias0.zero_()
            torch.nn.init.normal_(head.dot_product_projection_text.weight, std=0.5)
            torch.nn.init.normal_(head.centerness.weight, std=0.2)
    return model


def _per_kind(values):
    return {kind: values[i::len(KINDS)] for i, kind in enumerate(KINDS)}


def _raw_errors(expected, got):
    want, have = _per_kind(list(expected.values())), _per_kind(list(got))
    return {kind: {"max_abs_error": max(float((a - b).abs().max()) for a, b in zip(want[kind], have[kind])),
                   "max_abs_value": max(float(a.abs().max()) for a in want[kind])} for kind in KINDS}


def _match(got, want):
    free, matched = list(range(len(got))), 0
    box_err = score_err = 0.0
    for box, score, label in zip(want.bbox.tolist(), want.get_field("scores").tolist(),
                                 want.get_field("labels").tolist()):
        for j in free:
            if int(got.get_field("labels")[j]) != label:
                continue
            b = max(abs(x - y) for x, y in zip(got.bbox[j].tolist(), box))
            s = abs(float(got.get_field("scores")[j]) - score)
            if b <= 1e-2 and s <= 1e-4:
                free.remove(j)
                matched += 1
                box_err, score_err = max(box_err, b), max(score_err, s)
                break
    return {"onnxruntime": len(got), "pytorch": len(want), "matched": matched, "max_box_error_px": box_err,
            "max_score_error": score_err}


def _detections(cfg, expected, got, image_size, length):
    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.ATSS.INFERENCE_TH = 0.0
    post = RawOutputPostProcessor.from_config(cfg)
    num_labels = min(80, (length - 2) // 3)
    label_map = {k: [1 + 3 * (k - 1), 2 + 3 * (k - 1)] for k in range(1, num_labels + 1)}
    sizes = [tuple(image_size)]
    want = _per_kind(list(expected.values()))
    have = _per_kind(list(got))
    a = post(HeadOutputs(have["box_regression"], have["centerness"], have["dot_product_logits"], []), sizes,
             label_map)[0]
    b = post(HeadOutputs(want["box_regression"], want["centerness"], want["dot_product_logits"], []), sizes,
             label_map)[0]
    return {"labels": num_labels, **_match(a, b)}


def _timings(graph, detector, inputs, iters):
    feeds = {"images": inputs[0].numpy(), "input_ids": inputs[1].numpy(), "attention_mask": inputs[2].numpy()}
    runs = {"pytorch": lambda: graph(*inputs), "onnxruntime": lambda: detector.session.run(None, feeds)}
    times = {name: [] for name in runs}
    with torch.no_grad():
        for fn in runs.values():
            fn()  # warm-up
        for _ in range(iters):
            for name, fn in runs.items():
                start = time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - start) * 1000.0)
    medians = {f"{name}_ms": round(statistics.median(values), 1) for name, values in times.items()}
    medians["all_ms"] = {name: [round(v, 1) for v in values] for name, values in times.items()}
    medians["speedup"] = round(medians["pytorch_ms"] / medians["onnxruntime_ms"], 2)
    return medians


def main(args):
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config_file, args.opts)
    model = _model(args, cfg)
    graph = DetectorGraph(model).eval()
    path, export = args.onnx, None
    with tempfile.TemporaryDirectory() as tmp:
        if path is None:
            path = args.keep or os.path.join(tmp, "model.onnx")
            info = export_onnx(model, cfg, path, image_size=tuple(args.image_size))
            export = {"seconds": round(info.seconds, 1), "megabytes": round(info.num_bytes / 1e6, 1)}
        detector = OnnxDetector(path, cfg=cfg, num_threads=args.threads)
        length = int(cfg.MODEL.LANGUAGE_BACKBONE.MAX_QUERY_LEN)
        inputs = sample_inputs(cfg, tuple(args.image_size), batch=1, length=length, seed=args.seed + 1)
        expected = graph.run(*inputs)
        got = [torch.from_numpy(v) for v in detector.session.run(None, dict(zip(
            ("images", "input_ids", "attention_mask"), (t.numpy() for t in inputs))))]
        result = {
            "config": os.path.relpath(args.config_file, REPO) if args.config_file.startswith(str(REPO))
            else args.config_file,
            "weights": args.weight or f"random (seed {args.seed}, spread scores {args.spread_scores})",
            "image_size": list(args.image_size), "caption_tokens": length, "threads": args.threads,
            "export": export, "raw": _raw_errors(expected, got),
            "detections": _detections(cfg, expected, got, args.image_size, length),
            "time": _timings(graph, detector, inputs, args.iters),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
                        "onnxruntime": __import__("onnxruntime").__version__},
        }
    text = json.dumps(result, indent=1)
    print(text)
    if args.output:
        atomic_write_json(args.output, result, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(build_parser().parse_args()))
