"""Losses of the VL head against independent references (torchvision GIoU / focal loss, plain BCE)."""

import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import generalized_box_iou_loss, sigmoid_focal_loss

from maskrcnn_benchmark.modeling.rpn.box_coder import BoxCoder
from maskrcnn_benchmark.modeling.rpn.loss import VLATSSLoss, atss_assign, centerness_targets, giou_loss


def _levels():
    levels = []
    for stride, size in ((8, 32), (16, 64)):
        ys, xs = torch.meshgrid(torch.arange(0, 64, stride), torch.arange(0, 64, stride), indexing="ij")
        centre = torch.stack([xs.flatten(), ys.flatten()], 1).float() + (stride - 1) / 2
        levels.append(torch.cat([centre - (size - 1) / 2, centre + (size - 1) / 2], 1))
    return levels


def test_centerness_targets_hand_values():
    coder = BoxCoder()
    anchors = torch.tensor([[0.0, 0.0, 9.0, 9.0], [5.0, 0.0, 14.0, 9.0]])
    gt = torch.tensor([[0.0, 0.0, 9.0, 9.0], [0.0, 0.0, 14.0, 9.0]])
    ctr = centerness_targets(coder.encode(gt, anchors), anchors, coder)
    torch.testing.assert_close(ctr, torch.tensor([1.0, math.sqrt(4.5 / 9.5)]))


def test_giou_loss_matches_torchvision():
    gen = torch.Generator().manual_seed(1)
    coder = BoxCoder()
    anchors = torch.tensor([[0.0, 0.0, 31.0, 31.0]]).repeat(6, 1) + torch.rand(6, 1, generator=gen) * 20
    pred = torch.randn(6, 4, generator=gen)
    target = torch.randn(6, 4, generator=gen)
    weight = torch.rand(6, generator=gen)
    expected = (generalized_box_iou_loss(coder.decode(pred, anchors), coder.decode(target, anchors),
                                         reduction="none", eps=1e-7) * weight).sum()
    torch.testing.assert_close(giou_loss(pred, target, anchors, coder, weight), expected, rtol=1e-5, atol=1e-5)
    # identical boxes -> zero loss
    torch.testing.assert_close(giou_loss(target, target, anchors, coder), torch.tensor(0.0), atol=1e-5, rtol=0)


