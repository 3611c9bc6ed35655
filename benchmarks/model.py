"""FIBER-B forward (and backward) time and peak memory, per component, printed as JSON.

Builds the full-size model from a FIBER-B config with random weights (no checkpoint, no tokenizer: a
256-token pre-tokenised caption is used) and times, with the device synchronised around every part:

* ``swin_image_prefix``: patch embedding .. Swin stage-3 blocks before fusion (caption-independent);
* ``roberta_text_only``: text embeddings + the RoBERTa layers before fusion;
* ``roberta_fused_layers`` / ``swin_fused_blocks``: the text and image halves of the fusion steps;
* ``fpn``, ``dyhead_tower``, ``head_predictions`` (box, centerness, token logits after the tower);
* ``postprocess`` (eval) or ``loss`` (train: ATSS assignment + losses); ``backward`` (train).

Usage::

    python benchmarks/model.py --device cuda --iters 10 [--amp] [--modes eval,train]
    python benchmarks/model.py --device cpu --iters 1 --modes eval        # slow: about a minute per pass

Times are medians over ``--iters`` timed passes after ``--warmup`` untimed ones, in milliseconds. Peak memory
is ``torch.cuda.max_memory_allocated`` on CUDA, and the process's peak resident set size on CPU (monotonic
over the run, so the train figure includes the eval one).

``--modes throughput`` measures single-prompt inference as the Predictor and evaluation run it
(``GeneralizedVLRCNN.detect_prompts``, one 40-class prompt, its text prefix cached): images per second at
each ``--batch-sizes`` for each ``--precisions``, e.g.::

    python benchmarks/model.py --device cuda --modes throughput --batch-sizes 1,8 --precisions fp32,bf16
"""

import argparse
import functools
import os
import platform
import resource
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from maskrcnn_benchmark.config import cfg as default_cfg  # noqa: E402
from maskrcnn_benchmark.modeling.detector import build_detection_model  # noqa: E402
from maskrcnn_benchmark.structures.bounding_box import BoxList  # noqa: E402
from maskrcnn_benchmark.structures.image_list import to_image_list  # noqa: E402

DEFAULT_CONFIG = REPO / "configs" / "e2e_dyhead_SwinT_B_FPN_coco_finetuning_fusion_backbone.yaml"


class PartTimer:
    """Accumulates wall time of wrapped callables, synchronising the device around each call."""

    def __init__(self, device: torch.device):
        self.device = device
        self.totals = defaultdict(float)

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def wrap(self, name, fn, key_fn=None):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            self.sync()
            start = time.perf_counter()
            result = fn(*args, **kwargs)
            self.sync()
            self.totals[key_fn(args, kwargs) if key_fn else name] += time.perf_counter() - start
            return result

        return timed

    def wrap_module(self, name, module) -> None:
        module.forward = self.wrap(name, module.forward)


def instrument(model, timer: PartTimer) -> None:
    """Wrap the model's parts so that every forward records per-component times."""
    fusion = model.fusion_backbone
    text_model = fusion.language_backbone.body.model
    fusion.forward_image_prefix = timer.wrap("swin_image_prefix", fusion.forward_image_prefix)
    fusion.forward_from_prefix = timer.wrap("from_prefix", fusion.forward_from_prefix)
    fusion.forward_text_prefix = timer.wrap("roberta_text_only", fusion.forward_text_prefix)
    text_model.run_layer = timer.wrap(
        "", text_model.run_layer,
        key_fn=lambda args, kwargs: "roberta_fused_layers" if kwargs.get("image_tokens") is not None
        else "text_layer_inside_embed")
    timer.wrap_module("fpn", fusion.backbone.fpn)
    timer.wrap_module("rpn", model.rpn)
    timer.wrap_module("head", model.rpn.head)
    timer.wrap_module("dyhead_tower", model.rpn.head.dyhead_tower)
    timer.wrap_module("postprocess", model.rpn.post_processor)
    timer.wrap_module("loss", model.rpn.loss_evaluator)


