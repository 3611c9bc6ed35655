"""Evaluators against the real data set classes on the synthetic copies (interface check, perfect answers)."""

import json

import pytest
import torch

from maskrcnn_benchmark.config import cfg as default_cfg
from maskrcnn_benchmark.data.datasets.coco import COCODataset
from maskrcnn_benchmark.data.datasets.lvis import LvisDetection
from maskrcnn_benchmark.data.datasets.modulated import FlickrDataset, RefExpDataset
from maskrcnn_benchmark.data.evaluation import build_evaluator
from maskrcnn_benchmark.data.synthetic import write_coco, write_flickr, write_lvis, write_refexp
from maskrcnn_benchmark.structures.bounding_box import BoxList


def _boxlist(xyxy, labels, width, height, scale=1.5):
    """Boxes given in original pixels, expressed in a network input ``scale`` times larger."""
    boxes = torch.tensor(xyxy, dtype=torch.float32).reshape(-1, 4) * scale
    boxlist = BoxList(boxes, (round(width * scale), round(height * scale)), mode="xyxy")
    boxlist.add_field("scores", torch.linspace(1.0, 0.5, len(labels)))
    boxlist.add_field("labels", torch.tensor(labels, dtype=torch.int64))
    return boxlist


def _anns_by_image(ann_file):
    with open(ann_file) as stream:
        data = json.load(stream)
    by_image = {}
    for ann in data["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    return by_image


def _xyxy(ann):
    x, y, w, h = ann["bbox"]
    return [x, y, x + w - 1, y + h - 1]  # the toolkit's +1 convention


@pytest.mark.parametrize("backend", ["pycocotools", "faster"])
def test_coco_dataset_perfect_predictions(tmp_path, backend):
    files = write_coco(str(tmp_path), num_images=6)
    dataset = COCODataset(files["ann_files"]["val2017"], files["img_dirs"]["val2017"])
    cfg = default_cfg.clone()
    cfg.TEST.COCO_EVAL_BACKEND = backend
    evaluator = build_evaluator(cfg, dataset, str(tmp_path / "out"), dataset_name="coco_2017_val")
    anns = _anns_by_image(files["ann_files"]["val2017"])
    for idx in range(len(dataset)):
        info = dataset.get_img_info(idx)
        image_anns = anns[info["id"]]
        labels = [dataset.json_category_id_to_contiguous_id[a["category_id"]] for a in image_anns]
        evaluator.update([idx], [_boxlist([_xyxy(a) for a in image_anns], labels, info["width"], info["height"])])
    metrics = evaluator.evaluate()
    assert metrics["AP"] == pytest.approx(100.0)
    assert set(metrics["per_category"]) == set(files["categories"].values())


def test_lvis_dataset_perfect_predictions(tmp_path):
    files = write_lvis(str(tmp_path), num_images=6, num_categories=20)
    split = sorted(files["ann_files"])[-1]
    dataset = LvisDetection(files["ann_files"][split], files.get("img_dir", str(tmp_path)))
    cfg = default_cfg.clone()
    cfg.TEST.LVIS_EVAL_BACKEND = "faster"
    evaluator = build_evaluator(cfg, dataset, None, dataset_name="lvis_evaluation_mini_val")
    anns = _anns_by_image(files["ann_files"][split])
    for idx in range(len(dataset)):
        info = dataset.get_img_info(idx)
        image_anns = anns.get(info["id"], [])
        boxes = [[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in image_anns)]  # LVIS: no +1
        evaluator.update([idx], [_boxlist(boxes, [a["category_id"] for a in image_anns], info["width"],
                                          info["height"])])
    assert evaluator.evaluate()["AP"] == pytest.approx(100.0)


def test_refexp_dataset_perfect_predictions(tmp_path):
    files = write_refexp(str(tmp_path), num_images=4)
    dataset = RefExpDataset(files["img_dir"], files["ann_files"]["refcoco_val"])
    evaluator = build_evaluator(default_cfg.clone(), dataset, None, dataset_name="refcoco_val")
    anns = _anns_by_image(files["ann_files"]["refcoco_val"])
    for idx in range(len(dataset)):
        info = dataset.get_img_info(idx)
        (ann,) = anns[info["id"]]
        x, y, w, h = ann["bbox"]
        wrong = [0, 0, 3, 3]
        evaluator.update([idx], [_boxlist([[x, y, x + w, y + h], wrong], [1, 1], info["width"], info["height"])])
    metrics = evaluator.evaluate()
    assert metrics["refcoco"]["P@1"] == 100.0 and metrics["accuracy_iou"] == 100.0


def test_flickr_dataset_perfect_predictions(tmp_path):
    files = write_flickr(str(tmp_path), num_images=4)
    dataset = FlickrDataset(files["img_dirs"]["test"], files["ann_files"]["test"])
    cfg = default_cfg.clone()
    cfg.DATASETS.FLICKR_ENTITIES_ROOT = files["entities_root"]
    evaluator = build_evaluator(cfg, dataset, str(tmp_path / "out"), dataset_name="flickr30k_test")
    anns = _anns_by_image(files["ann_files"]["test"])
    for idx in range(len(dataset)):
        info = dataset.get_img_info(idx)
        phrases = [spans[0] for spans in info["tokens_positive_eval"]]
        image_anns = anns[info["id"]]
        labels = [phrases.index(a["tokens_positive"][0]) + 1 for a in image_anns]
        evaluator.update([idx], [_boxlist([_xyxy(a) for a in image_anns], labels, info["width"], info["height"])])
    metrics = evaluator.evaluate()
    assert metrics["R@1"] == pytest.approx(100.0) and metrics["num_phrases"] > 0