def test_losses_match_reference():
    torch.manual_seed(0)
    levels = _levels()
    num_anchors = sum(len(a) for a in levels)
    gt_boxes = [torch.tensor([[4.0, 6.0, 40.0, 30.0], [20.0, 20.0, 60.0, 62.0]]),
                torch.tensor([[10.0, 10.0, 33.0, 50.0]])]
    num_tokens = 8
    token_maps = [torch.tensor([[0, 1, 1, 0, 0, 0, 0, 0], [0, 0, 0, 1, 0, 0, 0, 0]]).float(),
                  torch.tensor([[0, 1, 0, 0, 0, 0, 0, 0]]).float()]
    text_masks = torch.tensor([[1, 1, 1, 1, 1, 0, 0, 0], [1, 1, 1, 0, 0, 0, 0, 0]])
    box_regression = torch.randn(2, num_anchors, 4) * 0.5
    centerness = torch.randn(2, num_anchors)
    logits = torch.randn(2, num_anchors, num_tokens)

    loss_fn = VLATSSLoss(topk=9, reg_loss_weight=2.0)
    losses = loss_fn(box_regression, centerness, logits, levels, gt_boxes, token_maps, text_masks)
    assert set(losses) == {"loss_reg", "loss_centerness", "loss_cls", "loss_dot_product_token"}
    assert losses["loss_cls"].item() == 0.0

    coder, anchors = BoxCoder(), torch.cat(levels)
    matched = [atss_assign(levels, b, 9) for b in gt_boxes]
    num_pos = sum(int((m >= 0).sum()) for m in matched)
    assert num_pos > 0
    token_loss, reg_sum, ctr_sum, ctr_loss = 0.0, 0.0, 0.0, 0.0
    for image, index in enumerate(matched):
        targets = torch.zeros(num_anchors, num_tokens)
        targets[:, -1] = 1
        targets[index >= 0] = token_maps[image][index[index >= 0]]
        keep = text_masks[image].bool()
        token_loss += sigmoid_focal_loss(logits[image][:, keep], targets[:, keep], reduction="sum")
        pos = index >= 0
        gt = gt_boxes[image][index[pos]]
        ctr = centerness_targets(coder.encode(gt, anchors[pos]), anchors[pos], coder)
        pred_boxes = coder.decode(box_regression[image][pos], anchors[pos])
        reg_sum += (generalized_box_iou_loss(pred_boxes, gt, reduction="none", eps=1e-7) * ctr).sum()
        ctr_sum += ctr.sum()
        ctr_loss += F.binary_cross_entropy_with_logits(centerness[image][pos], ctr, reduction="sum")
    torch.testing.assert_close(losses["loss_dot_product_token"], token_loss / num_pos, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(losses["loss_reg"], 2.0 * reg_sum / ctr_sum, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(losses["loss_centerness"], ctr_loss / num_pos, rtol=1e-5, atol=1e-6)


def test_no_object_slot_and_empty_images():
    levels = _levels()
    num_anchors = sum(len(a) for a in levels)
    loss_fn = VLATSSLoss()
    targets = loss_fn.prepare_targets(levels, [torch.zeros(0, 4)], [torch.zeros(0, 6)], num_tokens=6)
    assert (targets.matched == -1).all()
    # UPSTREAM-QUIRK 1.14: background anchors target only the last token
    assert targets.token_targets[0, :, -1].eq(1).all() and targets.token_targets[0, :, :-1].eq(0).all()

    box_regression = torch.randn(1, num_anchors, 4, requires_grad=True)
    centerness = torch.randn(1, num_anchors, requires_grad=True)
    logits = torch.randn(1, num_anchors, 6, requires_grad=True)
    losses = loss_fn(box_regression, centerness, logits, levels, [torch.zeros(0, 4)], [torch.zeros(0, 6)],
                     torch.ones(1, 6))
    assert losses["loss_reg"].item() == 0.0 and losses["loss_centerness"].item() == 0.0
    total = sum(losses.values())
    total.backward()  # graph kept even without positives
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_losses_are_float32_for_low_precision_inputs(dtype):
    levels = _levels()
    num_anchors = sum(len(a) for a in levels)
    losses = VLATSSLoss()(torch.zeros(1, num_anchors, 4, dtype=dtype), torch.zeros(1, num_anchors, dtype=dtype),
                          torch.zeros(1, num_anchors, 4, dtype=dtype), levels,
                          [torch.tensor([[4.0, 6.0, 40.0, 30.0]])], [torch.tensor([[0.0, 1.0, 0.0, 0.0]])],
                          torch.ones(1, 4))
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())


def test_label_zero_boxes_give_no_positives_but_keep_token_targets():
    # UPSTREAM-QUIRK 1.14: positives are anchors matched to boxes labelled > 0.
    levels = _levels()
    boxes = [torch.tensor([[4.0, 6.0, 40.0, 30.0], [20.0, 20.0, 60.0, 62.0]])]
    token_maps = [torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])]
    loss_fn = VLATSSLoss()
    targets = loss_fn.prepare_targets(levels, boxes, token_maps, 4, gt_labels=[torch.tensor([0, 3])])
    matched, positive = targets.matched[0], targets.positive[0]
    assert (matched == 0).any() and (matched == 1).any()
    assert not positive[matched == 0].any() and positive[matched == 1].all()
    assert targets.token_targets[0][matched == 0].eq(torch.tensor([0.0, 1.0, 0.0, 0.0])).all()
    all_positive = loss_fn.prepare_targets(levels, boxes, token_maps, 4).positive[0]
    assert torch.equal(all_positive, matched >= 0)
