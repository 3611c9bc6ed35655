import glob
import json
from pathlib import Path

import pytest

from maskrcnn_benchmark.config import cfg as default_cfg
from odinw import get_dataset
from odinw.configs import check_configs, expected_files, task_config_dict

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIGS = REPO_ROOT / "configs"


def test_shipped_yamls_are_the_rendered_catalog():
    assert check_configs(str(CONFIGS)) == []
    assert len(glob.glob(str(CONFIGS / "odinw_13" / "*.yaml"))) == 13
    assert len(glob.glob(str(CONFIGS / "odinw_35" / "*.yaml"))) == 36  # 35 listed + plantdoc_100x100
    listed = json.loads((CONFIGS / "odinw_35" / "_all.json").read_text())
    assert len(listed) == 35 and all((REPO_ROOT / path).is_file() for path in listed)


@pytest.mark.parametrize("path", sorted(glob.glob(str(CONFIGS / "odinw_*" / "*.yaml"))), ids=lambda p: Path(p).name)
def test_yaml_merges_with_the_defaults(path):
    cfg = default_cfg.clone()
    cfg.merge_from_file(path)
    name = Path(path).stem
    dataset = get_dataset(name)
    assert cfg.MODEL.DYHEAD.NUM_CLASSES == dataset.num_classes
    assert tuple(cfg.DATASETS.TEST) == (dataset.test_split,)
    assert cfg.DATASETS.REGISTER[dataset.test_split].ann_file == dataset.split(dataset.test_split)["ann_file"]
    assert cfg.SOLVER.MAX_EPOCH == 12 and cfg.TEST.IMS_PER_BATCH == 8


def test_odinw_13_and_35_variants_differ_where_upstream_does():
    aquarium = get_dataset("Aquarium_Aquarium_Combined.v2-raw-1024.coco")
    assert "CAPTION_PROMPT" in task_config_dict(aquarium, "odinw_35")["DATASETS"]
    assert "CAPTION_PROMPT" not in task_config_dict(aquarium, "odinw_13")["DATASETS"]
    mushrooms = get_dataset("NorthAmericaMushrooms_North_American_Mushrooms.v1-416x416.coco")
    assert "chanterelle" in task_config_dict(mushrooms, "odinw_13")["DATASETS"]["OVERRIDE_CATEGORY"]
    assert "yellow mushroom" in task_config_dict(mushrooms, "odinw_35")["DATASETS"]["OVERRIDE_CATEGORY"]
    with pytest.raises(ValueError, match="not part of ODinW-13"):
        task_config_dict(get_dataset("BCCD_BCCD.v3-raw.coco"), "odinw_13")


def test_check_reports_a_stale_file(tmp_path):
    for relative, text in expected_files().items():
        target = tmp_path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    (tmp_path / "odinw_13" / "pothole.yaml").write_text("DATASETS: {}\n")
    (tmp_path / "odinw_35" / "BCCD_BCCD.v3-raw.coco.yaml").unlink()
    assert sorted(check_configs(str(tmp_path))) == [
        "odinw_13/pothole.yaml (differs)", "odinw_35/BCCD_BCCD.v3-raw.coco.yaml (missing)"]
