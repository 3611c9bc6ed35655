import json
import subprocess
import sys
from pathlib import Path

import pytest
from eval_testdata import make_coco_gt, make_lvis_gt, noisy_predictions, perfect_predictions

from maskrcnn_benchmark.config import cfg as default_cfg
from maskrcnn_benchmark.data.evaluation import (
    CocoEvaluator,
    FlickrEvaluator,
    LvisEvaluator,
    RefExpEvaluator,
    build_evaluator,
    evaluate,
    evaluator_kind,
)
from maskrcnn_benchmark.data.evaluation.__main__ import main as cli_main
from maskrcnn_benchmark.data.evaluation.odinw import ODINW_13

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("name,kind", [
    ("coco_2017_val", "coco"), ("lvis_evaluation_mini_val", "lvis"), ("flickr30k_test", "flickr"),
    ("refcoco+_testA", "refexp"), ("refcocog_test", "refexp"), ("val", "coco"), ("minival", "coco"),
    ("odinw", "coco"), ("lvis", "lvis"),
])
def test_evaluator_kind_substring_rules(name, kind):
    assert evaluator_kind(name) == kind


class _Dataset:
    def __init__(self, gt):
        self.coco = type("Api", (), {"dataset": gt})()
        self.contiguous_category_id_to_json_id = {i + 1: c["id"] for i, c in enumerate(gt["categories"])}

    def get_img_info(self, idx):
        return self.coco.dataset["images"][idx]


class LvisDetection(_Dataset):
    pass


def test_build_evaluator_follows_config(tmp_path):
    cfg = default_cfg.clone()
    cfg.TEST.COCO_EVAL_BACKEND = "faster"
    coco_dataset = _Dataset(make_coco_gt())
    evaluator = build_evaluator(cfg, coco_dataset, str(tmp_path), dataset_name="val")
    assert isinstance(evaluator, CocoEvaluator) and evaluator.backend == "faster"
    lvis = build_evaluator(cfg, LvisDetection(make_lvis_gt()), None, dataset_name="some_test_set")
    assert isinstance(lvis, LvisEvaluator) and lvis.fixed_ap
    cfg.DATASETS.LVIS_USE_NORMAL_AP = True
    assert not build_evaluator(cfg, LvisDetection(make_lvis_gt()), None, "lvis_evaluation_val").fixed_ap
    assert isinstance(build_evaluator(cfg, coco_dataset, None, "refcoco_val"), RefExpEvaluator)
    cfg.DATASETS.FLICKR_ENTITIES_ROOT = str(tmp_path)
    flickr = build_evaluator(cfg, coco_dataset, None, "flickr30k_val")
    assert isinstance(flickr, FlickrEvaluator) and flickr.subset == "val" and flickr.flickr_root == str(tmp_path)


def test_evaluate_dispatches_to_the_scoring_functions():
    gt = make_coco_gt()
    assert evaluate("coco_2017_val", gt, perfect_predictions(gt))["AP"] == pytest.approx(100.0)
    lvis_gt = make_lvis_gt()
    assert evaluate("lvis", lvis_gt, perfect_predictions(lvis_gt), backend="faster")["APf"] == pytest.approx(100.0)


def test_rescoring_cli_prints_json(tmp_path, capsys):
    gt = make_coco_gt(seed=4)
    predictions = noisy_predictions(gt, seed=5)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "bbox.json").write_text(json.dumps(predictions))
    assert cli_main(["coco", "--gt", str(tmp_path / "gt.json"), "--predictions", str(tmp_path / "bbox.json"),
                     "--backend", "faster", "--output", str(tmp_path / "m.json")]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["AP"] == pytest.approx(evaluate("coco", gt, predictions)["AP"], abs=1e-9)
    assert json.loads((tmp_path / "m.json").read_text())["AP"] == printed["AP"]

    (tmp_path / "odinw.json").write_text(json.dumps({name: 50.0 for name in ODINW_13}))
    assert cli_main(["odinw", "--results", str(tmp_path / "odinw.json")]) == 0
    assert json.loads(capsys.readouterr().out)["average"] == pytest.approx(50.0)


def test_rescoring_cli_runs_as_module(tmp_path):
    gt = make_lvis_gt(seed=2)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "p.json").write_text(json.dumps(perfect_predictions(gt)))
    result = subprocess.run(
        [sys.executable, "-m", "maskrcnn_benchmark.data.evaluation", "lvis", "--gt", str(tmp_path / "gt.json"),
         "--predictions", str(tmp_path / "p.json")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["AP"] == pytest.approx(100.0)
