import numpy as np
import pytest
import torch
import torchvision

from maskrcnn_benchmark.data.evaluation.refexp import (
    RefExpEvaluator,
    box_iou_xyxy,
    evaluate_refexp,
    generalized_box_iou_xyxy,
)
from maskrcnn_benchmark.structures.bounding_box import BoxList


def _gt(boxes_xywh, names):
    images = [{"id": i + 1, "width": 100, "height": 100, "dataset_name": name} for i, name in enumerate(names)]
    annotations = [{"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": box, "area": box[2] * box[3]}
                   for i, box in enumerate(boxes_xywh)]
    return {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "object"}]}


def test_iou_and_giou_match_torchvision():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 50, (7, 2))
    b = rng.uniform(0, 50, (5, 2))
    boxes1 = np.concatenate([a, a + rng.uniform(1, 40, (7, 2))], axis=1)
    boxes2 = np.concatenate([b, b + rng.uniform(1, 40, (5, 2))], axis=1)
    expected_iou = torchvision.ops.box_iou(torch.tensor(boxes1), torch.tensor(boxes2)).numpy()
    expected_giou = torchvision.ops.generalized_box_iou(torch.tensor(boxes1), torch.tensor(boxes2)).numpy()
    np.testing.assert_allclose(box_iou_xyxy(boxes1, boxes2), expected_iou, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(generalized_box_iou_xyxy(boxes1, boxes2), expected_giou, rtol=1e-10, atol=1e-12)


def test_perfect_predictions_score_100():
    gt = _gt([[10, 10, 30, 20], [0, 0, 50, 50], [5, 5, 5, 5]], ["refcoco", "refcoco", "refcoco+"])
    predictions = [{"image_id": i + 1, "boxes": [[x, y, x + w, y + h]], "scores": [0.5]}
                   for i, (x, y, w, h) in enumerate(a["bbox"] for a in gt["annotations"])]
    metrics = evaluate_refexp(gt, predictions)
    assert metrics["accuracy"] == 100.0 and metrics["accuracy_iou"] == 100.0
    assert metrics["refcoco"]["P@1"] == 100.0 and metrics["refcoco"]["num_expressions"] == 2
    assert metrics["refcoco+"]["P@10_iou"] == 100.0


def test_giou_and_iou_differ_on_a_shifted_box():
    gt = _gt([[0, 0, 10, 10]], ["refcoco"])
    shifted = [1.7, 1.7, 11.7, 11.7]
    # by hand: intersection 8.3^2, union 200 - 8.3^2, hull 11.7^2
    inter, hull = 8.3 ** 2, 11.7 ** 2
    iou = inter / (200 - inter)
    giou = iou - (hull - (200 - inter)) / hull
    assert iou > 0.5 > giou
    metrics = evaluate_refexp(gt, [{"image_id": 1, "boxes": [shifted], "scores": [1.0]}])
    assert metrics["refcoco"]["P@1"] == 0.0  # published protocol: GIoU >= 0.5
    assert metrics["refcoco"]["P@1_iou"] == 100.0


def test_topk_uses_score_order_and_missing_prediction_raises():
    gt = _gt([[0, 0, 10, 10], [20, 20, 10, 10]], ["refcocog", "refcocog"])
    wrong = [60, 60, 70, 70]
    predictions = [
        # correct box has the 3rd best score -> hit at 5 and 10 only
        {"image_id": 1, "boxes": [wrong, [0, 0, 10, 10], wrong, wrong], "scores": [0.9, 0.7, 0.8, 0.95]},
        {"image_id": 2, "boxes": [[20, 20, 30, 30]] + [wrong] * 6, "scores": [0.01] + [0.5] * 6},
    ]
    metrics = evaluate_refexp(gt, predictions)["refcocog"]
    assert metrics["P@1"] == 0.0 and metrics["P@5"] == 50.0 and metrics["P@10"] == 100.0
    with pytest.raises(ValueError, match=r"no prediction for 1 of 2 expressions \(image ids \[2\]"):
        evaluate_refexp(gt, predictions[:1])


def test_two_ground_truth_boxes_are_rejected():
    gt = _gt([[0, 0, 10, 10], [0, 0, 5, 5]], ["refcoco", "refcoco"])
    gt["annotations"][1]["image_id"] = 1
    with pytest.raises(ValueError, match="image 1 has 2 annotations"):
        evaluate_refexp(gt, [])


def test_accumulator_resizes_and_keeps_top10(tmp_path):
    gt = _gt([[10, 10, 30, 20]], ["refcoco"])
    images = {0: gt["images"][0]}
    evaluator = RefExpEvaluator(gt, images.__getitem__, output_dir=str(tmp_path))
    # network input is twice the original size; correct box scaled accordingly, 15 worse boxes around it
    boxes = [[20.0, 20.0, 80.0, 60.0]] + [[150.0, 150.0, 190.0, 190.0]] * 15
    scores = [0.3] + [0.2] * 15
    boxlist = BoxList(torch.tensor(boxes), (200, 200), mode="xyxy")
    boxlist.add_field("scores", torch.tensor(scores))
    boxlist.add_field("labels", torch.ones(16, dtype=torch.int64))
    evaluator.update([0], [boxlist])
    metrics = evaluator.evaluate()
    assert metrics["accuracy"] == 100.0
    written = evaluator._predictions_json()
    assert len(written[0]["boxes"]) == 10 and written[0]["boxes"][0] == pytest.approx([10, 10, 40, 30])
    assert (tmp_path / "predictions.json").is_file()
