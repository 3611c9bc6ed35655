"""The ODinW benchmark catalog: every data set's classes, registered splits and per-data-set config options.

Facts come from GLIP's ``configs/odinw_13`` and ``configs/odinw_35`` yamls (the odinw_35 file is primary
where both exist; the two disagree only on CAPTION_PROMPT, present in 4 odinw_35 files, and on the class
names of CottontailRabbits and NorthAmericaMushrooms, kept as ``odinw_13_overrides``). They are stored in
``odinw_datasets.json`` next to this file. Paths are relative to the data root (``$DATASET``) and all start
with ``odinw/``.
"""

from __future__ import annotations

import ast
import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from maskrcnn_benchmark.data.evaluation.odinw import ODINW_13, ODINW_35, odinw_names

__all__ = ["ODINW_13", "ODINW_35", "OdinwDataset", "load_catalog", "get_dataset", "list_datasets", "resolve_names"]

CATALOG_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "odinw_datasets.json")


@dataclass(frozen=True)
class OdinwDataset:
    """One ODinW data set (one GLIP task yaml).

    Attributes:
        name: yaml file stem, e.g. "Aquarium_Aquarium_Combined.v2-raw-1024.coco".
        root_folder: download archive / first folder under ``odinw/``.
        num_classes: NUM_CLASSES of the yaml (categories + 1 by convention; four upstream yamls differ).
        categories: [{"id", "name", "supercategory"}] (OVERRIDE_CATEGORY of the primary yaml).
        register: split name -> {"img_dir", "ann_file"} (train, val, test[, minival], few-shot splits).
        settings: every other key the yaml sets, dotted -> value (strings exactly as written).
        override_category_string / caption_prompt_string: the exact yaml strings (None if not set).
        odinw_13_overrides: fields whose odinw_13 yaml value differs from the primary one.
        in_odinw_13 / in_odinw_35: list membership.
    """

    name: str
    root_folder: str
    num_classes: int
    categories: tuple[dict[str, Any], ...]
    register: dict[str, dict[str, str]]
    settings: dict[str, Any]
    override_category_string: str | None
    caption_prompt_string: str | None
    caption_prompt: tuple[dict[str, str], ...] | None
    in_odinw_13: bool
    in_odinw_35: bool
    notes: tuple[str, ...] = ()
    odinw_13_overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def test_split(self) -> str:
        """The split the yaml evaluates on (DATASETS.TEST): "val" or "minival"."""
        return ast.literal_eval(self.settings["DATASETS.TEST"])[0]

    def category_names(self, variant: str = "odinw_35") -> list[str]:
        """Class names in id order for the odinw_35 (primary) or odinw_13 yaml."""
        categories = self.categories
        if variant == "odinw_13" and "categories" in self.odinw_13_overrides:
            categories = self.odinw_13_overrides["categories"]
        return [category["name"] for category in sorted(categories, key=lambda c: c["id"])]

    def split(self, name: str) -> dict[str, str]:
        """The registered {"img_dir", "ann_file"} of a split, with an error listing the known splits."""
        if name not in self.register:
            raise KeyError(f"ODinW data set {self.name} has no split {name!r}; known: {sorted(self.register)}")
        return self.register[name]


@lru_cache(maxsize=1)
def load_catalog() -> dict[str, Any]:
    """The raw catalog json (cached)."""
    with open(CATALOG_FILE) as stream:
        return json.load(stream)


def get_dataset(name: str) -> OdinwDataset:
    """Look one data set up by yaml stem (a trailing ".yaml" or a folder prefix is accepted)."""
    key = os.path.basename(name)
    key = key[: -len(".yaml")] if key.endswith(".yaml") else key
    entries = load_catalog()["datasets"]
    if key not in entries:
        raise KeyError(f"unknown ODinW data set {name!r}; known: {', '.join(sorted(entries))}")
    entry = entries[key]
    return OdinwDataset(
        name=key,
        root_folder=entry["root_folder"],
        num_classes=entry["num_classes"],
        categories=tuple(entry["categories"]),
        register=entry["register"],
        settings=entry["settings"],
        override_category_string=entry["override_category_string"],
        caption_prompt_string=entry["caption_prompt_string"],
        caption_prompt=None if entry["caption_prompt"] is None else tuple(entry["caption_prompt"]),
        in_odinw_13=entry["in_odinw_13"],
        in_odinw_35=entry["in_odinw_35"],
        notes=tuple(entry.get("notes", [])),
        odinw_13_overrides=entry.get("odinw_13_overrides", {}),
    )


def list_datasets() -> list[str]:
    """Every data set in the catalog (the 35 of ODinW-35 plus plantdoc_100x100, which GLIP ships but does not list)."""
    return sorted(load_catalog()["datasets"])


def resolve_names(selection: str) -> list[str]:
    """Turn "13", "35", "all" or a comma-separated list of yaml stems into data set names."""
    selection = selection.strip()
    if selection in ("13", "35", "odinw_13", "odinw_35"):
        return list(odinw_names(selection))
    if selection == "all":
        return list_datasets()
    names = [part.strip() for part in selection.split(",") if part.strip()]
    for name in names:
        get_dataset(name)  # raises with the known names
    return names
