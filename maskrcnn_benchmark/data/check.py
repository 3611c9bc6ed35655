"""Check a local copy of a data set: missing files, malformed annotation records, missing/unreadable images.

Usage::

    python -m maskrcnn_benchmark.data.check coco_2017_val flickr30k_test
    DATASET=/data python -m maskrcnn_benchmark.data.check --all
    python -m maskrcnn_benchmark.data.check val test \
        --config-file configs/odinw/Aquarium_Aquarium_Combined.v2-raw-1024.coco.yaml
    python -m maskrcnn_benchmark.data.check lvis_evaluation_mini_val --config-file configs/lvis/minival.yaml \
        --open-images

Names are paths-catalog names (``DATASETS.REGISTER`` entries of ``--config-file`` are added first). Relative
paths are searched under ``./``, ``$DATASET``, ``./DATASET``, ``./OUTPUT``, ``./data``, ``./MODEL``. The exit
status is 0 when every named data set is complete, 1 otherwise; ``--json`` prints the report as JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any

from .datasets.json_annotations import CocoStyleAnnotations, image_path_from_record
from .image_io import ImageReadError, read_image

__all__ = ["check_dataset", "main"]

logger = logging.getLogger(__name__)

_GROUNDING = {"ModulatedDataset", "FlickrDataset", "RefExpDataset", "MixedDataset"}
_MAX_LISTED = 10


def _resolve(rel: str) -> str | None:
    from ..config.paths_catalog import try_to_find

    try:
        return try_to_find(rel)
    except FileNotFoundError:
        return None


def _image_root(factory: str, paths: dict[str, str | None], record: dict[str, Any]) -> str | None:
    if factory == "MixedDataset":
        return paths.get("coco_img_dir") if record.get("data_source") == "coco" else paths.get("vg_img_dir")
    return paths.get("img_dir") or paths.get("img_folder")


def _check_images(factory: str, paths: dict[str, str | None], annotations: CocoStyleAnnotations,
                  open_images: bool) -> dict[str, Any]:
    missing: list[str] = []
    unreadable: list[str] = []
    seen = set()
    for record in annotations.images.values():
        root = _image_root(factory, paths, record)
        if root is None:
            continue
        path = image_path_from_record(root, record, prefer_coco_url=factory == "LvisDetection")
        if path in seen:
            continue
        seen.add(path)
        if not os.path.isfile(path):
            if record.get("coco_url") and record.get("file_name"):
                alt = image_path_from_record(root, record, prefer_coco_url=factory != "LvisDetection")
                if os.path.isfile(alt):
                    continue
            missing.append(path)
            continue
        if open_images:
            try:
                read_image(path)  # the reader training and inference use: same verdict as they would give
            except ImageReadError as e:
                unreadable.append(str(e))
    return {"images": len(seen), "missing_images": len(missing), "missing_examples": missing[:_MAX_LISTED],
            "unreadable_images": len(unreadable), "unreadable_examples": unreadable[:_MAX_LISTED]}


def _flickr_entities_problems(name: str) -> list[str]:
    split = "test" if "test" in name else "val" if "val" in name else None
    if split is None:
        return []
    root = _resolve(os.path.join("flickr30k", "flickr30k"))
    if root is None:
        return ["raw Flickr30k Entities folder flickr30k/flickr30k (needed by the evaluator) not found"]
    problems = []
    split_file = os.path.join(root, f"{split}.txt")
    if not os.path.isfile(split_file):
        return [f"{split_file} not found"]
    with open(split_file, encoding="utf-8") as f:
        ids = [line.strip() for line in f if line.strip()]
    for sub, ext in (("Sentences", "txt"), ("Annotations", "xml")):
        absent = [i for i in ids if not os.path.isfile(os.path.join(root, sub, f"{i}.{ext}"))]
        if absent:
            problems.append(f"{len(absent)} of {len(ids)} {sub}/<id>.{ext} files missing, e.g. {absent[:3]}")
    return problems


def _check_tsv(yaml_file: str, open_images: bool, report: dict[str, Any]) -> list[str]:
    """Problems of an Objects365 TSV set: missing parts, bad label rows, out-of-range line list, bad images."""
    from .datasets.tsv import CocoDetectionTSV

    try:
        ds = CocoDetectionTSV(yaml_file)
    except (FileNotFoundError, ValueError) as e:
        return [str(e)]
    problems: list[str] = []
    rows = len(ds.label_tsv)
    if len(ds.img_tsv) != rows:
        problems.append(f"{ds.img_tsv.path} has {len(ds.img_tsv)} rows, {ds.label_tsv.path} has {rows}")
    bad = []
    for line in range(rows):
        try:
            ds._objects(line)
        except ValueError as e:
            bad.append(str(e))
    if bad:
        problems.append(f"{len(bad)} malformed label rows, e.g. {bad[:3]}")
    if ds.line_list is not None:
        outside = [n for n in ds.line_list if not 0 <= n < rows]
        if outside:
            problems.append(f"line list names {len(outside)} rows outside 0..{rows - 1}, e.g. {outside[:3]}")
    if open_images:
        for line in range(len(ds.img_tsv)):
            try:
                ds._image(line)
            except OSError as e:
                bad.append(str(e))
                problems.append(str(e))
                if len(problems) > _MAX_LISTED:
                    break
    report.update(num_images=rows, num_annotations=sum(len(ds._objects(i)) for i in range(rows)) if not bad else -1)
    return problems


def check_dataset(name: str, open_images: bool = False) -> dict[str, Any]:
    """Report on one catalog name.

    Returns:
        {"name", "factory", "ok": bool, "problems": [str], "paths": {...}, "images": ..., ...}.
    """
    from ..config.paths_catalog import DatasetCatalog

    report: dict[str, Any] = {"name": name, "problems": []}
    try:
        try:
            spec = DatasetCatalog.get(name, resolve=True)  # picks the Objects365 JSON fallback when present
        except FileNotFoundError:
            spec = DatasetCatalog.get(name, resolve=False)
    except (KeyError, ValueError) as e:
        report.update(ok=False, problems=[str(e)])
        return report
    factory = spec["factory"]
    report["factory"] = factory
    entry = DatasetCatalog.entry(name)
    if factory != "CocoDetectionTSV" and isinstance(entry.get("json_fallback"), dict):
        entry = entry["json_fallback"]
    rel_paths = {k: v for k, v in entry.items() if isinstance(v, str) and k not in ("factory",)}
    paths = {key: _resolve(rel) for key, rel in rel_paths.items()}
    report["paths"] = paths
    for key, found in paths.items():
        if found is None:
            report["problems"].append(f"{key} {rel_paths[key]!r} not found under any data root")
    ann_file = paths.get("ann_file")
    if factory == "CocoDetectionTSV":
        if paths.get("yaml_path"):
            report["problems"].extend(_check_tsv(paths["yaml_path"], open_images, report))
    elif ann_file:
        try:
            annotations = CocoStyleAnnotations(ann_file, require_categories=factory not in _GROUNDING,
                                               grounding=factory in _GROUNDING)
        except (ValueError, FileNotFoundError) as e:
            report["problems"].append(f"malformed annotations: {e}")
        else:
            report["num_images"] = len(annotations.images)
            report["num_annotations"] = sum(len(v) for v in annotations.anns_by_image.values())
            if not annotations.images:
                report["problems"].append(f"{ann_file} lists no images: the data set is empty")
            report.update(_check_images(factory, paths, annotations, open_images))
            if report["missing_images"]:
                report["problems"].append(f"{report['missing_images']} of {report['images']} images missing, e.g. "
                                          f"{report['missing_examples'][:3]}")
            if report["unreadable_images"]:
                report["problems"].append(f"{report['unreadable_images']} images unreadable, e.g. "
                                          f"{report['unreadable_examples'][:3]}")
    if factory == "FlickrDataset":
        report["problems"].extend(_flickr_entities_problems(name))
    report["ok"] = not report["problems"]
    return report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m maskrcnn_benchmark.data.check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="dataset names (paths catalog / DATASETS.REGISTER)")
    parser.add_argument("--all", action="store_true", help="check every catalogued name")
    parser.add_argument("--config-file", default="", help="a (task) config whose DATASETS.REGISTER names to add")
    parser.add_argument("--open-images", action="store_true", help="also open every image (slower)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ..config.paths_catalog import DatasetCatalog, register_datasets_from_cfg

    if args.config_file:
        from ..config import cfg as base_cfg

        cfg = base_cfg.clone()
        cfg.merge_from_file(args.config_file)
        register_datasets_from_cfg(cfg)
    names = DatasetCatalog.names() if args.all else args.names
    if not names:
        build_parser().print_usage(sys.stderr)
        print("name at least one data set, or --all", file=sys.stderr)
        return 2
    reports = [check_dataset(n, args.open_images) for n in names]
    if args.json:
        print(json.dumps(reports, indent=1))
    else:
        for r in reports:
            status = "OK" if r["ok"] else "PROBLEMS"
            counts = f" ({r['num_images']} images, {r['num_annotations']} annotations)" if "num_images" in r else ""
            print(f"{r['name']}: {status} [{r.get('factory', '?')}]{counts}")
            for problem in r["problems"]:
                print(f"  - {problem}")
    return 0 if all(r["ok"] for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
