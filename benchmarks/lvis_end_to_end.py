#!/usr/bin/env python
"""End-to-end LVIS-style evaluation with ``tools/test_grounding_net.py``: the naive schedule vs the fast one.

Writes a synthetic LVIS-format set (``--images`` validation images, ``--categories`` classes, so at least
``--categories`` / 40 prompt chunks per image: a chunk of 40 names longer than
``MODEL.LANGUAGE_BACKBONE.MAX_QUERY_LEN`` tokens is split in two), then runs the real tool twice on it, in fresh
processes:

* naive: ``TEST.REUSE_IMAGE_PREFIX False`` (a full forward pass per chunk, upstream's schedule),
  ``TEST.IMS_PER_BATCH 1``, no loader workers;
* fast: the image prefix reused, cached text prefixes, ``TEST.CHUNK_BATCH`` chunks per pass,
  ``TEST.IMS_PER_BATCH`` images per batch (size-bucketed), loader workers, the evaluator in a thread;

both in float32 unless ``--precision`` is given for the fast run. Reports images/s (from the tool's own
"inference on ..." log line, and the whole process wall time) and whether the LVIS metrics are identical.

    python benchmarks/lvis_end_to_end.py --weight OUTPUT/demo/train/model_final.pth \
        --config-file OUTPUT/demo/train/config.yaml --output benchmarks/results/lvis_end_to_end_cpu.json
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks._report import device_name, git_commit  # noqa: E402

_INFERENCE_LINE = re.compile(r"inference on (\S+): (\d+) images in ([0-9.]+) s")
_CHUNKS_LINE = re.compile(r"(\d+) prompt chunks: ")  # logged whenever there is more than one chunk


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", default=str(REPO / "configs" / "tiny" / "fiber_tiny.yaml"))
    parser.add_argument("--weight", default=None, help="checkpoint (default: random weights, saved to a file)")
    parser.add_argument("--root", default=None, help="where the synthetic data goes (default: a temporary folder)")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--categories", type=int, default=1203)
    parser.add_argument("--min-size", type=int, default=128, help="INPUT.MIN_SIZE_TEST of both runs")
    parser.add_argument("--max-size", type=int, default=224, help="INPUT.MAX_SIZE_TEST of both runs")
    parser.add_argument("--ims-per-batch", type=int, default=8, help="TEST.IMS_PER_BATCH of the fast run")
    parser.add_argument("--chunk-batch", type=int, default=0, help="TEST.CHUNK_BATCH of the fast run")
    parser.add_argument("--workers", type=int, default=2, help="DATALOADER.NUM_WORKERS of the fast run")
    parser.add_argument("--precision", default="fp32", help="TEST.PRECISION of the fast run")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of the runs")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="more KEY VALUE for both runs")
    parser.add_argument("--output", default=None)
    return parser


def write_data(args, root: Path) -> None:
    from maskrcnn_benchmark.data.synthetic import write_lvis

    marker = root / f"lvis_{args.images}_{args.categories}.done"
    if not marker.is_file():
        write_lvis(str(root), seed=0, num_images=args.images, num_categories=args.categories)
        marker.write_text("ok\n")


def tokenizer_opts(args, work: Path) -> list[str]:
    """A local BPE tokenizer unless the config names an existing tokenizer folder."""
    from maskrcnn_benchmark.config import load_config
    from maskrcnn_benchmark.modeling.language_backbone.tokenizer import write_local_bpe_tokenizer

    cfg = load_config(args.config_file, [])
    if os.path.isdir(str(cfg.MODEL.LANGUAGE_BACKBONE.TOKENIZER_TYPE)):
        return []
    return ["MODEL.LANGUAGE_BACKBONE.TOKENIZER_TYPE", write_local_bpe_tokenizer(str(work / "tokenizer"))]


def random_weight(args, work: Path, opts: list[str]) -> str:
    import torch

    from maskrcnn_benchmark.config import load_config
    from maskrcnn_benchmark.modeling.detector import build_detection_model

    torch.manual_seed(0)
    model = build_detection_model(load_config(args.config_file, opts))
    path = work / "random.pth"
    torch.save({"model": model.state_dict()}, path)
    return str(path)


def run(args, name: str, weight: str, root: Path, work: Path, opts: list[str]) -> dict:
    out = work / name
    command = [sys.executable, str(REPO / "tools" / "test_grounding_net.py"), "--config-file", args.config_file,
               "--weight", weight, "--task_config", str(REPO / "configs" / "lvis" / "minival.yaml"),
               "OUTPUT_DIR", str(out), "MODEL.DEVICE", args.device, "TEST.EVAL_TASK", "detection",
               "TEST.CHUNKED_EVALUATION", "40", "TEST.MDETR_STYLE_AGGREGATE_CLASS_NUM", "3000",
               "MODEL.ATSS.DETECTIONS_PER_IMG", "300", "INPUT.MIN_SIZE_TEST", str(args.min_size),
               "INPUT.MAX_SIZE_TEST", str(args.max_size), *opts]
    env = dict(os.environ, PYTHONPATH=str(REPO), DATASET=str(root), PYTHONUNBUFFERED="1")
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=str(work))
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{name} run failed:\n{result.stderr[-4000:]}")
    match = _INFERENCE_LINE.search(result.stdout + result.stderr)
    if match is None:
        raise RuntimeError(f"{name} run: no 'inference on' line in the log")
    images, seconds = int(match.group(2)), float(match.group(3))
    chunks = _CHUNKS_LINE.search(result.stdout + result.stderr)
    metrics_file = next(out.glob("eval/*/lvis_evaluation_mini_val/metrics.json"))
    metrics = json.loads(metrics_file.read_text())
    return {"opts": opts, "images": images, "prompt_chunks": int(chunks.group(1)) if chunks else None,
            "inference_seconds": round(seconds, 2),
            "images_per_second": round(images / seconds, 4), "process_wall_seconds": round(wall, 2),
            "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float))}}


def main(args) -> dict:
    args.config_file = os.path.abspath(args.config_file)  # the tool runs in the work folder
    if args.weight:
        args.weight = os.path.abspath(args.weight)
    work = Path(tempfile.mkdtemp(prefix="lvis_e2e_"))
    root = Path(args.root) if args.root else work / "data"
    root.mkdir(parents=True, exist_ok=True)
    write_data(args, root)
    opts = tokenizer_opts(args, work) + list(args.opts)
    weight = args.weight or random_weight(args, work, opts)
    naive = run(args, "naive", weight, root, work,
                opts + ["TEST.REUSE_IMAGE_PREFIX", "False", "TEST.IMS_PER_BATCH", "1", "DATALOADER.NUM_WORKERS", "0",
                        "TEST.PRECISION", "fp32"])
    fast = run(args, "fast", weight, root, work,
               opts + ["TEST.REUSE_IMAGE_PREFIX", "True", "TEST.IMS_PER_BATCH", str(args.ims_per_batch),
                       "TEST.CHUNK_BATCH", str(args.chunk_batch), "DATALOADER.NUM_WORKERS", str(args.workers),
                       "TEST.PRECISION", args.precision])
    keys = sorted(set(naive["metrics"]) | set(fast["metrics"]))
    differences = {k: abs(naive["metrics"].get(k, float("nan")) - fast["metrics"].get(k, float("nan")))
                   for k in keys}
    import torch

    return {
        "device": device_name(args.device, args.threads), "torch": torch.__version__, "commit": git_commit(),
        "config": os.path.relpath(args.config_file, REPO) if args.config_file.startswith(str(REPO) + os.sep)
        else args.config_file, "weight": args.weight or "random (seed 0)", "images": args.images,
        "categories": args.categories, "chunks_per_image": naive["prompt_chunks"],
        "test_size": [args.min_size, args.max_size], "naive": naive, "fast": fast,
        "speedup_inference": round(fast["images_per_second"] / naive["images_per_second"], 3),
        "speedup_process": round(naive["process_wall_seconds"] / fast["process_wall_seconds"], 3),
        "max_metric_difference": max(differences.values()) if differences else None,
        "identical_metrics": all(d == 0 for d in differences.values()),
    }


if __name__ == "__main__":
    from _report import emit

    arguments = build_parser().parse_args()
    emit(main(arguments), arguments.output)
