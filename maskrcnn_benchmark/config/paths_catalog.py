"""Dataset catalog: dataset names -> (factory class name, constructor arguments), and data-root resolution.

Names, relative paths and factory rules follow upstream FIBER's ``config/paths_catalog.py`` (upstream-facts.md
6.1, task-configs.md 3), so configs written for upstream find the same files. Relative paths are searched, in
order, under: the working directory, ``$DATASET``, ``./DATASET``, ``./OUTPUT``, ``./data``, ``./MODEL``.

Task configs add names with ``DATASETS.REGISTER`` (``{name: {img_dir, ann_file, ...}}``), e.g. ODinW's
``train``/``val``/``test`` or LVIS ``lvis_evaluation_mini_val``. A registered entry may also carry ``factory`` to
pick the dataset class explicitly. The data loaders see them through :func:`registered_datasets`, which adds a
config's entries only while that config's data sets are built, so one task's ``val`` (or its replacement of a
built-in name such as ``lvis_evaluation_val``) never leaks into the next config built in the same process
(several ``--task_config`` files, fine-tuning over many tasks). :func:`register_datasets_from_cfg` adds them for
the rest of the process (one-config command lines such as ``python -m maskrcnn_benchmark.data.check``).

Factory rules on the (suffixed) dataset name, first match wins: ``"mixed"`` -> MixedDataset, ``"flickr"`` ->
FlickrDataset, ``"refexp"``/``"refcoco"`` -> RefExpDataset, ``"_dt"`` -> CocoDetectionTSV (Objects365 TSV; a
COCO-JSON Objects365 copy is used instead via Objects365Grounding when the TSV files are absent), ``"_grounding"``
-> CocoGrounding, ``"lvis_evaluation"`` -> LvisDetection, anything else -> COCODataset. Upstream families this
project does not implement (``_bg``, VOC, GQA, PhraseCut, captions, pseudo data, OD-TSV) raise a clear error.
Names with the ``_grounding`` suffix (``DATASETS.TRAIN_DATASETNAME_SUFFIX``) reuse the paths of the base name.
"""

import contextlib
import copy
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

__all__ = [
    "DatasetCatalog",
    "data_search_roots",
    "try_to_find",
    "register_datasets_from_cfg",
    "registered_datasets",
    "FACTORY_ARGUMENTS",
]

logger = logging.getLogger(__name__)

DATA_ROOT_ENV = "DATASET"

#: Keys of a catalog entry that hold paths (relative to a data root), per factory, mapped to the constructor
#: argument names of the dataset classes in ``maskrcnn_benchmark.data.datasets``.
FACTORY_ARGUMENTS: dict[str, dict[str, str]] = {
    "COCODataset": {"img_dir": "root", "ann_file": "ann_file"},
    "CocoGrounding": {"img_dir": "root", "ann_file": "ann_file"},
    "LvisDetection": {"img_dir": "root", "ann_file": "ann_file"},
    "Objects365Grounding": {"img_dir": "root", "ann_file": "ann_file"},
    "ModulatedDataset": {"img_folder": "img_folder", "ann_file": "ann_file"},
    "FlickrDataset": {"img_folder": "img_folder", "ann_file": "ann_file"},
    "RefExpDataset": {"img_dir": "img_folder", "ann_file": "ann_file"},
    "MixedDataset": {"coco_img_dir": "coco_img_dir", "vg_img_dir": "vg_img_dir", "ann_file": "ann_file"},
    "CocoDetectionTSV": {"yaml_path": "yaml_file"},
}

# Upstream dataset families that are not part of FIBER and not implemented here (name substring -> family).
_UNSUPPORTED = (
    ("_bg", "background (negative-only) data sets"),
    ("gqa", "GQA grounding data"),
    ("phrasecut", "PhraseCut"),
    ("_caption", "caption TSV data"),
    ("inferencecap", "caption TSV data"),
    ("pseudo_data", "pseudo-labelled data"),
    ("_odtsv", "OD-TSV data"),
)

_SUFFIXES = ("_grounding",)


def data_search_roots() -> list[str]:
    """The folders relative paths are searched under, in order (upstream's order, plus ``$DATASET``)."""
    roots = ["."]
    env_root = os.environ.get(DATA_ROOT_ENV)
    if env_root:
        roots.append(env_root)
    roots += ["./DATASET", "./OUTPUT", "./data", "./MODEL"]
    return roots


