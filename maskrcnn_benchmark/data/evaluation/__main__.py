"""Re-score saved predictions without the model and print the metrics as JSON.

    python -m maskrcnn_benchmark.data.evaluation coco   --gt instances_val2017.json --predictions bbox.json \
        [--backend pycocotools]
    python -m maskrcnn_benchmark.data.evaluation lvis   --gt lvis_v1_minival.json --predictions predictions.json \
        [--normal-ap]
    python -m maskrcnn_benchmark.data.evaluation refexp --gt finetune_refcoco_val.json --predictions predictions.json
    python -m maskrcnn_benchmark.data.evaluation flickr --gt DATASET/flickr30k/flickr30k --subset test \
        --predictions predictions.json [--merged]
    python -m maskrcnn_benchmark.data.evaluation odinw  --results results.json [--which 35] [--allow-missing]

Predictions and ground truth may be gzip-compressed (``bbox.json.gz``). Every prediction record is checked
(a bbox of 4 finite numbers with w, h >= 0, a finite score, image and category ids of the ground truth) and a
bad one is reported with its index; an error prints one ``error:`` message and exits 2 (``--debug`` shows
the traceback).

For "odinw", ``results.json`` is test_grounding_net.py's ``summary.json``, finetune.py's ``finetune_results.json``,
or a mapping of data set names (or task yaml paths) to AP or to a metrics dict with "AP".
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from maskrcnn_benchmark.utils.atomic_io import atomic_write_json
from maskrcnn_benchmark.utils.cli_errors import add_debug_argument, report_user_errors

from . import evaluate, format_odinw_table, odinw_average
from .base import read_json
from .odinw import collect_odinw_results


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m maskrcnn_benchmark.data.evaluation",
                                     description="Re-score saved predictions and print the metrics as JSON.")
    parser.add_argument("kind", choices=("coco", "lvis", "flickr", "refexp", "odinw"))
    parser.add_argument("--gt", help="ground truth: json file (coco/lvis/refexp) or Flickr30k Entities folder")
    parser.add_argument("--predictions", help="predictions json written by the evaluator")
    parser.add_argument("--backend", help="coco: faster (default) | pycocotools; lvis: faster (default) | lvis")
    parser.add_argument("--normal-ap", action="store_true", help="lvis: standard 300-per-image AP instead of Fixed AP")
    parser.add_argument("--subset", default="test", help="flickr: split (test|val)")
    parser.add_argument("--merged", action="store_true", help="flickr: merged-box protocol instead of any-box")
    parser.add_argument("--results", help="odinw: json of data set -> AP or metrics dict")
    parser.add_argument("--which", default="13", help="odinw: 13 or 35")
    parser.add_argument("--allow-missing", action="store_true", help="odinw: report a partial average")
    parser.add_argument("--no-per-category", action="store_true", help="coco: omit the per-category table")
    parser.add_argument("--output", help="also write the metrics JSON to this file")
    add_debug_argument(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.kind == "odinw":
        if not args.results:
            raise SystemExit("odinw needs --results")
        results = collect_odinw_results(read_json(args.results))
        report = odinw_average(results, which=args.which, allow_missing=args.allow_missing)
        print(format_odinw_table(report), file=sys.stderr)
        metrics = report
    else:
        if not args.gt or not args.predictions:
            raise SystemExit(f"{args.kind} needs --gt and --predictions")
        kwargs = {}
        if args.kind in ("coco", "lvis") and args.backend:
            kwargs["backend"] = args.backend
        if args.kind == "coco":
            kwargs["per_category"] = not args.no_per_category
        if args.kind == "lvis":
            kwargs["fixed_ap"] = not args.normal_ap
        if args.kind == "flickr":
            kwargs.update(subset=args.subset, merge_boxes=args.merged)
        metrics = evaluate(args.kind, args.gt, args.predictions, **kwargs)
    if args.output:
        atomic_write_json(args.output, metrics)
    print(json.dumps(metrics, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(report_user_errors(main))