def components(totals) -> dict:
    """Per-component seconds from the nested raw totals."""
    fusion_steps = totals["from_prefix"] - totals["roberta_text_only"] - totals["fpn"]
    parts = {
        "swin_image_prefix": totals["swin_image_prefix"],
        "roberta_text_only": totals["roberta_text_only"],
        "roberta_fused_layers": totals["roberta_fused_layers"],
        "swin_fused_blocks": fusion_steps - totals["roberta_fused_layers"],
        "fpn": totals["fpn"],
        "dyhead_tower": totals["dyhead_tower"],
        "head_predictions": totals["head"] - totals["dyhead_tower"],
        "anchors_and_rest_of_rpn": totals["rpn"] - totals["head"] - totals["postprocess"] - totals["loss"],
    }
    if totals["postprocess"]:
        parts["postprocess"] = totals["postprocess"]
    if totals["loss"]:
        parts["loss"] = totals["loss"]
    return parts


def make_inputs(cfg, height: int, width: int, device: torch.device, real_tokens: int):
    """A padded image batch of one, a 256-token caption (``real_tokens`` unmasked) and 5 random target boxes."""
    generator = torch.Generator().manual_seed(0)
    image = torch.randn(3, height, width, generator=generator)
    images = to_image_list([image], cfg.DATALOADER.SIZE_DIVISIBILITY).to(device)
    length = cfg.MODEL.LANGUAGE_BACKBONE.MAX_QUERY_LEN
    real_tokens = min(real_tokens, length)  # a smaller config's caption holds fewer
    vocab = min(50000, cfg.MODEL.LANGUAGE_BACKBONE.VOCAB_SIZE)
    input_ids = torch.ones(1, length, dtype=torch.long)
    input_ids[0, :real_tokens] = torch.randint(3, vocab, (real_tokens,), generator=generator)
    input_ids[0, 0], input_ids[0, real_tokens - 1] = 0, 2
    attention_mask = torch.zeros(1, length, dtype=torch.long)
    attention_mask[0, :real_tokens] = 1
    text = {"input_ids": input_ids.to(device), "attention_mask": attention_mask.to(device)}
    xy = torch.rand(5, 2, generator=generator) * torch.tensor([width * 0.6, height * 0.6])
    wh = torch.rand(5, 2, generator=generator) * torch.tensor([width * 0.35, height * 0.35]) + 16
    target = BoxList(torch.cat([xy, xy + wh], dim=1), (width, height))
    target.add_field("labels", torch.arange(1, 6))
    positive_map = torch.zeros(5, length)
    for row in range(5):
        positive_map[row, 1 + 2 * row: 3 + 2 * row] = 1.0
    label_map = {label: [1 + 2 * (label - 1), 2 + 2 * (label - 1)] for label in range(1, 6)}
    return images, text, [target.to(device)], positive_map.to(device), label_map


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_mode(model, mode, inputs, timer, args, device) -> dict:
    images, text, targets, positive_map, label_map = inputs
    autocast_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    model.train(mode == "train")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    samples = defaultdict(list)
    for iteration in range(args.warmup + args.iters):
        timer.totals.clear()
        timer.sync()
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=args.amp):
            if mode == "eval":
                with torch.no_grad():
                    model(images, tokenizer_input=text, positive_map=label_map)
            else:
                losses = model(images, targets, positive_map=positive_map, tokenizer_input=text)
        if mode == "train":
            timer.sync()
            backward_start = time.perf_counter()
            sum(losses.values()).backward()
            model.zero_grad(set_to_none=True)
            timer.sync()
            timer.totals["backward"] = time.perf_counter() - backward_start
        timer.sync()
        total = time.perf_counter() - start
        if iteration >= args.warmup:
            for name, seconds in components(timer.totals).items():
                samples[name].append(seconds)
            if mode == "train":
                samples["backward"].append(timer.totals["backward"])
            samples["total"].append(total)
    result = {name: round(1000 * statistics.median(values), 2) for name, values in samples.items()}
    return {"ms": result, "peak_memory_mb": round(peak_memory_mb(device), 1)}


sys.path.insert(0, str(REPO / "benchmarks"))


