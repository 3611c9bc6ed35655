"""Tests for the dataset catalog: data-root search, factory rules, REGISTER entries and path resolution."""

import copy
from pathlib import Path

import pytest

from maskrcnn_benchmark.config import get_cfg
from maskrcnn_benchmark.config.paths_catalog import (
    DatasetCatalog,
    data_search_roots,
    register_datasets_from_cfg,
    registered_datasets,
    try_to_find,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
AQUARIUM = REPO_ROOT / "configs" / "odinw" / "Aquarium_Aquarium_Combined.v2-raw-1024.coco.yaml"


# The built-in catalog as imported: other tests (data loaders built from task configs) register entries such
# as lvis_evaluation_val into the process-wide catalog, so every test here starts from this copy.
BUILT_IN = copy.deepcopy(DatasetCatalog.DATASETS)


@pytest.fixture(autouse=True)
def _restore_catalog(monkeypatch, tmp_path):
    saved = copy.deepcopy(DatasetCatalog.DATASETS)
    DatasetCatalog.DATASETS.clear()
    DatasetCatalog.DATASETS.update(copy.deepcopy(BUILT_IN))
    monkeypatch.delenv("DATASET", raising=False)
    monkeypatch.chdir(tmp_path)  # no stray ./DATASET from the repo
    yield
    DatasetCatalog.DATASETS.clear()
    DatasetCatalog.DATASETS.update(saved)


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}")
    return path


def test_search_roots_order(monkeypatch, tmp_path):
    assert data_search_roots() == [".", "./DATASET", "./OUTPUT", "./data", "./MODEL"]
    monkeypatch.setenv("DATASET", str(tmp_path / "root"))
    assert data_search_roots()[:2] == [".", str(tmp_path / "root")]


def test_try_to_find_env_root_and_missing(monkeypatch, tmp_path):
    root = tmp_path / "elsewhere"
    _touch(root / "coco" / "annotations" / "x.json")
    monkeypatch.setenv("DATASET", str(root))
    found = try_to_find("coco/annotations/x.json")
    assert Path(found).resolve() == (root / "coco" / "annotations" / "x.json").resolve()
    assert Path(try_to_find("coco/annotations/x.json", return_dir=True)).resolve() == root.resolve()
    _touch(tmp_path / "DATASET" / "local.json")
    assert Path(try_to_find("local.json")).resolve() == (tmp_path / "DATASET" / "local.json").resolve()
    with pytest.raises(FileNotFoundError) as info:
        try_to_find("coco/annotations/missing.json")
    message = str(info.value)
    assert "missing.json" in message and str(root) in message and "DATASET" in message
    assert message.count("missing.json") >= 5  # every searched place is listed
    assert try_to_find("") == ""
    with pytest.raises(FileNotFoundError):
        try_to_find(str(tmp_path / "absolute_missing.json"))


@pytest.mark.parametrize(
    "name, factory, arg_names",
    [
        ("coco_grounding_train", "CocoGrounding", {"root", "ann_file", "is_train"}),
        ("coco_2017_val", "COCODataset", {"root", "ann_file"}),
        ("lvis_grounding_train", "CocoGrounding", {"root", "ann_file"}),
        ("lvis_evaluation_val", "LvisDetection", {"root", "ann_file", "is_train"}),
        ("flickr30k_val", "FlickrDataset", {"img_folder", "ann_file", "is_train"}),
        ("refcoco_testA", "RefExpDataset", {"img_folder", "ann_file", "is_train"}),
        ("refcoco+_val", "RefExpDataset", {"img_folder", "ann_file", "is_train"}),
        ("refcocog_test", "RefExpDataset", {"img_folder", "ann_file", "is_train"}),
        ("mixed_train_no_coco", "MixedDataset", {"coco_img_dir", "vg_img_dir", "ann_file"}),
        ("object365_dt_train", "CocoDetectionTSV", {"yaml_file", "is_train"}),
        ("object365_grounding_train", "Objects365Grounding", {"root", "ann_file", "is_train"}),
    ],
)
def test_factories_and_arguments(name, factory, arg_names):
    info = DatasetCatalog.get(name, resolve=False)
    assert info["factory"] == factory
    assert set(info["args"]) == arg_names


def test_upstream_paths():
    assert DatasetCatalog.get("refcocog_test", resolve=False)["args"]["ann_file"] == (
        "mdetr_annotations/finetune_refcocog_test_corrected.json"
    )
    assert DatasetCatalog.get("refcoco_train", resolve=False)["args"]["is_train"] is True
    flickr = DatasetCatalog.get("flickr30k_test", resolve=False)["args"]
    assert flickr["img_folder"] == "flickr30k/flickr30k_images/test"
    mixed = DatasetCatalog.get("mixed_train_no_coco", resolve=False)["args"]
    assert mixed["coco_img_dir"] == "refcoco/train2014" and mixed["vg_img_dir"] == "gqa/images"


