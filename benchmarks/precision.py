#!/usr/bin/env python
"""Inference precisions against float32 on a real evaluation: AP per precision and detection differences.

Evaluates one model on the test set of its config (``DATASETS.TEST``, e.g. the demo's synthetic COCO shapes)
through ``engine/inference.py`` once per ``TEST.PRECISION`` and reports, per precision: the evaluator's
metrics and their difference to float32, and per image the float32 run's ``--top`` best detections found
again (same label, IoU >= 0.9) with their score differences.

    python -m maskrcnn_benchmark.demo --output-dir /tmp/demo                         # trains the tiny model
    DATASET=/tmp/demo/data python benchmarks/precision.py --config-file /tmp/demo/train/config.yaml \
        --weight /tmp/demo/train/model_final.pth --precisions fp32,bf16 --output benchmarks/results/x.json
"""

import argparse
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _report import device_name, git_commit  # noqa: E402
from chunked_eval import compare_reduced  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--weight", default=None, help="checkpoint (default: random weights)")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--top", type=int, default=20, help="fp32 detections per image that are looked up")
    parser.add_argument("--subset", type=int, default=-1, help="TEST.SUBSET: only the first n batches")
    parser.add_argument("--output", default=None)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    return parser


class Recorder:
    """Keeps every image's detections and forwards them to the real evaluator."""

    def __init__(self, evaluator):
        self.evaluator = evaluator
        self.results = {}

    def update(self, image_ids, boxlists):
        self.results.update(zip(image_ids, boxlists))
        self.evaluator.update(image_ids, boxlists)

    def evaluate(self):
        return self.evaluator.evaluate()


def main(args) -> dict:
    from maskrcnn_benchmark.config import load_config
    from maskrcnn_benchmark.data import evaluation
    from maskrcnn_benchmark.data.build import make_data_loader
    from maskrcnn_benchmark.engine.inference import inference
    from maskrcnn_benchmark.modeling.detector import build_detection_model

    cfg = load_config(args.config_file, ["MODEL.DEVICE", args.device, "TEST.SUBSET", str(args.subset)] + args.opts)
    torch.manual_seed(0)
    model = build_detection_model(cfg)
    if args.weight:
        from maskrcnn_benchmark.utils.checkpoint import load_checkpoint

        load_checkpoint(model, args.weight, strict=True)
    model = model.to(args.device).eval()
    (loader,) = make_data_loader(cfg, is_train=False)
    name = cfg.DATASETS.TEST[0]
    runs = {}
    for precision in [p.strip() for p in args.precisions.split(",") if p.strip()]:
        cfg.defrost()
        cfg.TEST.PRECISION = precision
        recorder = Recorder(evaluation.build_evaluator(cfg, loader.dataset, None, dataset_name=name))
        start = time.perf_counter()
        metrics = inference(model, loader, name, device=args.device, cfg=cfg, evaluator=recorder)
        runs[precision] = {"seconds": round(time.perf_counter() - start, 2), "results": recorder.results,
                           "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float))}}
    reference = runs.get("fp32")
    report = {"config": args.config_file, "weight": args.weight or "random", "dataset": name,
              "images": len(reference["results"]) if reference else None,
              "device": device_name(torch.device(args.device)), "torch": torch.__version__, "commit": git_commit(),
              "precisions": {}}
    for precision, run in runs.items():
        entry = {"seconds": run["seconds"], "metrics": run["metrics"]}
        if reference is not None and precision != "fp32":
            entry["metric_difference_vs_fp32"] = {k: round(v - reference["metrics"].get(k, float("nan")), 4)
                                                  for k, v in run["metrics"].items()}
            ids = sorted(reference["results"])
            entry["detections_vs_fp32"] = compare_reduced([run["results"][i] for i in ids],
                                                          [reference["results"][i] for i in ids], args.top)
        report["precisions"][precision] = entry
    return report


if __name__ == "__main__":
    from _report import emit

    arguments = build_parser().parse_args()
    emit(main(arguments), arguments.output)
