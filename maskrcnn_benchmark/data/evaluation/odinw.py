"""ODinW: per-data-set COCO AP and the ODinW-13 / ODinW-35 averages.

Each ODinW data set is scored with COCO box AP (:mod:`.coco`, the same protocol as COCO val2017). The number
papers report is the plain mean of the per-data-set AP over a fixed list (upstream-facts.md section 7):
13 data sets (GLIP ``configs/odinw_13``) or 35 (GLIP ``configs/odinw_35/_all.json``). An average over fewer
data sets is a different number, so :func:`odinw_average` refuses to produce one unless asked, and then
labels it as partial and names what is missing.

Data set keys are GLIP's yaml file stems (e.g. ``Aquarium_Aquarium_Combined.v2-raw-1024.coco``); a result
keyed by a task yaml path or a path ending in ``.yaml`` is matched by its stem.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

__all__ = ["ODINW_13", "ODINW_35", "odinw_names", "odinw_average", "format_odinw_table", "collect_odinw_results"]

ODINW_13 = (
    "AerialMaritimeDrone_large",
    "Aquarium_Aquarium_Combined.v2-raw-1024.coco",
    "CottontailRabbits",
    "EgoHands_generic",
    "NorthAmericaMushrooms_North_American_Mushrooms.v1-416x416.coco",
    "Packages_Raw",
    "PascalVOC",
    "Raccoon_Raccoon.v2-raw.coco",
    "ShellfishOpenImages_raw",
    "VehiclesOpenImages_416x416",
    "pistols_export",
    "pothole",
    "thermalDogsAndPeople",
)

# Order of GLIP configs/odinw_35/_all.json.
ODINW_35 = (
    "AerialMaritimeDrone_large",
    "AerialMaritimeDrone_tiled",
    "AmericanSignLanguageLetters_American_Sign_Language_Letters.v1-v1.coco",
    "Aquarium_Aquarium_Combined.v2-raw-1024.coco",
    "BCCD_BCCD.v3-raw.coco",
    "ChessPieces_Chess_Pieces.v23-raw.coco",
    "CottontailRabbits",
    "DroneControl_Drone_Control.v3-raw.coco",
    "EgoHands_generic",
    "EgoHands_specific",
    "HardHatWorkers_raw",
    "MaskWearing_raw",
    "MountainDewCommercial",
    "NorthAmericaMushrooms_North_American_Mushrooms.v1-416x416.coco",
    "OxfordPets_by-breed",
    "OxfordPets_by-species",
    "PKLot_640",
    "Packages_Raw",
    "PascalVOC",
    "Raccoon_Raccoon.v2-raw.coco",
    "ShellfishOpenImages_raw",
    "ThermalCheetah",
    "UnoCards_raw",
    "VehiclesOpenImages_416x416",
    "WildfireSmoke",
    "boggleBoards_416x416AutoOrient_export_",
    "brackishUnderwater_960x540",
    "dice_mediumColor_export",
    "openPoetryVision_512x512",
    "pistols_export",
    "plantdoc_416x416",
    "pothole",
    "selfdrivingCar_fixedLarge_export_",
    "thermalDogsAndPeople",
    "websiteScreenshots",
)


def odinw_names(which: int | str) -> tuple:
    """The data set list for ``which`` in {13, 35} (ints or strings like "odinw_13")."""
    key = str(which).lower().replace("odinw", "").strip("_- ")
    if key == "13":
        return ODINW_13
    if key == "35":
        return ODINW_35
    raise ValueError(f"unknown ODinW list {which!r}; use 13 or 35")


def _dataset_key(name: str) -> str:
    base = os.path.basename(str(name))
    return base[: -len(".yaml")] if base.endswith(".yaml") else base


def _ap_of(value: Any, name: str) -> float:
    if isinstance(value, Mapping):
        if "AP" not in value:
            raise ValueError(f"result for {name} has no 'AP' (keys: {sorted(value)})")
        value = value["AP"]
    if value is None:
        raise ValueError(f"result for {name} has AP None (no ground truth scored)")
    return float(value)


def collect_odinw_results(results: Mapping[str, Any]) -> dict[str, Any]:
    """Per-task AP from what the tools write, keyed by task (yaml path or stem).

    Accepts ``tools/test_grounding_net.py``'s ``summary.json`` (``{"tasks": {task: {data set: metrics}}}``;
    a task's "test" result is used when it has one, else its only result), ``tools/finetune.py``'s
    ``finetune_results.json`` (``{"task_means": {task: AP}}``; tasks without a value are left out, so they
    count as missing), or a plain ``{task: AP or metrics}`` mapping (returned unchanged).
    """
    if "task_means" in results:
        return {task: value for task, value in results["task_means"].items() if value is not None}
    if "tasks" not in results:
        return dict(results)
    collected = {}
    for task, datasets in results["tasks"].items():
        if "test" in datasets:
            collected[task] = datasets["test"]
        elif len(datasets) == 1:
            collected[task] = next(iter(datasets.values()))
        else:
            raise ValueError(f"task {task} has results for {sorted(datasets)}; cannot tell which one to average")
    return collected


def odinw_average(
    results: Mapping[str, Any],
    which: int | str = 13,
    allow_missing: bool = False,
) -> dict[str, Any]:
    """Average per-data-set AP over the ODinW-13 or ODinW-35 list.

    Args:
        results: data set key (yaml stem or task-yaml path) -> AP (percent) or a metrics dict with "AP".
            Keys outside the list are ignored (and reported under "ignored").
        which: 13 or 35.
        allow_missing: if False (default) a missing data set raises ValueError naming every missing one;
            if True the average over the present ones is returned as "partial_average" and "average" is None.

    Returns:
        ``{"which", "average", "num_datasets", "per_dataset" (list order), "missing", "ignored"}`` and, when
        data sets are missing and allowed, ``"partial_average"``.
    """
    names = odinw_names(which)
    by_key = {}
    for raw_key, value in results.items():
        by_key[_dataset_key(raw_key)] = (raw_key, value)
    per_dataset = {name: _ap_of(by_key[name][1], name) for name in names if name in by_key}
    missing = [name for name in names if name not in by_key]
    ignored = sorted(key for key in by_key if key not in names)
    report: dict[str, Any] = {
        "which": f"odinw_{len(names)}",
        "per_dataset": per_dataset,
        "missing": missing,
        "ignored": ignored,
        "num_datasets": len(per_dataset),
    }
    if missing:
        if not allow_missing:
            raise ValueError(
                f"ODinW-{len(names)} average needs all {len(names)} data sets; "
                f"missing {len(missing)}: {', '.join(missing)}"
            )
        report["average"] = None
        report["partial_average"] = sum(per_dataset.values()) / len(per_dataset) if per_dataset else None
        return report
    report["average"] = sum(per_dataset.values()) / len(per_dataset)
    return report


def format_odinw_table(report: Mapping[str, Any]) -> str:
    """A readable "data set | AP" table ending with the average line (or the partial one, labelled)."""
    per_dataset: dict[str, float] = report["per_dataset"]
    rows: list[str] = []
    names = list(per_dataset) + list(report.get("missing", []))
    width = max([len("data set")] + [len(name) for name in names])
    rows.append(f"{'data set':<{width}} | AP")
    rows.append(f"{'-' * width}-|------")
    for name in names:
        value: float | None = per_dataset.get(name)
        rows.append(f"{name:<{width}} | {'MISSING' if value is None else f'{value:.1f}'}")
    if report.get("average") is not None:
        rows.append(f"{'average (' + report['which'] + ')':<{width}} | {report['average']:.1f}")
    else:
        partial = report.get("partial_average")
        label = f"partial average over {report['num_datasets']} (NOT {report['which']})"
        rows.append(f"{label:<{width}} | {'n/a' if partial is None else f'{partial:.1f}'}")
    return "\n".join(rows)
