"""ATSS assignment and the losses of the VL ATSS head (upstream ``modeling/rpn/loss.py`` ``ATSSLossComputation``).

Paper: "Bridging the Gap Between Anchor-based and Anchor-free Detection via Adaptive Training Sample
Selection" (Zhang et al., CVPR 2020). Facts: upstream-facts.md 1.14 (assignment) and 1.15 (losses).

Losses (all computed in float32, also under autocast):

* ``loss_reg``: GIoU loss of positive anchors, weighted by their centerness targets, divided by the sum of
  centerness targets (averaged over processes), times ``MODEL.ATSS.REG_LOSS_WEIGHT``.
* ``loss_centerness``: binary cross-entropy of the centerness logits of positives / mean positives per process.
* ``loss_dot_product_token``: sigmoid focal loss over every (anchor, real token) pair / mean positives per
  process, times ``DOT_PRODUCT_TOKEN_LOSS_WEIGHT``.
* ``loss_cls``: upstream's class-logit focal loss, multiplied by 0 there; emitted here as a constant 0.
"""

import logging
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import box_iou

from maskrcnn_benchmark.layers import token_sigmoid_focal_loss
from maskrcnn_benchmark.utils.distributed import get_world_size, is_dist_avail_and_initialized

from .box_coder import BoxCoder

__all__ = ["iou_plus_one", "atss_assign", "centerness_targets", "giou_loss", "ATSSTargets", "VLATSSLoss",
           "build_vl_atss_loss"]

logger = logging.getLogger(__name__)

# A centre must lie this far (pixels) inside the box to count as inside (upstream's hard-coded margin).
_INSIDE_MARGIN = 0.01


