#!/usr/bin/env python
"""Chunked-prompt (LVIS-style) evaluation speed: every step of ``detect_prompts`` against the naive schedule.

LVIS zero-shot evaluation runs every image under 31 prompt chunks of 40 class names. The naive schedule
(upstream's) is one full float32 forward pass per chunk. The steps measured, each in seconds per image:

* ``naive``: ``detect_prompts(reuse_prefix=False)``, a full pass per chunk;
* ``prefix``: the caption-independent image prefix once per batch, each chunk's pre-fusion text layers
  computed in the call (a cold text cache: what the first batch of a run pays);
* ``prefix_cached``: the same with the text prefixes cached (every later batch of a run);
* ``batched_k``: ``k`` chunks per fused pass (``TEST.CHUNK_BATCH k``; 0 = chosen from free memory);
* ``<precision>_k``: the batched path in bf16 / fp16 / tf32.

Every float32 step is compared with the naive detections (the same labels and boxes once both lists are put in
one canonical order, since scores 1e-8 apart may be ranked either way; largest score and box differences);
reduced precisions are compared by matching the naive top detections (same label, IoU >= 0.9). Steps run
interleaved, ``--repeats`` times (medians), so that a shared machine's load hits them alike. Peak memory:
``torch.cuda.max_memory_allocated`` on CUDA; on a CPU, the resident set sampled every 10 ms, above the
level before the step. Random weights (``--seed``), LVIS-like names (two words each). Prints JSON and writes
it to ``--output`` when given.

    python benchmarks/chunked_eval.py                                   # tiny model, CPU, a few seconds
    B=configs/e2e_dyhead_SwinT_B_FPN_lvis_finetuning_fusion_backbone.yaml
    python benchmarks/chunked_eval.py --config-file $B --height 400 --width 672 --chunks 4 --batches 2,4 \
        --precisions bf16 --repeats 2                                                   # FIBER-B, CPU
    python benchmarks/chunked_eval.py --config-file $B --device cuda --height 800 --width 1344 --chunks 31 \
        --batches 8,0 --precisions tf32,bf16,fp16 --repeats 3                           # FIBER-B, GPU
"""

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import device_name, git_commit  # noqa: E402

WORDS = ("apple bag ball bear bed bell bench bird boat book bottle bowl box bread bucket cake camera candle "
         "car cat chair clock cup desk dog door drum duck egg fan fish flag fork frog glass hat horse jar kite "
         "lamp").split()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", default=str(REPO / "configs" / "tiny" / "fiber_tiny.yaml"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--images", type=int, default=1, help="images per batch")
    parser.add_argument("--chunks", type=int, default=8)
    parser.add_argument("--classes-per-chunk", type=int, default=40)
    parser.add_argument("--batches", default="2,0", help="comma list of TEST.CHUNK_BATCH values to time")
    parser.add_argument("--precisions", default="bf16", help="comma list of reduced precisions to time")
    parser.add_argument("--compile", default="", help="also time the batched fp32 path with TEST.COMPILE this mode")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=0, help="untimed rounds of every step first")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--inference-th", type=float, default=0.0,
                        help="MODEL.ATSS.INFERENCE_TH; random weights score every token near the 0.01 prior, so "
                             "0 keeps the post-processing as loaded as a trained model's on a busy image")
    parser.add_argument("--gate", type=float, default=0.5,
                        help="value of the zero-initialised fusion gates (alpha), so that text and image interact")
    parser.add_argument("--weight", default=None, help="a checkpoint instead of random weights")
    parser.add_argument("--output", default=None, help="also write the JSON here")
    return parser


def class_names(chunks: int, per_chunk: int) -> dict[int, str]:
    """LVIS-like two-word class names, labels 1..chunks*per_chunk."""
    return {label: f"{WORDS[label % len(WORDS)]} {WORDS[(label // len(WORDS)) % len(WORDS)]}"
            for label in range(1, chunks * per_chunk + 1)}


