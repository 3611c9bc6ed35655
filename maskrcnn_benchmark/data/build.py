"""Data sets and loaders from a config: ``make_data_loader(cfg, is_train, is_distributed, start_iter)``.

Training: the ``DATASETS.TRAIN`` sets (names + ``TRAIN_DATASETNAME_SUFFIX``, looked up in the paths catalog
after ``DATASETS.REGISTER``), each optionally repeated (``*_COPY``), concatenated, sampled by a seeded
:class:`~.samplers.DistributedSampler` (seed from ``SOLVER.SEED`` and ``DATASETS.SHUFFLE_SEED``, reshuffled per
epoch), grouped by aspect ratio, and cut into ``SOLVER.MAX_ITER`` batches of ``IMS_PER_BATCH / world size``
images. Every sample's random augmentation is seeded from (seed, epoch, index), so the batches after a
resume at ``start_iter`` are exactly those of an uninterrupted run, whatever ``NUM_WORKERS`` is.

``SOLVER.MAX_EPOCH > 0`` derives ``MAX_ITER = MAX_EPOCH * len(train set) // IMS_PER_BATCH`` (upstream rule).
Like upstream, the derived value is written to ``cfg.SOLVER.MAX_ITER`` and ``cfg.SOLVER.DATASET_LENGTH``
(a frozen cfg is defrosted for that and frozen again; the change is logged), and it is also available as
``loader.max_iter`` / from :func:`compute_max_iter` for callers that keep their cfg untouched.

Test: one loader per ``DATASETS.TEST`` name, sequential order (with several processes: strided shards, each
image exactly once, no padding duplicates), ``TEST.IMS_PER_BATCH / world size`` images per batch. A batch
only holds images of the same padded size (size buckets, from the annotations' image sizes and the test
resize rule): FIBER has no padding mask, so padding an image to a larger batch mate would change its
detections; with buckets every ``TEST.IMS_PER_BATCH`` gives the detections of one image at a time. Batches
are pinned in page-locked memory when the model runs on CUDA (``DATALOADER.NUM_WORKERS`` worker processes
load them meanwhile).
"""

from __future__ import annotations

import bisect
import logging
import os
from typing import Any

import torch

from . import datasets as D
from .collate_batch import BatchCollator
from .samplers import DistributedSampler, GroupedBatchSampler, IterationBasedBatchSampler
from .transforms import build_transforms

__all__ = [
    "build_dataset",
    "build_datasets",
    "make_data_loader",
    "compute_max_iter",
    "data_seed",
    "copies_for",
    "padded_size_groups",
    "available_cpus",
    "capped_num_workers",
]

logger = logging.getLogger(__name__)

_TOKENIZER_FACTORIES = {
    "CocoGrounding", "Objects365Grounding", "CocoDetectionTSV",
    "ModulatedDataset", "FlickrDataset", "RefExpDataset", "MixedDataset",
}
_DETECTION_FACTORIES = {"COCODataset", "CocoGrounding", "LvisDetection", "Objects365Grounding"}


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, e.g. under taskset / a container's cpuset)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


_CAP_LOGGED: set = set()


def capped_num_workers(requested: int, cpus: int | None = None) -> int:
    """``DATALOADER.NUM_WORKERS`` capped by the CPUs available to the process (logged once per value).

    More workers than CPUs only oversubscribe the machine (torch warns about it); 0 stays 0 (load in the main
    process).
    """
    if requested < 0:
        raise ValueError(f"DATALOADER.NUM_WORKERS must be >= 0, got {requested}")
    cpus = available_cpus() if cpus is None else cpus
    if requested <= cpus:
        return requested
    if (requested, cpus) not in _CAP_LOGGED:
        _CAP_LOGGED.add((requested, cpus))
        logger.info("DATALOADER.NUM_WORKERS %d capped to %d: this process may use %d CPU(s)", requested, cpus, cpus)
    return cpus


def _world() -> tuple:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size(), torch.distributed.get_rank()
    return 1, 0


