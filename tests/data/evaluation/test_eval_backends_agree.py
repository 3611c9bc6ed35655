"""The fast back end (the default) against the reference on every COCO and LVIS case of the suite.

COCO box AP: faster-coco-eval vs pycocotools, equal to 1e-9 (every metric and per-category AP). LVIS AP:
faster-coco-eval's LVIS mode vs the lvis package, equal to 1e-4 (every metric). The cases are the ground truths
and predictions the other evaluator tests score (eval_testdata.py), plus the evaluators run on the synthetic
COCO and LVIS data sets through ``build_evaluator``, as the tools use them.
"""

import numpy as np
import pytest
import torch
from eval_testdata import (
    make_coco_gt,
    make_lvis_gt,
    noisy_predictions,
    one_image_coco_gt,
    perfect_predictions,
    single_lvis_gt,
    structured_coco_case,
)

from maskrcnn_benchmark.config import cfg as default_cfg
from maskrcnn_benchmark.data.datasets.coco import COCODataset
from maskrcnn_benchmark.data.datasets.lvis import LvisDetection
from maskrcnn_benchmark.data.evaluation import build_evaluator
from maskrcnn_benchmark.data.evaluation.coco import COCO_METRIC_NAMES, evaluate_coco_bbox
from maskrcnn_benchmark.data.evaluation.lvis import LVIS_METRIC_NAMES, evaluate_lvis
from maskrcnn_benchmark.data.synthetic import write_coco, write_lvis
from maskrcnn_benchmark.structures.bounding_box import BoxList


def _hand_case(first_score, second_score):
    hit = {"image_id": 1, "category_id": 5, "bbox": [10, 10, 20, 20], "score": first_score}
    miss = {"image_id": 1, "category_id": 5, "bbox": [30, 70, 10, 10], "score": second_score}
    return one_image_coco_gt(), [hit, miss]


def _coco_cases():
    coco_gt = make_coco_gt()
    yield "perfect", coco_gt, perfect_predictions(coco_gt)
    yield "empty", coco_gt, []
    for seed in (1, 2):
        gt = make_coco_gt(seed=seed)
        yield f"noisy_seed{seed}", gt, noisy_predictions(gt, seed=seed + 10)
    yield "hand_tp_first", *_hand_case(0.9, 0.8)
    yield "hand_fp_first", *_hand_case(0.7, 0.8)
    yield "structured", *structured_coco_case()


COCO_CASES = list(_coco_cases())


def _assert_equal(reference, faster, names, tolerance):
    for name in names:
        if reference[name] is None:
            assert faster[name] is None, name
        else:
            assert faster[name] == pytest.approx(reference[name], abs=tolerance), name


@pytest.mark.parametrize("name,gt,predictions", COCO_CASES, ids=[c[0] for c in COCO_CASES])
def test_coco_backends_agree(name, gt, predictions):
    reference = evaluate_coco_bbox(gt, predictions, backend="pycocotools")
    faster = evaluate_coco_bbox(gt, predictions, backend="faster")
    assert (reference["backend"], faster["backend"]) == ("pycocotools", "faster")
    _assert_equal(reference, faster, COCO_METRIC_NAMES, 1e-9)
    assert faster["per_category"] == pytest.approx(reference["per_category"], abs=1e-9)


def _lvis_cases():
    lvis_gt = make_lvis_gt()
    yield "perfect", lvis_gt, perfect_predictions(lvis_gt), {}
    for seed, fixed_ap, topk in ((1, True, 10000), (2, True, 15), (3, False, 10000)):
        gt = make_lvis_gt(seed=seed)
        yield f"noisy_seed{seed}", gt, noisy_predictions(gt, seed=seed + 20, per_box=4), {"fixed_ap": fixed_ap,
                                                                                         "topk": topk}
    gt = make_lvis_gt(seed=5, num_images=10)
    yield "topk4", gt, noisy_predictions(gt, seed=6, per_box=6), {"topk": 4}
    boxes = [{"image_id": 1, "category_id": 1, "bbox": [i, 0, 3, 3], "score": 0.9} for i in range(300)]
    boxes.append({"image_id": 1, "category_id": 1, "bbox": [500, 500, 50, 50], "score": 0.1})
    yield "301st_fixed", single_lvis_gt(), boxes, {"fixed_ap": True}
    yield "301st_normal", single_lvis_gt(), boxes, {"fixed_ap": False}


