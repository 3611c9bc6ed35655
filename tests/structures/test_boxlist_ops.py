"""Tests for box operations: IoU in both pixel conventions, GIoU, concatenation, filtering and NMS."""

import pytest
import torch

from maskrcnn_benchmark.structures.bounding_box import BoxList
from maskrcnn_benchmark.structures.boxlist_ops import (
    box_iou,
    boxlist_iou,
    boxlist_ml_nms,
    boxlist_nms,
    cat_boxlist,
    generalized_box_iou,
    remove_small_boxes,
)


def test_boxlist_iou_hand_computed_both_conventions():
    a = BoxList([[0.0, 0.0, 9.0, 9.0], [0.0, 0.0, 4.0, 4.0]], (20, 20))
    b = BoxList([[5.0, 5.0, 14.0, 14.0], [20.0, 20.0, 25.0, 25.0]], (20, 20))
    plus_one = boxlist_iou(a, b)
    # +1: areas 100 and 100, intersection 5x5 = 25 -> 25 / 175
    torch.testing.assert_close(plus_one[0, 0], torch.tensor(25.0 / 175.0))
    # [0,0,4,4] vs [5,5,14,14] touch nowhere with +1 widths (4 - 5 + 1 = 0)
    assert plus_one[1, 0] == 0 and plus_one[:, 1].abs().sum() == 0
    continuous = boxlist_iou(a, b, plus_one=False)
    # no +1: areas 81 and 81, intersection 4x4 = 16 -> 16 / 146
    torch.testing.assert_close(continuous[0, 0], torch.tensor(16.0 / 146.0))
    torch.testing.assert_close(box_iou(a.bbox, b.bbox), continuous)
    assert plus_one.shape == (2, 2)
    # modes do not matter
    torch.testing.assert_close(boxlist_iou(a.convert("xywh"), b), plus_one)


def test_boxlist_iou_identity_and_size_mismatch():
    a = BoxList([[1.0, 2.0, 8.0, 9.0]], (20, 20))
    torch.testing.assert_close(boxlist_iou(a, a), torch.ones(1, 1))
    with pytest.raises(ValueError, match="same image size"):
        boxlist_iou(a, BoxList([[1.0, 2.0, 8.0, 9.0]], (21, 20)))
    empty = BoxList(torch.zeros(0, 4), (20, 20))
    assert boxlist_iou(empty, a).shape == (0, 1)


def test_generalized_box_iou_hand_computed():
    boxes1 = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0]])
    boxes2 = torch.tensor([[1.0, 1.0, 3.0, 3.0], [2.0, 0.0, 3.0, 1.0]])
    giou = generalized_box_iou(boxes1, boxes2)
    torch.testing.assert_close(giou[0, 0], torch.tensor(1.0 / 7.0 - 2.0 / 9.0))
    torch.testing.assert_close(giou[1, 1], torch.tensor(-1.0 / 3.0))
    torch.testing.assert_close(generalized_box_iou(boxes1, boxes1).diagonal(), torch.ones(2))
    with pytest.raises(ValueError, match=r"boxes2\[0\]"):
        generalized_box_iou(boxes1, torch.tensor([[3.0, 0.0, 1.0, 1.0]]))


def test_cat_boxlist_fields():
    a = BoxList([[0.0, 0.0, 1.0, 1.0]], (10, 10))
    a.add_field("scores", torch.tensor([0.5]))
    a.add_field("tokens_positive", [[[0, 3]]])
    a.add_field("caption", "cat")
    b = BoxList([[2.0, 2.0, 4.0, 4.0], [1.0, 1.0, 3.0, 3.0]], (10, 10))
    b.add_field("scores", torch.tensor([0.7, 0.1]))
    b.add_field("tokens_positive", [[[4, 7]], [[8, 9]]])
    b.add_field("caption", "cat")
    merged = cat_boxlist([a, b])
    assert len(merged) == 3
    assert merged.get_field("scores").tolist() == pytest.approx([0.5, 0.7, 0.1])
    assert merged.get_field("tokens_positive") == [[[0, 3]], [[4, 7]], [[8, 9]]]
    assert merged.get_field("caption") == "cat"
    b.add_field("caption", "dog")
    with pytest.raises(ValueError, match="caption"):
        cat_boxlist([a, b])
    with pytest.raises(ValueError, match="image size"):
        cat_boxlist([a, BoxList(torch.zeros(0, 4), (11, 10))])
    with pytest.raises(ValueError, match="fields"):
        cat_boxlist([a, BoxList(torch.zeros(0, 4), (10, 10))])
    with pytest.raises(ValueError):
        cat_boxlist([])


def test_remove_small_boxes_uses_plus_one_widths():
    boxes = BoxList([[0.0, 0.0, 4.0, 4.0], [0.0, 0.0, 3.0, 9.0], [0.0, 0.0, 9.0, 9.0]], (20, 20))
    boxes.add_field("labels", torch.tensor([1, 2, 3]))
    kept = remove_small_boxes(boxes, 5)  # widths 5, 4, 10
    assert kept.get_field("labels").tolist() == [1, 3]


def test_boxlist_nms_and_ml_nms():
    boxes = BoxList(
        [[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [50.0, 50.0, 60.0, 60.0], [0.0, 0.0, 10.0, 10.0]],
        (100, 100),
    )
    boxes.add_field("scores", torch.tensor([0.9, 0.8, 0.7, 0.6]))
    boxes.add_field("labels", torch.tensor([1, 1, 1, 2]))
    boxes.add_field("caption", "x")
    kept = boxlist_nms(boxes, 0.5)
    assert sorted(kept.get_field("scores").tolist()) == pytest.approx([0.7, 0.9])
    assert kept.get_field("caption") == "x"
    kept_ml = boxlist_ml_nms(boxes, 0.5)
    assert sorted(kept_ml.get_field("scores").tolist()) == pytest.approx([0.6, 0.7, 0.9])
    assert boxlist_nms(boxes, 0.0) is boxes
    assert len(boxlist_nms(boxes, 0.5, max_proposals=1)) == 1
    xywh = boxes.convert("xywh")
    assert boxlist_ml_nms(xywh, 0.5).mode == "xywh"