def try_to_find(file: str, return_dir: bool = False, search_path: Sequence[str] | None = None) -> str:
    """Locate a file or folder given relative to a data root.

    Args:
        file: absolute path, or a path relative to one of the search roots. Empty strings are returned as is.
        return_dir: return the root folder it was found under instead of the full path.
        search_path: roots to search (default :func:`data_search_roots`).

    Returns:
        The existing path (or its root with ``return_dir``).

    Raises:
        FileNotFoundError: not found; the message lists every place that was tried and how to add a root.
    """
    if not file:
        return file
    if os.path.isabs(file):
        if os.path.exists(file):
            return os.path.dirname(file) if return_dir else file
        raise FileNotFoundError(f"{file} does not exist")
    roots = list(search_path) if search_path is not None else data_search_roots()
    tried = []
    for root in roots:
        candidate = os.path.join(root, file)
        if os.path.exists(candidate):
            return root if return_dir else candidate
        tried.append(os.path.abspath(candidate))
    raise FileNotFoundError(
        f"{file} was not found; looked in:\n  " + "\n  ".join(tried)
        + f"\nPut the data under one of these folders or set ${DATA_ROOT_ENV} to your data root."
    )


class DatasetCatalog:
    """Dataset names known to the toolkit (class-level registry, as upstream's).

    ``DATASETS`` maps a name to its entry: relative paths (``img_dir`` / ``img_folder`` / ``ann_file`` /
    ``coco_img_dir`` / ``vg_img_dir`` / ``yaml_path``), optionally ``is_train`` and ``factory``.
    """

    DATASETS: dict[str, dict[str, Any]] = {
        # ---- COCO detection / grounding
        "coco_grounding_train": {"img_dir": "coco/train2017", "ann_file": "coco/annotations/instances_train2017.json",
                                 "is_train": True},
        "coco_2017_train": {"img_dir": "coco/train2017", "ann_file": "coco/annotations/instances_train2017.json"},
        "coco_2017_val": {"img_dir": "coco/val2017", "ann_file": "coco/annotations/instances_val2017.json"},
        # ---- LVIS (the task yamls re-register lvis_evaluation_val and add lvis_evaluation_mini_val)
        "lvis_grounding_train": {"img_dir": "coco", "ann_file": "coco/annotations/lvis_od_train.json"},
        "lvis_evaluation_val": {"img_dir": "lvis/coco2017", "ann_file": "lvis/lvis_v1_minival_inserted_image_name.json",
                                "is_train": False},
        # ---- MDETR-style grounding
        "mixed_train": {"coco_img_dir": "refcoco/train2014", "vg_img_dir": "gqa/images",
                        "ann_file": "mdetr_annotations/final_mixed_train.json"},
        "mixed_train_no_coco": {"coco_img_dir": "refcoco/train2014", "vg_img_dir": "gqa/images",
                                "ann_file": "mdetr_annotations/final_mixed_train_no_coco.json"},
        "flickr30k_train": {"img_folder": "flickr30k/flickr30k_images/train",
                            "ann_file": "mdetr_annotations/final_flickr_separateGT_train.json", "is_train": True},
        "flickr30k_val": {"img_folder": "flickr30k/flickr30k_images/val",
                          "ann_file": "mdetr_annotations/final_flickr_separateGT_val.json", "is_train": False},
        "flickr30k_test": {"img_folder": "flickr30k/flickr30k_images/test",
                           "ann_file": "mdetr_annotations/final_flickr_separateGT_test.json", "is_train": False},
        "refexp_all_val": {"img_dir": "refcoco/train2014", "ann_file": "mdetr_annotations/final_refexp_val.json",
                           "is_train": False},
        # ---- Objects365: upstream's TSV files, or a COCO-JSON copy (used when the TSV yaml is absent)
        "object365_dt_train": {"yaml_path": "Objects365/objects365_train_vgoiv6.cas2000.yaml",
                               "json_fallback": {"img_dir": "Objects365/train",
                                                 "ann_file": "Objects365/annotations/objects365_train.json"},
                               "is_train": True},
        "object365_grounding_train": {"img_dir": "Objects365/train",
                                      "ann_file": "Objects365/annotations/objects365_train.json",
                                      "factory": "Objects365Grounding", "is_train": True},
    }

    # RefCOCO / RefCOCO+ / RefCOCOg (MDETR annotations; every split reads COCO train2014 images).
    for _dataset, _splits in (("refcoco", ("train", "val", "testA", "testB")),
                              ("refcoco+", ("train", "val", "testA", "testB")),
                              ("refcocog", ("train", "val", "test"))):
        for _split in _splits:
            _file = "test_corrected" if (_dataset, _split) == ("refcocog", "test") else _split
            DATASETS[f"{_dataset}_{_split}"] = {"img_dir": "refcoco/train2014",
                                                "ann_file": f"mdetr_annotations/finetune_{_dataset}_{_file}.json",
                                                "is_train": _split == "train"}
    del _dataset, _splits, _split, _file

    @staticmethod
    def set(name: str, info: Mapping[str, Any]) -> None:
        """Add or replace the entry ``name`` (what ``DATASETS.REGISTER`` does)."""
        if not isinstance(info, Mapping):
            raise TypeError(f"dataset {name!r}: catalog entry must be a mapping of paths, got {type(info).__name__}")
        DatasetCatalog.DATASETS[name] = {k: copy.deepcopy(v) for k, v in info.items()}

    @staticmethod
    def names() -> list[str]:
        """Every catalogued name, sorted."""
        return sorted(DatasetCatalog.DATASETS)

    @staticmethod
    def entry(name: str) -> dict[str, Any]:
        """The raw entry for ``name`` (``_grounding``-suffixed names fall back to their base name).

        Raises:
            KeyError: unknown name; the message lists the known names.
        """
        if name in DatasetCatalog.DATASETS:
            return copy.deepcopy(DatasetCatalog.DATASETS[name])
        for suffix in _SUFFIXES:
            if name.endswith(suffix) and name[: -len(suffix)] in DatasetCatalog.DATASETS:
                return copy.deepcopy(DatasetCatalog.DATASETS[name[: -len(suffix)]])
        raise KeyError(
            f"dataset {name!r} is not in the catalog; known names: {', '.join(DatasetCatalog.names())} "
            "(task configs add names with DATASETS.REGISTER)"
        )

    @staticmethod
    def factory_for(name: str, entry: Mapping[str, Any] | None = None) -> str:
        """The dataset class name for ``name`` by upstream's substring rules (or the entry's ``factory``)."""
        entry = DatasetCatalog.entry(name) if entry is None else entry
        if entry.get("factory"):
            return str(entry["factory"])
        for pattern, family in _UNSUPPORTED:
            if pattern in name:
                raise ValueError(f"dataset {name!r}: {family} ({pattern!r} names) are not supported by this toolkit")
        if "voc" in name and "split" in entry:
            raise ValueError(f"dataset {name!r}: Pascal VOC XML data sets are not supported (use COCO-format json)")
        if "mixed" in name:
            return "MixedDataset"
        if "flickr" in name:
            return "FlickrDataset"
        if "refexp" in name or "refcoco" in name:
            return "RefExpDataset"
        if "_dt" in name:
            return "CocoDetectionTSV"
        if "_grounding" in name:
            return "CocoGrounding"
        if "lvis_evaluation" in name:
            return "LvisDetection"
        return "COCODataset"

    @staticmethod
    def get(name: str, resolve: bool = True) -> dict[str, Any]:
        """Factory and constructor arguments for a dataset name.

        Args:
            name: a catalogued or registered name, possibly with the ``_grounding`` suffix.
            resolve: find every path under the data roots (True) or return the catalog's relative paths.

        Returns:
            ``{"factory": class name in maskrcnn_benchmark.data.datasets, "args": {constructor kwargs}}``; args
            holds the paths (e.g. ``root`` + ``ann_file``, or ``img_folder`` + ``ann_file``) and ``is_train`` when
            the entry fixes it.

        Raises:
            KeyError: unknown name. FileNotFoundError: a path is missing (with ``resolve``), listing where it
            looked. ValueError: an unsupported data set family.
        """
        entry = DatasetCatalog.entry(name)
        factory = DatasetCatalog.factory_for(name, entry)
        if factory == "CocoDetectionTSV" and entry.get("json_fallback"):
            factory, entry = DatasetCatalog._objects365_source(name, entry, resolve)
        if factory not in FACTORY_ARGUMENTS:
            raise ValueError(f"dataset {name!r}: unknown factory {factory!r}; known: {sorted(FACTORY_ARGUMENTS)}")
        args: dict[str, Any] = {}
        for entry_key, arg_name in FACTORY_ARGUMENTS[factory].items():
            value = entry.get(entry_key)
            if value is None and entry_key == "img_dir":
                value = entry.get("img_folder")  # accept either spelling in registered entries
            if value is None and entry_key == "img_folder":
                value = entry.get("img_dir")
            if value is None:
                raise KeyError(f"dataset {name!r}: catalog entry has no {entry_key!r} (entry: {entry})")
            args[arg_name] = _resolve(name, value) if resolve else value
        if "is_train" in entry:
            args["is_train"] = bool(entry["is_train"])
        return {"factory": factory, "args": args}

    @staticmethod
    def _objects365_source(name: str, entry: Mapping[str, Any], resolve: bool):
        """Objects365: the upstream TSV files when present, else the COCO-JSON copy."""
        fallback = dict(entry["json_fallback"])
        if "is_train" in entry:
            fallback["is_train"] = entry["is_train"]
        if not resolve:
            return "CocoDetectionTSV", entry
        try:
            try_to_find(entry["yaml_path"])
            return "CocoDetectionTSV", entry
        except FileNotFoundError as tsv_error:
            try:
                try_to_find(fallback["ann_file"])
            except FileNotFoundError as json_error:
                raise FileNotFoundError(
                    f"dataset {name!r}: neither the Objects365 TSV files nor a COCO-JSON copy were found.\n"
                    f"TSV: {tsv_error}\nCOCO JSON: {json_error}"
                ) from json_error
            logger.info("dataset %s: TSV files absent, using the COCO-JSON copy %s", name, fallback["ann_file"])
            return "Objects365Grounding", fallback


