"""The ODinW benchmark (Object Detection in the Wild): ODinW-13 / ODinW-35 lists, per-data-set facts, task
yaml rendering, a checker for a downloaded copy and few-shot split generation.

    python -m odinw.prepare --root DATASET --which 13      # what is missing in DATASET/odinw
    python -m odinw.fewshot --root DATASET --which 13      # write fewshot_{split}_shot{k}_seed{s}.json files
    python -m odinw.configs --out configs                  # re-render configs/odinw_13 and configs/odinw_35
    python -m maskrcnn_benchmark.data.evaluation odinw --results OUT/eval/<weight>/summary.json --which 13
                                                           # the ODinW-13 average (also finetune_results.json)
"""

from maskrcnn_benchmark.data.evaluation.odinw import ODINW_13, ODINW_35, format_odinw_table, odinw_average

from .catalog import OdinwDataset, get_dataset, list_datasets, load_catalog, resolve_names

__all__ = [
    "ODINW_13",
    "ODINW_35",
    "OdinwDataset",
    "get_dataset",
    "list_datasets",
    "load_catalog",
    "resolve_names",
    "odinw_average",
    "format_odinw_table",
]
