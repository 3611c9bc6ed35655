import json

import numpy as np
import pytest
import torch
from eval_testdata import one_image_coco_gt, perfect_predictions

from maskrcnn_benchmark.data.evaluation.coco import (
    CocoEvaluator,
    coco_records_from_arrays,
    coco_result_record,
    evaluate_coco_bbox,
    format_per_category_table,
)
from maskrcnn_benchmark.structures.bounding_box import BoxList

BACKENDS = ("pycocotools", "faster")


@pytest.mark.parametrize("backend", BACKENDS)
def test_perfect_predictions_score_100(coco_gt, backend):
    metrics = evaluate_coco_bbox(coco_gt, perfect_predictions(coco_gt), backend=backend)
    for name in ("AP", "AP50", "AP75", "AR100"):
        assert metrics[name] == pytest.approx(100.0)
    assert all(value == pytest.approx(100.0) for value in metrics["per_category"].values())


@pytest.mark.parametrize("backend", BACKENDS)
def test_hand_computed_ap(backend):
    gt = one_image_coco_gt()
    hit = {"image_id": 1, "category_id": 5, "bbox": [10, 10, 20, 20]}
    miss = {"image_id": 1, "category_id": 5, "bbox": [30, 70, 10, 10]}
    # TP first then FP: precision 1 up to recall 0.5 (51 of the 101 recall points), 0 beyond.
    metrics = evaluate_coco_bbox(gt, [dict(hit, score=0.9), dict(miss, score=0.8)], backend=backend)
    assert metrics["AP"] == pytest.approx(100.0 * 51 / 101)
    assert metrics["AR100"] == pytest.approx(50.0)
    # FP ranked first: precision at recall 0.5 is 1/2.
    metrics = evaluate_coco_bbox(gt, [dict(hit, score=0.7), dict(miss, score=0.8)], backend=backend)
    assert metrics["AP"] == pytest.approx(100.0 * 0.5 * 51 / 101)
    assert metrics["AR1"] == pytest.approx(0.0)


def test_empty_predictions_give_zero(coco_gt):
    for backend in BACKENDS:
        assert evaluate_coco_bbox(coco_gt, [], backend=backend)["AP"] == 0.0


def test_records_use_plus_one_width_and_label_map():
    boxes = np.array([[10.0, 20.0, 29.0, 59.0], [0, 0, 5, 5]])
    records = coco_records_from_arrays(7, boxes, np.array([0.9, 0.1]), np.array([1, 2]), {1: 18})
    assert len(records) == 1  # label 2 has no json id: dropped
    assert records[0] == {"image_id": 7, "category_id": 18, "bbox": [10.0, 20.0, 20.0, 40.0], "score": 0.9}
    no_plus = coco_records_from_arrays(7, boxes[:1], np.array([0.9]), np.array([3]), None, plus_one=False)
    assert no_plus[0]["bbox"] == [10.0, 20.0, 19.0, 39.0] and no_plus[0]["category_id"] == 3


def test_records_with_names_rounding_and_numpy_ids():
    boxes = np.array([[10.12345, 20.0, 29.0, 59.98765]], dtype=np.float32)
    (record,) = coco_records_from_arrays(np.int64(3), boxes, np.array([0.123456789]), np.array([2]), None,
                                         names=["blue circle"], box_digits=3, score_digits=5)
    assert record == {"image_id": 3, "category_id": 2, "bbox": [10.123, 20.0, 19.877, 40.988], "score": 0.12346,
                      "name": "blue circle"}
    assert type(record["image_id"]) is int
    assert coco_result_record(None, np.int32(4), np.array([1.0, 2.0, 3.0, 4.0]), np.float32(0.5)) == {
        "image_id": None, "category_id": 4, "bbox": [1.0, 2.0, 3.0, 4.0], "score": 0.5}


def test_bad_prediction_names_the_record(coco_gt):
    with pytest.raises(ValueError, match="prediction 0 has image_id 999"):
        evaluate_coco_bbox(coco_gt, [{"image_id": 999, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1}])
    with pytest.raises(ValueError, match="unknown COCO evaluation backend"):
        evaluate_coco_bbox(coco_gt, [], backend="nope")


class _Dataset:
    """Minimal stand-in exposing what the evaluator reads from a COCODataset."""

    def __init__(self, gt, scale):
        self.coco_dict = gt
        self.scale = scale
        self.ann_file = None
        categories = sorted(c["id"] for c in gt["categories"])
        self.contiguous_category_id_to_json_id = {i + 1: c for i, c in enumerate(categories)}
        self.json_category_id_to_contiguous_id = {c: i for i, c in self.contiguous_category_id_to_json_id.items()}

    @property
    def coco(self):
        return type("Api", (), {"dataset": self.coco_dict})()

    def get_img_info(self, idx):
        return self.coco_dict["images"][idx]

    def perfect_boxlist(self, idx, categories=None):
        image = self.coco_dict["images"][idx]
        anns = [a for a in self.coco_dict["annotations"] if a["image_id"] == image["id"] and not a["iscrowd"]
                and (categories is None or a["category_id"] in categories)]
        # original xyxy with upstream's +1 convention, then scaled to the resized input
        boxes = torch.tensor([[x, y, x + w - 1, y + h - 1] for x, y, w, h in (a["bbox"] for a in anns)],
                             dtype=torch.float32).reshape(-1, 4) * self.scale
        size = (round(image["width"] * self.scale), round(image["height"] * self.scale))
        boxlist = BoxList(boxes, size, mode="xyxy")
        boxlist.add_field("scores", torch.ones(len(anns)))
        boxlist.add_field("labels", torch.tensor([self.json_category_id_to_contiguous_id[a["category_id"]]
                                                  for a in anns], dtype=torch.int64))
        return boxlist


def test_accumulator_resizes_and_merges_chunks(tmp_path, coco_gt):
    dataset = _Dataset(coco_gt, scale=1.25)
    evaluator = CocoEvaluator.from_dataset(dataset, output_dir=str(tmp_path), backend="faster")
    indices = list(range(len(coco_gt["images"])))
    for start in range(0, len(indices), 8):  # batches of 8; each image in two prompt chunks
        batch = indices[start:start + 8]
        evaluator.update(batch, [dataset.perfect_boxlist(i, categories={1, 3}) for i in batch])
        evaluator.update(batch, [dataset.perfect_boxlist(i, categories={7}) for i in batch])
    metrics = evaluator.evaluate()
    assert metrics["AP"] == pytest.approx(100.0, abs=1e-6)
    written = json.loads((tmp_path / "bbox.json").read_text())
    assert len(written) == len(perfect_predictions(coco_gt))
    assert json.loads((tmp_path / "metrics.json").read_text())["AP"] == pytest.approx(100.0, abs=1e-6)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp_")]
    csv_lines = (tmp_path / "per_category_ap.csv").read_text().splitlines()
    assert csv_lines[0] == "category,AP" and csv_lines[1].startswith("class1,100.0")
    assert "class7" in format_per_category_table(metrics["per_category"])


def test_update_rejects_mismatched_lengths(coco_gt):
    evaluator = CocoEvaluator.from_dataset(_Dataset(coco_gt, 1.0))
    with pytest.raises(ValueError, match="2 image ids but 1 predictions"):
        evaluator.update([0, 1], [_Dataset(coco_gt, 1.0).perfect_boxlist(0)])