def data_seed(cfg: Any) -> int:
    """Seed of the training data order and augmentation: ``SOLVER.SEED``, mixed with ``DATASETS.SHUFFLE_SEED``."""
    shuffle_seed = max(int(cfg.DATASETS.SHUFFLE_SEED), 0)
    return int(cfg.SOLVER.SEED) + 1_000_003 * shuffle_seed


def copies_for(cfg: Any, name: str, is_train: bool) -> int:
    """How many times a data set is repeated (upstream's name rules; -1 = no wrapper)."""
    d = cfg.DATASETS
    if name == "flickr30k_train":
        return int(d.FLICKR_COPY)
    if name in ("mixed_train", "mixed_train_no_coco"):
        return int(d.MIXED_COPY)
    # FIBER's data/build.py applies COCO_COPY / LVIS_COPY to these full names (suffix included); GLIP's only to
    # the ODinW 8-copy sets.
    if name in ("COCO_odinw_train_8copy_dt_train", "coco_dt_train", "coco_grounding_train"):
        return int(d.COCO_COPY)
    if name in ("LVIS_odinw_train_8copy_dt_train", "lvisv1_dt_train", "lvis_grounding_train"):
        return int(d.LVIS_COPY)
    if name == "object365_odinw_2copy_dt_train":
        return int(d.OBJECT365_COPY)
    return int(d.GENERAL_COPY if is_train else d.GENERAL_COPY_TEST)


def _tokenizer(cfg: Any, cache: dict[str, Any]) -> Any:
    if "tokenizer" not in cache:
        from ..modeling.language_backbone.tokenizer import build_tokenizer

        cache["tokenizer"] = build_tokenizer(cfg.MODEL.LANGUAGE_BACKBONE.TOKENIZER_TYPE)
    return cache["tokenizer"]


def _caption_prompt(cfg: Any) -> list | None:
    if cfg.DATASETS.USE_CAPTION_PROMPT and cfg.DATASETS.CAPTION_PROMPT:
        return list(cfg.DATASETS.CAPTION_PROMPT)
    return None


def _factory_args(cfg: Any, factory: str, is_train: bool, tokenizer_cache: dict[str, Any]) -> dict[str, Any]:
    """Constructor keywords the config decides (paths come from the catalog)."""
    d = cfg.DATASETS
    args: dict[str, Any] = {}
    if factory in _DETECTION_FACTORIES:
        args["remove_images_without_annotations"] = is_train
        if d.USE_OVERRIDE_CATEGORY and d.OVERRIDE_CATEGORY:
            args["override_category"] = list(d.OVERRIDE_CATEGORY)
        if is_train and d.FEW_SHOT > 0:
            args["few_shot"] = int(d.FEW_SHOT)
            args["shuffle_seed"] = int(d.SHUFFLE_SEED)
            args["few_shot_subset"] = str(d.FEW_SHOT_SUBSET)
        if is_train:
            args["ignore_crowd"] = not d.USE_CROWD
            args["max_box"] = int(d.MAX_BOX)
    if factory in _TOKENIZER_FACTORIES:
        args["tokenizer"] = _tokenizer(cfg, tokenizer_cache)
        args["max_query_len"] = int(cfg.MODEL.LANGUAGE_BACKBONE.MAX_QUERY_LEN)
    if factory in ("CocoGrounding", "Objects365Grounding", "CocoDetectionTSV"):
        args.update(
            separation_tokens=d.SEPARATION_TOKENS,
            disable_shuffle=bool(d.DISABLE_SHUFFLE),
            add_detection_prompt=bool(d.ADD_DET_PROMPT),
            caption_prompt=_caption_prompt(cfg),
            random_sample_negative=int(d.RANDOM_SAMPLE_NEG),
            max_num_labels=int(cfg.TEST.MDETR_STYLE_AGGREGATE_CLASS_NUM),
        )
    if factory == "CocoGrounding":
        args["special_safeguard_for_coco_grounding"] = bool(d.SPECIAL_SAFEGUARD_FOR_COCO_GROUNDING)
    if factory in ("Objects365Grounding", "CocoDetectionTSV"):
        args["control_probabilities"] = tuple(d.CONTROL_PROB)
    if factory in ("ModulatedDataset", "FlickrDataset", "RefExpDataset", "MixedDataset"):
        args["is_train"] = is_train
        args["disable_clip_to_image"] = bool(d.DISABLE_CLIP_TO_IMAGE)
    return args


