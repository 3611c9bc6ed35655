import ast
import json
from pathlib import Path

import pytest

from maskrcnn_benchmark.data.evaluation.odinw import ODINW_13, ODINW_35
from odinw import get_dataset, list_datasets, load_catalog, resolve_names

REPO_ROOT = Path(__file__).resolve().parents[2]
SPEC = REPO_ROOT / ".." / "shared" / "spec" / "odinw.json"


def test_catalog_lists_match_the_evaluator_lists():
    catalog = load_catalog()
    assert tuple(catalog["odinw_13"]) == ODINW_13
    assert tuple(catalog["odinw_35"]) == ODINW_35
    assert set(ODINW_35) | {"plantdoc_100x100"} == set(list_datasets())


def test_catalog_matches_the_upstream_facts():
    if not SPEC.is_file():
        pytest.skip(f"{SPEC} not available")
    spec = json.loads(SPEC.read_text())
    for name, facts in spec["datasets"].items():
        dataset = get_dataset(name)
        assert dataset.register == facts["register"], name
        assert dataset.settings == facts["settings"], name
        assert list(dataset.categories) == facts["categories"], name
        assert dataset.num_classes == facts["num_classes"], name
        assert dataset.caption_prompt_string == facts["caption_prompt_string"], name
        assert dataset.in_odinw_13 == facts["in_odinw_13"], name


def test_every_dataset_is_consistent():
    for name in list_datasets():
        dataset = get_dataset(name)
        assert ast.literal_eval(dataset.override_category_string) == list(dataset.categories), name
        if dataset.caption_prompt_string is not None:
            assert ast.literal_eval(dataset.caption_prompt_string) == list(dataset.caption_prompt), name
        for split in ("train", "val", "test", dataset.test_split):
            entry = dataset.split(split)
            assert entry["ann_file"].startswith("odinw/") and entry["img_dir"].startswith("odinw/"), name
        assert dataset.settings["MODEL.ATSS.NUM_CLASSES"] == dataset.num_classes


def test_known_upstream_differences_are_kept():
    assert get_dataset("CottontailRabbits").category_names("odinw_13") == ["Cottontail-Rabbit"]
    assert get_dataset("CottontailRabbits").category_names() == ["rabbit"]
    assert get_dataset("pistols_export").num_classes == 297  # upstream's value, not categories + 1
    assert get_dataset("PascalVOC").split("test") == get_dataset("PascalVOC").split("val")
    assert get_dataset("EgoHands_generic").test_split == "minival"
    assert get_dataset("Aquarium_Aquarium_Combined.v2-raw-1024.coco.yaml").caption_prompt[2]["suffix"] == \
        " , which is black and white"


def test_lookup_errors_and_selection():
    with pytest.raises(KeyError, match="unknown ODinW data set 'Nope'"):
        get_dataset("Nope")
    with pytest.raises(KeyError, match="has no split 'train_2_3'"):
        get_dataset("pothole").split("train_2_3")
    assert resolve_names("13") == list(ODINW_13)
    assert resolve_names("pothole, PascalVOC") == ["pothole", "PascalVOC"]
    assert len(resolve_names("all")) == 36
