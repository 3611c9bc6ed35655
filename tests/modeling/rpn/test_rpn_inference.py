"""Post-processing: mean-over-tokens scores, thresholds, top-n, sqrt(cls x ctr), clipping, class-aware NMS and
the detections-per-image rule, on hand-computed cases."""

import math

import pytest
import torch

from maskrcnn_benchmark.modeling.rpn.anchor_generator import AnchorGenerator
from maskrcnn_benchmark.modeling.rpn.inference import ATSSPostProcessor, aggregate_token_scores, make_label_tokens
from maskrcnn_benchmark.structures.bounding_box import BoxList


def _logit(p):
    return math.log(p / (1 - p))


def test_mean_over_tokens_hand_values():
    probs = torch.tensor([[[0.9, 0.5, 0.1, 0.3]]])
    tokens = make_label_tokens({3: [2], 1: [0, 1], 7: [0, 1, 3]}, num_tokens=4, num_slots=80)
    assert tokens.labels.tolist() == [1, 3, 7]
    scores = aggregate_token_scores(probs, tokens, "MEAN")
    torch.testing.assert_close(scores, torch.tensor([[[0.7, 0.1, (0.9 + 0.5 + 0.3) / 3]]]))
    torch.testing.assert_close(aggregate_token_scores(probs, tokens, "MAX"), torch.tensor([[[0.9, 0.1, 0.9]]]))


def test_label_map_checks():
    tokens = make_label_tokens({2: [], 1: [0]}, num_tokens=4, num_slots=80)
    assert tokens.labels.tolist() == [1]  # a label without tokens can never score
    with pytest.raises(ValueError, match="MDETR_STYLE_AGGREGATE_CLASS_NUM"):
        make_label_tokens({81: [0]}, num_tokens=4, num_slots=80)
    with pytest.raises(ValueError, match="MAX_QUERY_LEN"):
        make_label_tokens({1: [4]}, num_tokens=4, num_slots=80)
    assert make_label_tokens({1203: [0]}, num_tokens=4, num_slots=3000).labels.tolist() == [1203]


def _one_level_case():
    """2x2 stride-8 grid (anchors of 64 px clip to the whole 16x16 image), 4 tokens, zero box deltas."""
    anchors = AnchorGenerator([(64,)], (1.0,), (8,)).grid_anchors([(2, 2)])
    probs = [[0.01, 0.9, 0.7, 0.01], [0.01, 0.3, 0.5, 0.6], [0.01, 0.01, 0.01, 0.01], [0.01, 0.04, 0.04, 0.2]]
    logits = torch.tensor([[[_logit(p) for p in row] for row in probs]])
    centerness = torch.tensor([0.0, 0.0, 0.0, math.log(3.0)]).view(1, 1, 2, 2)
    box_regression = torch.zeros(1, 4, 2, 2)
    return box_regression, centerness, logits, anchors


def _as_set(boxlist):
    return {(int(c), round(float(s), 5)) for c, s in zip(boxlist.get_field("labels"), boxlist.get_field("scores"))}


def test_single_level_hand_case():
    box_regression, centerness, logits, anchors = _one_level_case()
    post = ATSSPostProcessor(pre_nms_thresh=0.05, pre_nms_top_n=1000, nms_thresh=0.6, detections_per_img=100)
    label_map = {1: [1, 2], 2: [3]}
    # candidates: (a0, l1) 0.8*0.5, (a1, l1) 0.4*0.5, (a1, l2) 0.6*0.5, (a3, l2) 0.2*0.75; all boxes clip to
    # the same [0, 0, 15, 15], so class-aware NMS keeps the best box of each label.
    [result] = post([box_regression], [centerness], [logits], anchors, [(16, 16)], label_map)
    assert isinstance(result, BoxList) and result.size == (16, 16)
    assert _as_set(result) == {(1, round(math.sqrt(0.4), 5)), (2, round(math.sqrt(0.3), 5))}
    torch.testing.assert_close(result.bbox, torch.tensor([[0.0, 0.0, 15.0, 15.0]] * 2))

    no_nms = ATSSPostProcessor(pre_nms_thresh=0.05, pre_nms_top_n=1000, nms_thresh=0.0, detections_per_img=100)
    [result] = no_nms([box_regression], [centerness], [logits], anchors, [(16, 16)], label_map)
    expected = {(1, 0.4), (1, 0.2), (2, 0.3), (2, 0.15)}
    assert _as_set(result) == {(c, round(math.sqrt(s), 5)) for c, s in expected}

    top2 = ATSSPostProcessor(pre_nms_thresh=0.05, pre_nms_top_n=2, nms_thresh=0.0, detections_per_img=100)
    [result] = top2([box_regression], [centerness], [logits], anchors, [(16, 16)], label_map)
    assert _as_set(result) == {(1, round(math.sqrt(0.4), 5)), (2, round(math.sqrt(0.3), 5))}

    strict = ATSSPostProcessor(pre_nms_thresh=0.65, nms_thresh=0.0)
    [result] = strict([box_regression], [centerness], [logits], anchors, [(16, 16)], label_map)
    assert _as_set(result) == {(1, round(math.sqrt(0.4), 5))}


def test_detections_per_image_keeps_ties():
    post = ATSSPostProcessor(nms_thresh=0.6, detections_per_img=2)
    boxes = BoxList(torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50], [60, 60, 70, 70]]), (80, 80))
    boxes.add_field("scores", torch.tensor([0.9, 0.5, 0.5, 0.1]))
    boxes.add_field("labels", torch.tensor([1, 2, 3, 4]))
    kept = post._select_over_all_levels(boxes)
    assert sorted(kept.get_field("scores").tolist()) == pytest.approx([0.5, 0.5, 0.9])


def test_decoded_boxes_are_clipped_with_plus_one():
    box_regression, centerness, logits, anchors = _one_level_case()
    box_regression[:, 0] = 2.0  # shift every box right by 0.2 anchor widths
    post = ATSSPostProcessor(nms_thresh=0.0)
    [result] = post([box_regression], [centerness], [logits], anchors, [(12, 20)], {1: [1, 2]})
    assert result.size == (20, 12)
    assert (result.bbox[:, 0] >= 0).all() and (result.bbox[:, 2] <= 19).all() and (result.bbox[:, 3] <= 11).all()
    assert torch.isclose(result.bbox[:, 2], torch.tensor(19.0)).all()
