"""Check a downloaded ODinW folder: report, per data set, every registered file or folder that is missing.

    python -m odinw.prepare --root DATASET [--which 13|35|all|Name1,Name2] [--check-images] [--fewshot]

``--root`` is the data root that the task yamls' relative paths (``odinw/...``) start from (``$DATASET``).
Few-shot files (``fewshot_*.json``) are not part of the download; they are reported separately, and
``python -m odinw.fewshot`` writes them. Prints a JSON report; exits 1 when a required file is missing.
Nothing is downloaded: the report names the archive to fetch and its URL (GLIP's odinw/download.py list).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Any

from .catalog import OdinwDataset, get_dataset, load_catalog, resolve_names

__all__ = ["is_fewshot_split", "check_dataset", "check_datasets", "main"]

_FEWSHOT_SPLIT = re.compile(r"^(train|val|minival)_\d+_\d+$")


def is_fewshot_split(split: str) -> bool:
    """True for the generated few-shot splits ("train_5_30") and upstream's irregular "minival_3shot_3seed"."""
    return bool(_FEWSHOT_SPLIT.match(split)) or "shot" in split


def _image_files(ann_file: str) -> list[str]:
    with open(ann_file) as stream:
        try:
            data = json.load(stream)
        except json.JSONDecodeError as error:
            raise ValueError(f"{ann_file}: not valid JSON ({error})") from error
    if "images" not in data:
        raise ValueError(f"{ann_file}: no 'images' list; not a COCO-format annotation file")
    return [image["file_name"] for image in data["images"]]


def check_dataset(root: str, dataset: OdinwDataset, check_images: bool = False, fewshot: bool = False
                  ) -> dict[str, Any]:
    """Report for one data set.

    Args:
        root: data root.
        dataset: catalog entry.
        check_images: also open every required annotation file and check each listed image exists.
        fewshot: also report missing few-shot split files (as "missing_fewshot", never an error).

    Returns:
        ``{"name", "ok", "missing": [...], "missing_fewshot": [...], "malformed": [...], "archive", "url"}``.
    """
    missing: list[str] = []
    missing_fewshot: list[str] = []
    malformed: list[str] = []
    for split, entry in sorted(dataset.register.items()):
        img_dir = os.path.join(root, entry["img_dir"])
        ann_file = os.path.join(root, entry["ann_file"])
        if is_fewshot_split(split):
            if fewshot and not os.path.isfile(ann_file):
                missing_fewshot.append(entry["ann_file"])
            continue
        if not os.path.isdir(img_dir) and entry["img_dir"] not in missing:
            missing.append(entry["img_dir"])
        if not os.path.isfile(ann_file):
            if entry["ann_file"] not in missing:  # e.g. PascalVOC registers "test" on the val files
                missing.append(entry["ann_file"])
            continue
        if check_images:
            try:
                names = _image_files(ann_file)
            except ValueError as error:
                malformed.append(str(error))
                continue
            absent = [name for name in names if not os.path.isfile(os.path.join(img_dir, name))]
            missing.extend(os.path.join(entry["img_dir"], name) for name in absent)
    download = load_catalog()["download"]
    return {
        "name": dataset.name,
        "ok": not missing and not malformed,
        "missing": missing,
        "missing_fewshot": missing_fewshot,
        "malformed": malformed,
        "archive": dataset.root_folder,
        "url": download["url_pattern"].format(root=download["root_url"], name=dataset.root_folder),
    }


def check_datasets(root: str, names: list[str], check_images: bool = False, fewshot: bool = False
                   ) -> dict[str, Any]:
    """Reports for several data sets plus a summary: which are complete, which archives to fetch."""
    reports = [check_dataset(root, get_dataset(name), check_images, fewshot) for name in names]
    incomplete = [report for report in reports if not report["ok"]]
    return {
        "root": root,
        "num_datasets": len(reports),
        "complete": [report["name"] for report in reports if report["ok"]],
        "incomplete": [report["name"] for report in incomplete],
        "archives_to_fetch": sorted({report["archive"] for report in incomplete}),
        "datasets": reports,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m odinw.prepare",
                                     description="Check a downloaded ODinW folder and report what is missing.")
    parser.add_argument("--root", default=os.environ.get("DATASET", "DATASET"), help="data root (default $DATASET)")
    parser.add_argument("--which", default="35", help="13, 35, all, or comma-separated data set names")
    parser.add_argument("--check-images", action="store_true", help="check every image listed in the annotations")
    parser.add_argument("--fewshot", action="store_true", help="also list missing few-shot split files")
    args = parser.parse_args(argv)
    report = check_datasets(args.root, resolve_names(args.which), args.check_images, args.fewshot)
    print(json.dumps(report, indent=1))
    return 0 if not report["incomplete"] else 1


if __name__ == "__main__":
    sys.exit(main())