def _empty_dataset_message(name: str, factory: str, args: dict[str, Any], is_train: bool) -> str:
    files = [str(args[key]) for key in ("ann_file", "yaml_file") if args.get(key)]
    where = f" ({', '.join(files)})" if files else ""
    usable = " with a usable box (training keeps images that have a box larger than 1 pixel)" if is_train else ""
    purpose = "train on" if is_train else "evaluate"
    return f"data set {name!r} [{factory}]{where} has no images{usable}: nothing to {purpose}"


def build_dataset(
    cfg: Any, name: str, is_train: bool, transforms: Any = None, tokenizer_cache: dict[str, Any] | None = None
) -> Any:
    """One data set by catalog name (the suffix is added here), repeated per ``*_COPY``.

    Args:
        cfg: config.
        name: name from DATASETS.TRAIN / TEST (without suffix).
        is_train: training or test options.
        transforms: image transforms (default: :func:`build_transforms`).
        tokenizer_cache: dict shared between calls so the tokenizer is loaded once.

    Returns:
        The data set (maybe a :class:`~.datasets.RepeatedDataset`).

    Raises:
        KeyError / FileNotFoundError / ValueError: unknown name, missing files, unsupported family, or a data
            set without samples (named with its annotation file).
    """
    from ..config.paths_catalog import registered_datasets

    suffix = cfg.DATASETS.TRAIN_DATASETNAME_SUFFIX if is_train else cfg.DATASETS.TEST_DATASETNAME_SUFFIX
    full_name = name + suffix
    # This config's DATASETS.REGISTER entries are visible only while its data set is looked up, so they never
    # change the catalog for the next config built in this process.
    with registered_datasets(cfg.DATASETS.REGISTER, suffix) as catalog:
        spec = catalog.get(full_name)
    factory = spec["factory"]
    cls = getattr(D, factory, None)
    if cls is None:
        raise ValueError(f"dataset {full_name!r}: no dataset class {factory!r} in maskrcnn_benchmark.data.datasets")
    args = dict(spec["args"])
    args.pop("is_train", None)
    args.update(_factory_args(cfg, factory, is_train, tokenizer_cache if tokenizer_cache is not None else {}))
    if factory in _DETECTION_FACTORIES:
        args["is_train"] = is_train
    args["transforms"] = transforms if transforms is not None else build_transforms(cfg, is_train)
    dataset = cls(**args)
    if len(dataset) == 0:
        raise ValueError(_empty_dataset_message(full_name, factory, spec["args"], is_train))
    copies = copies_for(cfg, full_name, is_train)
    if copies > 1:
        dataset = D.RepeatedDataset(dataset, copies)
    logger.info("dataset %s (%s): %d samples%s", full_name, factory, len(dataset),
                f" ({copies} copies)" if copies > 1 else "")
    return dataset


def build_datasets(cfg: Any, is_train: bool) -> list[Any]:
    """The data sets of DATASETS.TRAIN (one concatenated set) or DATASETS.TEST (one per name)."""
    names = list(cfg.DATASETS.TRAIN if is_train else cfg.DATASETS.TEST)
    if not names:
        key = "DATASETS.TRAIN" if is_train else "DATASETS.TEST"
        raise ValueError(f"{key} is empty: name at least one data set (paths catalog or DATASETS.REGISTER)")
    transforms = build_transforms(cfg, is_train)
    cache: dict[str, Any] = {}
    datasets = [build_dataset(cfg, n, is_train, transforms, cache) for n in names]
    if is_train and len(datasets) > 1:
        return [D.ConcatDataset(datasets)]
    return datasets