def iou_plus_one(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU of xyxy boxes with the +1 convention (width = x2 - x1 + 1).

    Args:
        boxes1 (Tensor[N, 4]), boxes2 (Tensor[M, 4]).

    Returns:
        Tensor[N, M].
    """
    shift = boxes1.new_tensor([0.0, 0.0, 1.0, 1.0])
    return box_iou(boxes1 + shift, boxes2 + shift)


def _centres(boxes: torch.Tensor) -> torch.Tensor:
    """Centres ``(x1 + x2) / 2, (y1 + y2) / 2`` of xyxy boxes, ``Tensor[N, 2]``."""
    return torch.stack(((boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2), dim=1)


def atss_assign(anchors_per_level: Sequence[torch.Tensor], gt_boxes: torch.Tensor, topk: int) -> torch.Tensor:
    """Adaptive training sample selection for one image.

    For every ground-truth box: take the ``topk`` anchors of each level whose centres are closest to the box
    centre, set the IoU threshold to the mean + (unbiased) standard deviation of these candidates' IoUs, and
    keep the candidates at or above it whose centre lies inside the box (all sides > 0.01 px). An anchor kept
    for several boxes goes to the one with the highest IoU.

    Args:
        anchors_per_level: per level Tensor[A_l, 4], xyxy (+1 convention).
        gt_boxes (Tensor[G, 4]): xyxy.
        topk: candidates per level per box (``MODEL.ATSS.TOPK`` x anchors per location).

    Returns:
        Tensor[A] int64: index of the matched box for every anchor, -1 for background.
    """
    anchors = torch.cat(list(anchors_per_level), dim=0)
    num_anchors, num_gt = anchors.shape[0], gt_boxes.shape[0]
    if num_gt == 0:
        return torch.full((num_anchors,), -1, dtype=torch.int64, device=anchors.device)
    ious = iou_plus_one(anchors, gt_boxes)
    anchor_centres = _centres(anchors)
    # Explicit differences (not torch.cdist's matrix-product shortcut) so that ties rank as upstream's.
    distances = (anchor_centres[:, None, :] - _centres(gt_boxes)[None, :, :]).pow(2).sum(-1).sqrt()  # [A, G]

    candidates, start = [], 0
    for level_anchors in anchors_per_level:
        end = start + level_anchors.shape[0]
        k = min(topk, end - start)
        if k > 0:
            candidates.append(distances[start:end].topk(k, dim=0, largest=False).indices + start)
        start = end
    candidate_idxs = torch.cat(candidates, dim=0)  # [K, G]

    gt_index = torch.arange(num_gt, device=anchors.device)
    candidate_ious = ious[candidate_idxs, gt_index]
    threshold = candidate_ious.mean(dim=0) + candidate_ious.std(dim=0)
    is_pos = candidate_ious >= threshold[None, :]

    centres = anchor_centres[candidate_idxs]  # [K, G, 2]
    sides = torch.stack((centres[..., 0] - gt_boxes[:, 0], centres[..., 1] - gt_boxes[:, 1],
                         gt_boxes[:, 2] - centres[..., 0], gt_boxes[:, 3] - centres[..., 1]), dim=-1)
    is_pos &= sides.min(dim=-1).values > _INSIDE_MARGIN

    kept_ious = torch.full_like(ious, -float("inf"))
    pos_anchor, pos_gt = candidate_idxs[is_pos], gt_index.expand_as(candidate_idxs)[is_pos]
    kept_ious[pos_anchor, pos_gt] = ious[pos_anchor, pos_gt]
    best_iou, best_gt = kept_ious.max(dim=1)
    best_gt[best_iou == -float("inf")] = -1
    return best_gt


def centerness_targets(reg_targets: torch.Tensor, anchors: torch.Tensor, box_coder: BoxCoder) -> torch.Tensor:
    """``sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b))`` of each anchor centre in its decoded box.

    Args:
        reg_targets (Tensor[P, 4]): encoded boxes of positive anchors.
        anchors (Tensor[P, 4]): the anchors.

    Returns:
        Tensor[P].
    """
    boxes = box_coder.decode(reg_targets, anchors)
    centres = _centres(anchors)
    left_right = torch.stack((centres[:, 0] - boxes[:, 0], boxes[:, 2] - centres[:, 0]), dim=1)
    top_bottom = torch.stack((centres[:, 1] - boxes[:, 1], boxes[:, 3] - centres[:, 1]), dim=1)
    ratio = (left_right.min(dim=1).values / left_right.max(dim=1).values) * \
        (top_bottom.min(dim=1).values / top_bottom.max(dim=1).values)
    return torch.sqrt(ratio)


def giou_loss(pred_deltas: torch.Tensor, target_deltas: torch.Tensor, anchors: torch.Tensor,
              box_coder: BoxCoder, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Summed ``1 - GIoU`` of decoded predicted and target boxes (areas without +1).

    Args:
        pred_deltas, target_deltas, anchors: Tensor[P, 4].
        weight (Tensor[P], optional): per-box weights, used when their sum is positive.

    Returns:
        scalar Tensor.
    """
    pred = box_coder.decode(pred_deltas, anchors)
    target = box_coder.decode(target_deltas, anchors)
    px1, py1 = pred[:, 0], pred[:, 1]
    px2, py2 = torch.max(px1, pred[:, 2]), torch.max(py1, pred[:, 3])
    tx1, ty1, tx2, ty2 = target.unbind(dim=1)
    pred_area = (px2 - px1) * (py2 - py1)
    target_area = (tx2 - tx1) * (ty2 - ty1)
    inter_w = (torch.min(px2, tx2) - torch.max(px1, tx1)).clamp(min=0)
    inter_h = (torch.min(py2, ty2) - torch.max(py1, ty1)).clamp(min=0)
    intersection = inter_w * inter_h
    enclosing = (torch.max(px2, tx2) - torch.min(px1, tx1)) * (torch.max(py2, ty2) - torch.min(py1, ty1)) + 1e-7
    union = pred_area + target_area - intersection + 1e-7
    losses = 1 - (intersection / union - (enclosing - union) / enclosing)
    if weight is not None and weight.sum() > 0:
        return (losses * weight).sum()
    return losses.sum()


class ATSSTargets(NamedTuple):
    """Training targets of a batch, flattened over images and anchors (A = anchors per image).

    Attributes:
        matched (Tensor[B, A] int64): matched box index within its image, -1 for background.
        positive (Tensor[B, A] bool): anchors that count as positives (matched to a box whose label is > 0).
        reg_targets (Tensor[B, A, 4]): encoded matched boxes (zeros rows where unmatched).
        token_targets (Tensor[B, A, L]): the matched box's binary token row; background rows have only the
            last token set (the no-object slot).
    """

    matched: torch.Tensor
    positive: torch.Tensor
    reg_targets: torch.Tensor
    token_targets: torch.Tensor