def test_resolve_finds_files_under_data_root(monkeypatch, tmp_path):
    root = tmp_path / "data_root"
    _touch(root / "coco" / "annotations" / "instances_val2017.json")
    (root / "coco" / "val2017").mkdir(parents=True)
    monkeypatch.setenv("DATASET", str(root))
    args = DatasetCatalog.get("coco_2017_val")["args"]
    assert Path(args["ann_file"]).is_file() and Path(args["root"]).is_dir()
    with pytest.raises(FileNotFoundError, match="coco_grounding_train"):
        DatasetCatalog.get("coco_grounding_train")


def test_objects365_json_fallback(monkeypatch, tmp_path):
    root = tmp_path / "data_root"
    monkeypatch.setenv("DATASET", str(root))
    with pytest.raises(FileNotFoundError, match="neither the Objects365 TSV files nor a COCO-JSON copy"):
        DatasetCatalog.get("object365_dt_train")
    _touch(root / "Objects365" / "annotations" / "objects365_train.json")
    (root / "Objects365" / "train").mkdir(parents=True)
    info = DatasetCatalog.get("object365_dt_train")
    assert info["factory"] == "Objects365Grounding" and info["args"]["is_train"] is True
    _touch(root / "Objects365" / "objects365_train_vgoiv6.cas2000.yaml")
    assert DatasetCatalog.get("object365_dt_train")["factory"] == "CocoDetectionTSV"


def test_register_from_odinw_task_config_and_suffix(monkeypatch, tmp_path):
    cfg = get_cfg()
    cfg.merge_from_file(str(AQUARIUM))
    assert sorted(register_datasets_from_cfg(cfg)) == ["test", "train", "val"]
    train = DatasetCatalog.get("train_grounding", resolve=False)
    assert train["factory"] == "CocoGrounding"
    assert train["args"]["root"] == "odinw/Aquarium/Aquarium Combined.v2-raw-1024.coco/train"
    val = DatasetCatalog.get("val", resolve=False)
    assert val["factory"] == "COCODataset"
    assert val["args"]["ann_file"].endswith("valid/annotations_without_background.json")
    root = tmp_path / "data"
    _touch(root / "odinw" / "Aquarium" / "Aquarium Combined.v2-raw-1024.coco" / "valid" /
           "annotations_without_background.json")
    assert Path(DatasetCatalog.get("val")["args"]["ann_file"]).is_file()  # ./data is a search root


def test_registered_datasets_are_scoped_to_the_block(caplog):
    lvis = get_cfg()
    lvis.merge_from_file(str(REPO_ROOT / "configs" / "lvis" / "val.yaml"))
    odinw = get_cfg()
    odinw.merge_from_file(str(AQUARIUM))
    with caplog.at_level("INFO", logger="maskrcnn_benchmark.config.paths_catalog"):
        with registered_datasets(lvis.DATASETS.REGISTER) as catalog:
            assert catalog.get("lvis_evaluation_val", resolve=False)["args"]["ann_file"] == \
                "coco/annotations/lvis_od_val.json"
    assert "lvis_evaluation_val: DATASETS.REGISTER replaces the catalog entry" in caplog.text
    # Afterwards the built-in entry is back and the task-only name is gone.
    assert DatasetCatalog.entry("lvis_evaluation_val") == BUILT_IN["lvis_evaluation_val"]
    assert "lvis_evaluation_mini_val" not in DatasetCatalog.DATASETS
    with registered_datasets(odinw.DATASETS.REGISTER, "_grounding"):
        assert DatasetCatalog.get("val_grounding", resolve=False)["factory"] == "CocoGrounding"
        with pytest.raises(RuntimeError):  # an error inside the block still restores the catalog
            with registered_datasets({"val_grounding": {"img_dir": "x", "ann_file": "y.json"}}):
                raise RuntimeError
        assert DatasetCatalog.entry("val_grounding")["img_dir"].startswith("odinw/Aquarium")
    assert DatasetCatalog.DATASETS == BUILT_IN


def test_lvis_task_config_overrides_builtin_entry():
    cfg = get_cfg()
    cfg.merge_from_file(str(REPO_ROOT / "configs" / "lvis" / "val.yaml"))
    register_datasets_from_cfg(cfg)
    info = DatasetCatalog.get("lvis_evaluation_val", resolve=False)
    assert info["factory"] == "LvisDetection"
    assert info["args"] == {"root": "coco", "ann_file": "coco/annotations/lvis_od_val.json"}
    assert DatasetCatalog.get("lvis_evaluation_mini_val", resolve=False)["factory"] == "LvisDetection"


def test_explicit_factory_and_errors():
    DatasetCatalog.set("my_o365", {"img_dir": "a", "ann_file": "b.json", "factory": "Objects365Grounding"})
    assert DatasetCatalog.get("my_o365", resolve=False)["factory"] == "Objects365Grounding"
    with pytest.raises(KeyError, match="coco_2017_val"):
        DatasetCatalog.get("no_such_dataset")
    DatasetCatalog.set("gqa_train", {"img_dir": "a", "ann_file": "b.json"})
    with pytest.raises(ValueError, match="GQA"):
        DatasetCatalog.get("gqa_train", resolve=False)
    DatasetCatalog.set("broken", {"img_dir": "a"})
    with pytest.raises(KeyError, match="ann_file"):
        DatasetCatalog.get("broken", resolve=False)
    with pytest.raises(TypeError):
        DatasetCatalog.set("bad", "path")