def compute_max_iter(cfg: Any, dataset_length: int) -> int:
    """``SOLVER.MAX_EPOCH * dataset_length // SOLVER.IMS_PER_BATCH`` when MAX_EPOCH > 0, else MAX_ITER."""
    if cfg.SOLVER.MAX_EPOCH > 0:
        return int(cfg.SOLVER.MAX_EPOCH * dataset_length // cfg.SOLVER.IMS_PER_BATCH)
    return int(cfg.SOLVER.MAX_ITER)


def _write_derived(cfg: Any, max_iter: int, dataset_length: int) -> None:
    if cfg.SOLVER.MAX_ITER == max_iter and cfg.SOLVER.DATASET_LENGTH == dataset_length:
        return
    frozen = cfg.is_frozen()
    if frozen:
        cfg.defrost()
    cfg.SOLVER.MAX_ITER = max_iter
    cfg.SOLVER.DATASET_LENGTH = dataset_length
    if frozen:
        cfg.freeze()
    logger.info("SOLVER.MAX_EPOCH=%s over %d samples -> SOLVER.MAX_ITER=%d (written to the config)",
                cfg.SOLVER.MAX_EPOCH, dataset_length, max_iter)


def _group_ids(dataset: Any) -> list[int]:
    ids = []
    for i in range(len(dataset)):
        info = dataset.get_img_info(i)
        # two groups: h/w < 1 and h/w >= 1 (square images join the portrait group), as upstream
        ids.append(bisect.bisect_right([1], float(info["height"]) / float(info["width"])))
    return ids


def padded_size_groups(cfg: Any, dataset: Any) -> list[int] | None:
    """One group id per image: images in a group have the same padded size after the test transforms.

    The size comes from the annotation's "height"/"width", ``INPUT.MIN_SIZE_TEST`` / ``MAX_SIZE_TEST`` (the
    resize rule of ``data/transforms``) and ``DATALOADER.SIZE_DIVISIBILITY``. Returns None when the data set
    gives no image sizes or the test resize is random (several ``MIN_SIZE_TEST`` values).
    """
    from .transforms.transforms import resized_size

    min_size = cfg.INPUT.MIN_SIZE_TEST
    if isinstance(min_size, (list, tuple)):
        if len(set(min_size)) != 1:
            return None
        min_size = min_size[0]
    max_size = int(cfg.INPUT.MAX_SIZE_TEST) if cfg.INPUT.MAX_SIZE_TEST and cfg.INPUT.MAX_SIZE_TEST > 0 else None
    divisor = int(cfg.DATALOADER.SIZE_DIVISIBILITY)
    if not hasattr(dataset, "get_img_info"):
        return None
    keys: dict[tuple[int, int], int] = {}
    groups = []
    for index in range(len(dataset)):
        info = dataset.get_img_info(index)
        if "height" not in info or "width" not in info:
            return None
        height, width = resized_size(int(info["width"]), int(info["height"]), int(min_size), max_size)
        if divisor > 0:
            height, width = -(-height // divisor) * divisor, -(-width // divisor) * divisor
        groups.append(keys.setdefault((height, width), len(keys)))
    return groups


def _test_batch_sampler(cfg: Any, dataset: Any, sampler: Any, per_gpu: int) -> Any:
    if per_gpu == 1:
        return torch.utils.data.BatchSampler(sampler, 1, drop_last=False)
    groups = padded_size_groups(cfg, dataset)
    if groups is None:
        logger.warning("%s gives no image sizes (or the test resize is random): batches of %d images are padded to "
                       "their largest image, which changes detections slightly; TEST.IMS_PER_BATCH 1 avoids it",
                       type(dataset).__name__, per_gpu)
        return torch.utils.data.BatchSampler(sampler, per_gpu, drop_last=False)
    logger.info("test batches of up to %d images of the same padded size (%d sizes)", per_gpu, max(groups) + 1)
    return GroupedBatchSampler(sampler, groups, per_gpu, drop_uneven=False)


def _per_process(total: int, world: int, key: str) -> int:
    if total % world:
        raise ValueError(f"{key} ({total}) must be divisible by the number of processes ({world})")
    return total // world


def make_data_loader(
    cfg: Any,
    is_train: bool = True,
    is_distributed: bool = False,
    start_iter: int = 0,
    num_replicas: int | None = None,
    rank: int | None = None,
) -> Any:
    """Build the training loader (one DataLoader) or the test loaders (a list, one per DATASETS.TEST name).

    Each batch is ``(images: ImageList, targets: tuple[BoxList], img_ids: tuple[int], positive_map,
    positive_map_eval)`` (see :class:`BatchCollator`).

    Args:
        cfg: config (SOLVER.MAX_ITER may be derived, see the module docstring).
        is_train: training or test.
        is_distributed: shard across the processes of the default process group.
        start_iter: first training iteration (resume); the loader then yields batches start_iter..MAX_ITER-1.
        num_replicas, rank: override the world size / rank.

    Returns:
        Training: a DataLoader with extra attributes ``max_iter``, ``dataset_length``, ``iterations_per_epoch``.
        Test: a list of DataLoaders.
    """
    world, this_rank = _world() if is_distributed else (1, 0)
    world = num_replicas if num_replicas is not None else world
    this_rank = rank if rank is not None else this_rank
    if is_train:
        per_gpu = _per_process(int(cfg.SOLVER.IMS_PER_BATCH), world, "SOLVER.IMS_PER_BATCH")
    else:
        per_gpu = _per_process(int(cfg.TEST.IMS_PER_BATCH), world, "TEST.IMS_PER_BATCH")
    datasets = build_datasets(cfg, is_train)
    collator = BatchCollator(cfg.DATALOADER.SIZE_DIVISIBILITY)
    num_workers = capped_num_workers(int(cfg.DATALOADER.NUM_WORKERS))
    if num_workers > 0:
        # the datasets tokenize in forked workers; HF tokenizers would otherwise warn and disable themselves
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not is_train:
        loaders = []
        pin = str(cfg.MODEL.DEVICE).startswith("cuda") and torch.cuda.is_available()
        for dataset in datasets:
            sampler = (DistributedSampler(dataset, world, this_rank, shuffle=False, pad=False) if world > 1
                       else torch.utils.data.SequentialSampler(dataset))
            batch_sampler = _test_batch_sampler(cfg, dataset, sampler, per_gpu)
            loaders.append(torch.utils.data.DataLoader(dataset, batch_sampler=batch_sampler, num_workers=num_workers,
                                                       collate_fn=collator, pin_memory=pin))
        return loaders

    dataset = datasets[0]
    max_iter = compute_max_iter(cfg, len(dataset))
    if cfg.SOLVER.MAX_EPOCH > 0:
        _write_derived(cfg, max_iter, len(dataset))
    seed = data_seed(cfg)
    sampler = DistributedSampler(dataset, world, this_rank, shuffle=True, seed=seed)
    if cfg.DATALOADER.ASPECT_RATIO_GROUPING:
        batch_sampler = GroupedBatchSampler(sampler, _group_ids(dataset), per_gpu, drop_uneven=True)
    else:
        batch_sampler = torch.utils.data.BatchSampler(sampler, per_gpu, drop_last=True)
    batch_sampler = IterationBasedBatchSampler(batch_sampler, max_iter, start_iter, seed_samples=seed)
    loader = torch.utils.data.DataLoader(D.SeededDataset(dataset), batch_sampler=batch_sampler,
                                         num_workers=num_workers, collate_fn=collator)
    loader.max_iter = max_iter
    loader.dataset_length = len(dataset)
    loader.iterations_per_epoch = max(1, len(dataset) // int(cfg.SOLVER.IMS_PER_BATCH))
    return loader