class PeakMemory:
    """Peak memory of a block: CUDA allocator peak, or the sampled resident set on a CPU (bytes above start)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak = 0

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start = torch.cuda.memory_allocated(self.device)
            return self
        self.start = self.peak_rss = self._rss()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while not self.stop.wait(0.01):
            self.peak_rss = max(self.peak_rss, self._rss())

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device) - self.start
        else:
            self.stop.set()
            self.thread.join()
            self.peak = max(self.peak_rss, self._rss()) - self.start
        return False


def _canonical(boxlist):
    """The detections sorted by (label, box rounded to 0.01 px, score rounded to 1e-4): an order that does not
    depend on how near-equal scores were ranked (``topk`` orders values 1e-8 apart either way)."""
    labels = boxlist.get_field("labels").tolist()
    boxes = [tuple(round(v, 2) for v in box) for box in boxlist.bbox.tolist()]
    scores = [round(v, 4) for v in boxlist.get_field("scores").tolist()]
    order = sorted(range(len(labels)), key=lambda i: (labels[i], boxes[i], scores[i]))
    return boxlist[torch.tensor(order, dtype=torch.long)] if order else boxlist


def compare_fp32(results, reference) -> dict:
    """The same detections as the naive run (labels equal once both are put in a canonical order), the largest
    |score| and |box| differences, and whether the order itself was the same."""
    same_order = all(a.get_field("labels").tolist() == b.get_field("labels").tolist()
                     for a, b in zip(results, reference))
    results, reference = [_canonical(r) for r in results], [_canonical(r) for r in reference]
    same_labels = all(a.get_field("labels").tolist() == b.get_field("labels").tolist()
                      for a, b in zip(results, reference))
    if not same_labels:
        return {"same_labels": False, "same_order": same_order}
    score = max([float((a.get_field("scores") - b.get_field("scores")).abs().max()) for a, b in
                 zip(results, reference) if len(a)], default=0.0)
    box = max([float((a.bbox - b.bbox).abs().max()) for a, b in zip(results, reference) if len(a)], default=0.0)
    return {"same_labels": True, "same_order": same_order, "max_score_diff": score, "max_box_diff": box,
            "identical_within_1e-5": score <= 1e-5 and box <= 1e-3}


def compare_reduced(results, reference, top: int = 100) -> dict:
    """Of the naive run's ``top`` best detections per image: the fraction found again (same label, IoU >= 0.9)
    and the score differences of those found."""
    from maskrcnn_benchmark.structures.boxlist_ops import boxlist_iou

    found, diffs = [], []
    for result, ref in zip(results, reference):
        ref = ref[torch.argsort(ref.get_field("scores"), descending=True)[:top]]
        if len(ref) == 0:
            continue
        if len(result) == 0:
            found.append(torch.zeros(len(ref), dtype=torch.bool))
            continue
        iou = boxlist_iou(ref, result) * (ref.get_field("labels")[:, None] == result.get_field("labels")[None, :])
        best, index = iou.max(dim=1)
        hit = best >= 0.9
        found.append(hit)
        diffs.append((ref.get_field("scores")[hit] - result.get_field("scores")[index[hit]]).abs())
    hits = torch.cat(found) if found else torch.zeros(0, dtype=torch.bool)
    diff = torch.cat(diffs) if diffs else torch.zeros(0)
    return {"top": top, "found_fraction": round(float(hits.float().mean()), 4) if len(hits) else None,
            "max_score_diff": float(diff.max()) if len(diff) else None,
            "mean_score_diff": float(diff.mean()) if len(diff) else None}


def build(args, device):
    from maskrcnn_benchmark.config import load_config
    from maskrcnn_benchmark.data.prompts import plan_detection_prompts
    from maskrcnn_benchmark.modeling.detector import build_detection_model
    from maskrcnn_benchmark.modeling.language_backbone.tokenizer import build_tokenizer, write_local_bpe_tokenizer
    from maskrcnn_benchmark.structures.image_list import ImageList

    tokenizer_dir = write_local_bpe_tokenizer(os.path.join(tempfile.gettempdir(), "fiber_bench_tokenizer"))
    cfg = load_config(args.config_file, ["MODEL.LANGUAGE_BACKBONE.TOKENIZER_TYPE", tokenizer_dir, "MODEL.WEIGHT", "",
                                         "MODEL.DEVICE", args.device, "TEST.MDETR_STYLE_AGGREGATE_CLASS_NUM", "3000",
                                         "MODEL.ATSS.DETECTIONS_PER_IMG", "300",
                                         "MODEL.ATSS.INFERENCE_TH", str(args.inference_th)])
    torch.manual_seed(args.seed)
    model = build_detection_model(cfg)
    if args.weight:
        from maskrcnn_benchmark.utils.checkpoint import load_checkpoint

        load_checkpoint(model, args.weight, strict=True)
    else:
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if name.rsplit(".", 1)[-1].startswith("alpha"):
                    parameter.fill_(args.gate)
    model = model.to(device).eval()
    plans = plan_detection_prompts(class_names(args.chunks, args.classes_per_chunk), build_tokenizer(tokenizer_dir),
                                   chunk_size=args.classes_per_chunk,
                                   max_query_len=int(cfg.MODEL.LANGUAGE_BACKBONE.MAX_QUERY_LEN))
    generator = torch.Generator().manual_seed(args.seed)
    tensors = torch.randn(args.images, 3, args.height, args.width, generator=generator)
    images = ImageList(tensors.to(device), [(args.height, args.width)] * args.images)
    return cfg, model, plans, images


def steps(args) -> list[tuple[str, dict, bool]]:
    """(name, detect_prompts keywords, run with an empty text cache)."""
    batches = [int(b) for b in args.batches.split(",") if b.strip()]
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    out = [("naive", dict(reuse_prefix=False, precision="fp32"), False),
           ("prefix", dict(chunk_batch=1, precision="fp32"), True),
           ("prefix_cached", dict(chunk_batch=1, precision="fp32"), False)]
    out += [(f"batched_{k}", dict(chunk_batch=k, precision="fp32"), False) for k in batches]
    out += [(f"{p}_{k}", dict(chunk_batch=k, precision=p), False) for p in precisions for k in batches[-1:]]
    if args.compile:
        out += [(f"compiled_{k}", dict(chunk_batch=k, precision="fp32", compile=args.compile), False)
                for k in batches[-1:]]
    return out


def prime_text_cache(model, plans, plan, device) -> None:
    """Fill the model's text-prefix cache for every precision a cached step uses (untimed)."""
    from maskrcnn_benchmark.modeling.detector.chunked_prompts import precision_context

    precisions = {kw["precision"] for _, kw, cold in plan if kw.get("reuse_prefix", True) and not cold}
    for precision in sorted(precisions):
        with torch.no_grad(), precision_context(precision, device):
            for prompt in plans:
                model._text_cache.get(model, prompt.caption, device, precision)