def _resolve(name: str, path: str) -> str:
    try:
        return try_to_find(path)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"dataset {name!r}: {e}") from e


def _register(entries: Mapping[str, Mapping[str, Any]], suffix: str = "") -> list[str]:
    registered = []
    for name, info in entries.items():
        full_name = name + suffix
        old = DatasetCatalog.DATASETS.get(full_name)
        DatasetCatalog.set(full_name, dict(info))
        if old is not None and old != DatasetCatalog.DATASETS[full_name]:
            logger.info("dataset %s: DATASETS.REGISTER replaces the catalog entry %s with %s", full_name, old,
                        DatasetCatalog.DATASETS[full_name])
        registered.append(full_name)
    if registered:
        logger.debug("registered datasets from DATASETS.REGISTER: %s", registered)
    return registered


def register_datasets_from_cfg(cfg: Any) -> list[str]:
    """Add every ``DATASETS.REGISTER`` entry of ``cfg`` to the catalog for the rest of the process.

    Returns:
        The registered names. An entry replaces a catalogued one of the same name (logged when it differs).
    """
    return _register(cfg.DATASETS.REGISTER)


@contextlib.contextmanager
def registered_datasets(entries: Mapping[str, Mapping[str, Any]], suffix: str = "") -> Iterator[type[DatasetCatalog]]:
    """The catalog with ``entries`` (a config's ``DATASETS.REGISTER``) added for the duration of the block.

    Inside the block a registered name wins over a catalogued one of the same name (logged when it differs);
    on exit every touched name is put back as it was (restored, or removed when it was not catalogued), so
    entries of one config never change what the names mean for the next config built in the same process.

    Args:
        entries: ``{name: {img_dir, ann_file, ...}}``.
        suffix: appended to every name (``DATASETS.TRAIN_DATASETNAME_SUFFIX`` / ``TEST_DATASETNAME_SUFFIX``).

    Yields:
        :class:`DatasetCatalog`.
    """
    missing = object()
    saved: dict[str, Any] = {name + suffix: DatasetCatalog.DATASETS.get(name + suffix, missing) for name in entries}
    try:
        _register(entries, suffix)
        yield DatasetCatalog
    finally:
        for name, entry in saved.items():
            if entry is missing:
                DatasetCatalog.DATASETS.pop(name, None)
            else:
                DatasetCatalog.DATASETS[name] = entry