LVIS_CASES = list(_lvis_cases())


@pytest.mark.parametrize("name,gt,predictions,kwargs", LVIS_CASES, ids=[c[0] for c in LVIS_CASES])
def test_lvis_backends_agree(name, gt, predictions, kwargs):
    reference = evaluate_lvis(gt, predictions, backend="lvis", **kwargs)
    faster = evaluate_lvis(gt, predictions, backend="faster", **kwargs)
    _assert_equal(reference, faster, LVIS_METRIC_NAMES, 1e-4)


def _boxlist(xyxy, labels, size, rng):
    boxes = torch.tensor(xyxy, dtype=torch.float32).reshape(-1, 4)
    boxes = boxes + torch.from_numpy(rng.normal(0, 1.5, boxes.shape)).float()  # imperfect boxes
    boxlist = BoxList(boxes, size, mode="xyxy")
    boxlist.add_field("scores", torch.from_numpy(rng.uniform(0.2, 1.0, len(labels))).float())
    boxlist.add_field("labels", torch.tensor(labels, dtype=torch.int64))
    return boxlist


def _run(cfg, dataset, dataset_name, plus_one):
    """Evaluate jittered ground-truth boxes of every image (fixed seed) with the evaluator the config picks."""
    evaluator = build_evaluator(cfg, dataset, None, dataset_name=dataset_name)
    rng = np.random.default_rng(0)
    for idx in range(len(dataset)):
        info = dataset.get_img_info(idx)
        anns = dataset.annotations.anns_by_image[info["id"]]
        xyxy = [[x, y, x + w - plus_one, y + h - plus_one] for x, y, w, h in (a["bbox"] for a in anns)]
        labels = [dataset.json_category_id_to_contiguous_id[a["category_id"]] for a in anns]
        evaluator.update([idx], [_boxlist(xyxy, labels, (info["width"], info["height"]), rng)])
    return evaluator.evaluate()


def test_dataset_evaluators_agree_across_backends(tmp_path):
    coco = write_coco(str(tmp_path / "coco_data"), num_images=6)
    dataset = COCODataset(coco["ann_files"]["val2017"], coco["img_dirs"]["val2017"])
    results = {}
    for backend in ("pycocotools", "faster"):
        cfg = default_cfg.clone()
        cfg.TEST.COCO_EVAL_BACKEND = backend
        results[backend] = _run(cfg, dataset, "coco_2017_val", plus_one=1)
    assert 0 < results["faster"]["AP"] < 100
    _assert_equal(results["pycocotools"], results["faster"], COCO_METRIC_NAMES, 1e-9)

    lvis = write_lvis(str(tmp_path / "lvis_data"), num_images=6, num_categories=20)
    split = sorted(lvis["ann_files"])[-1]
    dataset = LvisDetection(lvis["ann_files"][split], lvis.get("img_dir", str(tmp_path)))
    results = {}
    for backend in ("lvis", "faster"):
        cfg = default_cfg.clone()
        cfg.TEST.LVIS_EVAL_BACKEND = backend
        results[backend] = _run(cfg, dataset, "lvis_evaluation_mini_val", plus_one=0)
    assert 0 < results["faster"]["AP"] < 100
    _assert_equal(results["lvis"], results["faster"], LVIS_METRIC_NAMES, 1e-4)


def test_faster_is_the_default_and_the_reference_stays_selectable():
    cfg = default_cfg.clone()
    assert (cfg.TEST.COCO_EVAL_BACKEND, cfg.TEST.LVIS_EVAL_BACKEND) == ("faster", "faster")
    gt = one_image_coco_gt()
    assert evaluate_coco_bbox(gt, [])["backend"] == "faster"
    assert evaluate_lvis(single_lvis_gt(), [])["backend"] == "faster"
    assert evaluate_lvis(single_lvis_gt(), [], backend="lvis")["backend"] == "lvis"