def run_step(model, images, plans, keywords, cold, device):
    """One timed ``detect_prompts`` call; ``cold`` runs it with an empty text cache of its own."""
    from maskrcnn_benchmark.modeling.detector.chunked_prompts import TextPrefixCache

    saved, saved_mode = model._text_cache, model.compile_mode
    keywords = dict(keywords)
    model.compile_mode = keywords.pop("compile", "")
    if cold:
        model._text_cache = TextPrefixCache()
    try:
        with PeakMemory(device) as memory:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            results = model.detect_prompts(images, plans, **keywords)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds = time.perf_counter() - start
    finally:
        model._text_cache, model.compile_mode = saved, saved_mode
    return seconds, memory.peak, [r.to("cpu") for r in results]


def main(args) -> dict:
    device = torch.device(args.device)
    cfg, model, plans, images = build(args, device)
    plan = steps(args)
    times = {name: [] for name, _, _ in plan}
    memory = {name: 0 for name, _, _ in plan}
    outputs = {}
    prime_text_cache(model, plans, plan, device)
    for round_index in range(args.warmup + args.repeats):
        for name, keywords, clear in plan:
            seconds, peak, results = run_step(model, images, plans, keywords, clear, device)
            if round_index >= args.warmup:
                times[name].append(seconds / args.images)
                memory[name] = max(memory[name], peak)
            outputs[name] = results
    naive = statistics.median(times["naive"])
    report = {
        "config": os.path.relpath(args.config_file, REPO) if Path(args.config_file).is_absolute() else args.config_file,
        "device": device_name(device), "torch": torch.__version__, "commit": git_commit(),
        "image_hw": [args.height, args.width], "images_per_batch": args.images, "chunks": len(plans),
        "classes_per_chunk": args.classes_per_chunk, "repeats": args.repeats, "warmup": args.warmup,
        "params": sum(p.numel() for p in model.parameters()), "weights": args.weight or f"random, gates {args.gate}",
        "inference_th": args.inference_th, "steps": {},
    }
    for name, keywords, _ in plan:
        median = statistics.median(times[name])
        entry = {"seconds_per_image": round(median, 4), "all_seconds_per_image": [round(t, 4) for t in times[name]],
                 "speedup_vs_naive": round(naive / median, 3), "peak_memory_mb": round(memory[name] / 2 ** 20, 1),
                 "keywords": keywords}
        if name != "naive":
            reduced = keywords.get("precision", "fp32") not in ("fp32",)
            entry["vs_naive"] = (compare_reduced if reduced else compare_fp32)(outputs[name], outputs["naive"])
        report["steps"][name] = entry
    return report


if __name__ == "__main__":
    from _report import emit

    arguments = build_parser().parse_args()
    emit(main(arguments), arguments.output)