def run_throughput(model, cfg, args, device) -> dict:
    """Images/s of one-prompt ``detect_prompts`` per (precision, batch size); median of ``--iters`` calls."""
    import tempfile

    from chunked_eval import class_names

    from maskrcnn_benchmark.data.prompts import plan_detection_prompts
    from maskrcnn_benchmark.modeling.language_backbone.tokenizer import build_tokenizer, write_local_bpe_tokenizer

    model.tokenizer = build_tokenizer(write_local_bpe_tokenizer(os.path.join(tempfile.gettempdir(),
                                                                             "fiber_bench_tokenizer")))
    [plan] = plan_detection_prompts(class_names(1, 40), model.tokenizer, chunk_size=40,
                                    max_query_len=int(cfg.MODEL.LANGUAGE_BACKBONE.MAX_QUERY_LEN))
    model.eval()
    results = {}
    for precision in [p.strip() for p in args.precisions.split(",") if p.strip()]:
        for batch in [int(b) for b in args.batch_sizes.split(",") if b.strip()]:
            images = to_image_list([torch.randn(3, args.height, args.width)] * batch,
                                   cfg.DATALOADER.SIZE_DIVISIBILITY).to(device)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            samples = []
            for iteration in range(args.warmup + args.iters):
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                start = time.perf_counter()
                model.detect_prompts(images, [plan], precision=precision)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if iteration >= args.warmup:
                    samples.append(time.perf_counter() - start)
            seconds = statistics.median(samples)
            results[f"{precision}_batch{batch}"] = {"images_per_second": round(batch / seconds, 3),
                                                    "ms_per_batch": round(1000 * seconds, 2),
                                                    "peak_memory_mb": round(peak_memory_mb(device), 1)}
    return results


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config-file", default=str(DEFAULT_CONFIG), help="FIBER-B config (default: COCO fine-tune)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    parser.add_argument("--amp", action="store_true", help="autocast (fp16 on CUDA, bf16 on CPU)")
    parser.add_argument("--modes", default="eval,train", help="comma list of eval, train")
    parser.add_argument("--iters", type=int, default=None, help="timed passes (default 10 on CUDA, 1 on CPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed passes first (default 3 on CUDA, 0 on CPU)")
    parser.add_argument("--height", type=int, default=800)
    parser.add_argument("--width", type=int, default=1333)
    parser.add_argument("--real-tokens", type=int, default=201, help="unmasked tokens of the 256-token caption")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--batch-sizes", default="1,8", help="throughput mode: images per call")
    parser.add_argument("--precisions", default="fp32,bf16", help="throughput mode: TEST.PRECISION values")
    parser.add_argument("--output", default=None, help="also write the JSON here")
    return parser


def main(args) -> dict:
    device = torch.device(args.device)
    if args.iters is None:
        args.iters = 10 if device.type == "cuda" else 1
    if args.warmup is None:
        args.warmup = 3 if device.type == "cuda" else 0
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = default_cfg.clone()
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(["MODEL.DEVICE", args.device])
    torch.manual_seed(0)
    model = build_detection_model(cfg).to(device)
    timer = PartTimer(device)
    inputs = make_inputs(cfg, args.height, args.width, device, args.real_tokens)
    from _report import git_commit

    report = {
        "config": os.path.relpath(args.config_file, REPO) if Path(args.config_file).is_absolute() else args.config_file,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__, "commit": git_commit(), "amp": args.amp, "threads": torch.get_num_threads(),
        "image_hw": [args.height, args.width], "padded_hw": list(inputs[0].tensors.shape[-2:]),
        "caption_tokens": cfg.MODEL.LANGUAGE_BACKBONE.MAX_QUERY_LEN,
        "real_tokens": int(inputs[1]["attention_mask"].sum()),
        "params": sum(p.numel() for p in model.parameters()), "iters": args.iters, "warmup": args.warmup,
    }
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in ("eval", "train", "throughput")]
    if unknown:
        raise ValueError(f"--modes: unknown mode(s) {unknown} (use eval, train, throughput)")
    if "throughput" in modes:  # first, before the per-component timers wrap the model
        report["throughput"] = run_throughput(model, cfg, args, device)
    component_modes = [m for m in modes if m != "throughput"]
    if component_modes:
        instrument(model, timer)
    for mode in component_modes:
        report[mode] = run_mode(model, mode, inputs, timer, args, device)
    return report


if __name__ == "__main__":
    from _report import emit

    arguments = build_parser().parse_args()
    emit(main(arguments), arguments.output)