def _reduce_mean(value: float, device: torch.device) -> float:
    """Sum of ``value`` over processes divided by the number of processes (identity for one process)."""
    world_size = get_world_size()
    if world_size == 1 or not is_dist_avail_and_initialized():
        return float(value)
    tensor = torch.tensor([float(value)], device=device)
    torch.distributed.all_reduce(tensor)
    return tensor.item() / world_size


class VLATSSLoss(nn.Module):
    """Assigns anchors to boxes and computes the head's losses (no parameters).

    Args:
        topk: ATSS candidates per level per box (``MODEL.ATSS.TOPK`` x anchors per location).
        reg_loss_weight: ``MODEL.ATSS.REG_LOSS_WEIGHT``.
        token_alpha, token_gamma: focal-loss parameters (``FUSE_CONFIG.TOKEN_ALPHA``/``TOKEN_GAMMA``).
        token_loss_weight: ``FUSE_CONFIG.DOT_PRODUCT_TOKEN_LOSS_WEIGHT``.
        box_coder: the head's box coder.
    """

    def __init__(self, topk: int = 9, reg_loss_weight: float = 2.0, token_alpha: float = 0.25,
                 token_gamma: float = 2.0, token_loss_weight: float = 1.0, box_coder: BoxCoder | None = None):
        super().__init__()
        self.topk = topk
        self.reg_loss_weight = reg_loss_weight
        self.token_alpha = token_alpha
        self.token_gamma = token_gamma
        self.token_loss_weight = token_loss_weight
        self.box_coder = box_coder or BoxCoder()

    def prepare_targets(self, anchors_per_level: Sequence[torch.Tensor], gt_boxes: Sequence[torch.Tensor],
                        token_maps: Sequence[torch.Tensor], num_tokens: int,
                        gt_labels: Sequence[torch.Tensor] | None = None) -> ATSSTargets:
        """Targets of every image.

        Args:
            anchors_per_level: per level Tensor[A_l, 4] (shared by the batch).
            gt_boxes: per image Tensor[G_i, 4] xyxy.
            token_maps: per image binary Tensor[G_i, L'] (rows of the positive map).
            num_tokens: L, the text length of the batch.
            gt_labels: per image Tensor[G_i] int64 box labels (None: all boxes are labelled > 0).
        """
        anchors = torch.cat(list(anchors_per_level), dim=0)
        if gt_labels is None:
            gt_labels = [torch.ones(len(boxes), dtype=torch.int64) for boxes in gt_boxes]
        matched, positive, reg_targets, token_targets = [], [], [], []
        for boxes, token_map, labels in zip(gt_boxes, token_maps, gt_labels):
            boxes, token_map = boxes.to(anchors.device), token_map.to(anchors.device)
            index = atss_assign(anchors_per_level, boxes, self.topk)
            foreground = index >= 0
            safe_index = index.clamp(min=0)
            # UPSTREAM-QUIRK: 1.14 - positives are anchors whose matched box has a label > 0; an anchor matched
            # to a label-0 box is a negative for the box losses but keeps that box's token targets.
            if boxes.shape[0] > 0:
                positive.append(foreground & (labels.to(anchors.device)[safe_index] > 0))
            else:
                positive.append(foreground)
            tokens = anchors.new_zeros((anchors.shape[0], num_tokens))
            # UPSTREAM-QUIRK: 1.14 - background anchors target the last token ("no object" slot); it only
            # matters when the caption fills all L tokens, since padded tokens are masked out of the loss.
            tokens[:, -1] = 1.0
            regs = anchors.new_zeros(anchors.shape)
            if boxes.shape[0] > 0:
                width = min(num_tokens, token_map.shape[1])
                tokens[foreground] = 0.0
                tokens[foreground, :width] = token_map[safe_index[foreground], :width].to(tokens.dtype)
                regs = self.box_coder.encode(boxes[safe_index].to(anchors.dtype), anchors)
            matched.append(index)
            reg_targets.append(regs)
            token_targets.append(tokens)
        return ATSSTargets(torch.stack(matched), torch.stack(positive), torch.stack(reg_targets),
                           torch.stack(token_targets))

    def forward(self, box_regression: torch.Tensor, centerness: torch.Tensor, dot_product_logits: torch.Tensor,
                anchors_per_level: Sequence[torch.Tensor], gt_boxes: Sequence[torch.Tensor],
                token_maps: Sequence[torch.Tensor], text_masks: torch.Tensor,
                gt_labels: Sequence[torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """Losses of a batch.

        Args:
            box_regression (Tensor[B, A, 4]): predicted deltas, anchors in level, row, column order.
            centerness (Tensor[B, A]): centerness logits.
            dot_product_logits (Tensor[B, A, L]): anchor-token logits.
            anchors_per_level: per level Tensor[A_l, 4].
            gt_boxes: per image Tensor[G_i, 4] xyxy in the padded image's coordinates.
            token_maps: per image binary Tensor[G_i, L] (the rows of the dense positive map).
            text_masks (Tensor[B, L]): 1 for real tokens (attention mask).
            gt_labels: per image Tensor[G_i] box labels; boxes labelled 0 give no positives (None: all > 0).

        Returns:
            dict with ``loss_reg``, ``loss_centerness``, ``loss_cls`` (constant 0) and ``loss_dot_product_token``.
        """
        with torch.autocast(device_type=box_regression.device.type, enabled=False):
            return self._losses(box_regression.float(), centerness.float(), dot_product_logits.float(),
                                [a.float() for a in anchors_per_level], [b.float() for b in gt_boxes],
                                token_maps, text_masks, gt_labels)

    def _losses(self, box_regression, centerness, dot_product_logits, anchors_per_level, gt_boxes, token_maps,
                text_masks, gt_labels) -> dict[str, torch.Tensor]:
        targets = self.prepare_targets(anchors_per_level, gt_boxes, token_maps, dot_product_logits.shape[-1],
                                       gt_labels)
        device = box_regression.device
        positive = targets.positive  # [B, A]
        num_pos_avg = max(_reduce_mean(positive.sum().item(), device), 1.0)

        token_mask = text_masks.bool()[:, None, :].expand_as(dot_product_logits)
        token_loss = token_sigmoid_focal_loss(dot_product_logits[token_mask], targets.token_targets[token_mask],
                                              alpha=self.token_alpha, gamma=self.token_gamma).sum()

        anchors = torch.cat(anchors_per_level, dim=0).expand(box_regression.shape[0], -1, -1)
        pos_anchors = anchors[positive]
        pos_reg_targets = targets.reg_targets[positive]
        pos_box_regression = box_regression[positive]
        pos_centerness = centerness[positive]
        ctr_targets = centerness_targets(pos_reg_targets, pos_anchors, self.box_coder)
        ctr_sum_avg = _reduce_mean(ctr_targets.sum().item(), device)
        if positive.any():
            reg_loss = giou_loss(pos_box_regression, pos_reg_targets, pos_anchors, self.box_coder,
                                 weight=ctr_targets) / ctr_sum_avg
            ctr_loss = F.binary_cross_entropy_with_logits(pos_centerness, ctr_targets, reduction="sum") / num_pos_avg
        else:
            # Sums over the empty selection: zero, still attached to the graph.
            reg_loss = pos_box_regression.sum()
            ctr_loss = pos_centerness.sum()
        return {
            "loss_reg": reg_loss * self.reg_loss_weight,
            "loss_centerness": ctr_loss,
            "loss_cls": box_regression.new_zeros(()),
            "loss_dot_product_token": token_loss / num_pos_avg * self.token_loss_weight,
        }


def build_vl_atss_loss(cfg, box_coder: BoxCoder, anchors_per_location: int) -> VLATSSLoss:
    """``VLATSSLoss`` from ``MODEL.ATSS`` and ``MODEL.DYHEAD.FUSE_CONFIG``."""
    fuse = cfg.MODEL.DYHEAD.FUSE_CONFIG
    return VLATSSLoss(topk=cfg.MODEL.ATSS.TOPK * anchors_per_location,
                      reg_loss_weight=cfg.MODEL.ATSS.REG_LOSS_WEIGHT, token_alpha=fuse.TOKEN_ALPHA,
                      token_gamma=fuse.TOKEN_GAMMA, token_loss_weight=fuse.DOT_PRODUCT_TOKEN_LOSS_WEIGHT,
                      box_coder=box_coder)
