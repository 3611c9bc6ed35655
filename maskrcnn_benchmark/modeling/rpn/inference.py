"""Post-processing of the VL ATSS head: token logits -> per-label detections
(upstream ``modeling/rpn/inference.py`` ``ATSSPostProcessor``; upstream-facts.md 1.17).

Per level and image: sigmoid of the anchor-token logits; each label's score = the mean (or max) of its tokens'
probabilities; candidates = scores above ``pre_nms_thresh``; score x sigmoid(centerness); the top
``pre_nms_top_n`` candidates are decoded, clipped to the image (+1 convention) and scored by
``sqrt(score x centerness)``. Then, over all levels: class-aware NMS and the ``detections_per_img`` best
(all boxes tied with the last one are kept, as upstream's ``kthvalue`` rule does).

Upstream fills a dense ``[B, A, K]`` score tensor, K = the number of label slots (80, or
``TEST.MDETR_STYLE_AGGREGATE_CLASS_NUM``), and most columns stay 0. Here only the labels of the prompt get a
column, in ascending label order; a zero column can never pass ``score > pre_nms_thresh`` (thresholds are >= 0),
so the candidates, their order and the results are the same, at a fraction of the memory for LVIS (3000 slots).
"""

import logging
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import torch
from torch import nn

from maskrcnn_benchmark.structures.bounding_box import BoxList
from maskrcnn_benchmark.structures.boxlist_ops import boxlist_ml_nms, cat_boxlist, remove_small_boxes

from .box_coder import BoxCoder

__all__ = ["LabelTokens", "make_label_tokens", "aggregate_token_scores", "ATSSPostProcessor",
           "build_atss_postprocessor", "SCORE_AGGREGATIONS"]

logger = logging.getLogger(__name__)

SCORE_AGGREGATIONS = ("MEAN", "MAX")


class LabelTokens(NamedTuple):
    """The labels of a prompt and their token indices, sorted by label, padded into one index matrix.

    Attributes:
        labels (Tensor[P] int64): label ids (global ids: COCO contiguous 1..80, LVIS category ids, phrase
            index + 1 for grounding).
        index (Tensor[P, T] int64): token indices of each label, padded with 0 to the longest label's T tokens.
        valid (Tensor[P, T] bool): which entries of ``index`` are real tokens.
    """

    labels: torch.Tensor
    index: torch.Tensor
    valid: torch.Tensor

    @property
    def tokens(self) -> list[torch.Tensor]:
        """Token indices of each label (Tensor[T_p] int64 per label)."""
        return [row[keep] for row, keep in zip(self.index, self.valid)]


def make_label_tokens(label_to_tokens: Mapping[int, Sequence[int]], num_tokens: int, num_slots: int,
                      device=None) -> LabelTokens:
    """Check and sort a ``{label: [token index, ...]}`` map (upstream's test-time ``positive_map``).

    Labels without tokens are dropped (they can never score, as upstream). Raises ``ValueError`` for a label
    outside ``1..num_slots`` or a token index outside ``0..num_tokens-1``. Three small tensors are built (one
    host-to-device copy each), whatever the number of labels.
    """
    labels, rows = [], []
    for label in sorted(label_to_tokens):
        token_ids = [int(t) for t in label_to_tokens[label]]
        if not 1 <= int(label) <= num_slots:
            raise ValueError(f"label {label} of the positive map is outside the {num_slots} label slots of the "
                             f"head (1..{num_slots}); set TEST.MDETR_STYLE_AGGREGATE_CLASS_NUM to at least the "
                             f"largest label")
        if any(not 0 <= t < num_tokens for t in token_ids):
            raise ValueError(f"label {label}: token indices {token_ids} fall outside the {num_tokens} text tokens "
                             f"(the prompt is longer than MODEL.LANGUAGE_BACKBONE.MAX_QUERY_LEN; chunk it)")
        if not token_ids:
            logger.debug("label %s has no tokens in the prompt; it cannot be detected", label)
            continue
        labels.append(int(label))
        rows.append(token_ids)
    width = max((len(row) for row in rows), default=1)
    index = [row + [0] * (width - len(row)) for row in rows]
    valid = [[True] * len(row) + [False] * (width - len(row)) for row in rows]
    return LabelTokens(torch.tensor(labels, dtype=torch.int64, device=device),
                       torch.tensor(index, dtype=torch.int64, device=device).view(len(rows), width),
                       torch.tensor(valid, dtype=torch.bool, device=device).view(len(rows), width))


def aggregate_token_scores(token_probs: torch.Tensor, label_tokens: LabelTokens, score_agg: str = "MEAN"
                           ) -> torch.Tensor:
    """Per-label scores from per-token probabilities, for all labels at once (no per-label loop).

    Args:
        token_probs (Tensor[B, A, L]): sigmoid of the anchor-token logits.
        label_tokens: labels and their tokens (P labels).
        score_agg: "MEAN" (upstream default) or "MAX" over each label's tokens.

    Returns:
        Tensor[B, A, P], column p for ``label_tokens.labels[p]``.
    """
    if score_agg not in SCORE_AGGREGATIONS:
        raise ValueError(f"MODEL.DYHEAD.SCORE_AGG {score_agg!r} is not supported; use one of {SCORE_AGGREGATIONS}")
    if label_tokens.labels.numel() == 0:
        return token_probs.new_zeros(token_probs.shape[:2] + (0,))
    gathered = token_probs[:, :, label_tokens.index]  # [B, A, P, T]
    valid = label_tokens.valid
    if score_agg == "MEAN":
        # Padding adds exact zeros to each label's sum, so this equals the mean over the label's own tokens.
        total = gathered.masked_fill(~valid, 0.0).sum(dim=-1)
        return total / valid.sum(dim=-1).to(total.dtype)
    # probabilities are >= 0, so padding with 0 never changes a maximum
    return gathered.masked_fill(~valid, 0.0).max(dim=-1).values


def _flatten_level(box_regression: torch.Tensor, centerness: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, 4A, H, W]`` and ``[B, A, H, W]`` -> ``[B, H*W*A, 4]`` and ``[B, H*W*A]`` (anchor order)."""
    batch, _, height, width = box_regression.shape
    box_regression = box_regression.view(batch, -1, 4, height, width).permute(0, 3, 4, 1, 2).reshape(batch, -1, 4)
    centerness = centerness.permute(0, 2, 3, 1).reshape(batch, -1)
    return box_regression, centerness


class ATSSPostProcessor(nn.Module):
    """Detections from the head's outputs (no parameters).

    Args:
        pre_nms_thresh: ``MODEL.ATSS.INFERENCE_TH``, on the raw label probability.
        pre_nms_top_n: ``MODEL.ATSS.PRE_NMS_TOP_N``, candidates kept per level and image.
        nms_thresh: ``MODEL.ATSS.NMS_TH``, IoU threshold of the class-aware NMS.
        detections_per_img: ``MODEL.ATSS.DETECTIONS_PER_IMG``.
        num_slots: label slots K (labels must lie in 1..K).
        score_agg: ``MODEL.DYHEAD.SCORE_AGG``.
        min_size: boxes narrower or lower than this (+1 convention) are dropped.
        box_coder: the head's box coder.
    """

    def __init__(self, pre_nms_thresh: float = 0.05, pre_nms_top_n: int = 1000, nms_thresh: float = 0.6,
                 detections_per_img: int = 100, num_slots: int = 80, score_agg: str = "MEAN", min_size: float = 0,
                 box_coder: BoxCoder = None):
        super().__init__()
        if score_agg not in SCORE_AGGREGATIONS:
            raise ValueError(f"MODEL.DYHEAD.SCORE_AGG {score_agg!r} is not supported; use one of "
                             f"{SCORE_AGGREGATIONS}")
        self.pre_nms_thresh = pre_nms_thresh
        self.pre_nms_top_n = pre_nms_top_n
        self.nms_thresh = nms_thresh
        self.detections_per_img = detections_per_img
        self.num_slots = num_slots
        self.score_agg = score_agg
        self.min_size = min_size
        self.box_coder = box_coder or BoxCoder()

    def _single_level(self, box_regression, centerness, dot_product_logits, anchors, image_sizes,
                      label_tokens: LabelTokens) -> list[BoxList]:
        box_regression, centerness = _flatten_level(box_regression, centerness)
        scores = aggregate_token_scores(dot_product_logits.sigmoid(), label_tokens, self.score_agg)
        candidates = scores > self.pre_nms_thresh
        scores = scores * centerness.sigmoid()[:, :, None]
        results = []
        for image, (height, width) in enumerate(image_sizes):
            image_candidates = candidates[image]
            image_scores = scores[image][image_candidates]
            locations = image_candidates.nonzero()
            top_n = min(int(image_candidates.sum()), self.pre_nms_top_n)
            image_scores, top = image_scores.topk(top_n, sorted=False)
            anchor_index, column = locations[top, 0], locations[top, 1]
            boxes = self.box_coder.decode(box_regression[image, anchor_index], anchors[anchor_index])
            boxlist = BoxList(boxes, (int(width), int(height)), mode="xyxy")
            boxlist.add_field("labels", label_tokens.labels[column])
            boxlist.add_field("scores", torch.sqrt(image_scores))
            boxlist = boxlist.clip_to_image(remove_empty=False)
            results.append(remove_small_boxes(boxlist, self.min_size))
        return results

    def _select_over_all_levels(self, boxlist: BoxList) -> BoxList:
        result = boxlist_ml_nms(boxlist, self.nms_thresh)
        count = len(result)
        if count > self.detections_per_img > 0:
            scores = result.get_field("scores")
            # the detections_per_img-th best score (= upstream's kthvalue rule), found on the scores' device
            threshold = scores.topk(self.detections_per_img, sorted=True).values[-1]
            result = result[scores >= threshold]
        return result

    def forward(self, box_regression: Sequence[torch.Tensor], centerness: Sequence[torch.Tensor],
                dot_product_logits: Sequence[torch.Tensor], anchors_per_level: Sequence[torch.Tensor],
                image_sizes: Sequence[tuple[int, int]], label_to_tokens: Mapping[int, Sequence[int]],
                num_slots: int | None = None) -> list[BoxList]:
        """Detections of a batch.

        Args:
            box_regression: per level Tensor[B, 4A, H, W].
            centerness: per level Tensor[B, A, H, W] logits.
            dot_product_logits: per level Tensor[B, H*W*A, L].
            anchors_per_level: per level Tensor[H*W*A, 4].
            image_sizes: (height, width) of each image before padding.
            label_to_tokens: ``{label: [token index, ...]}`` shared by the batch.
            num_slots: label slots for this call (default ``self.num_slots``; the Predictor widens them to the
                largest label of a user's class list).

        Returns:
            one BoxList per image (xyxy, image size (width, height)) with fields "labels" (int64[N]) and
            "scores" (float[N]).
        """
        num_tokens = dot_product_logits[0].shape[-1]
        label_tokens = make_label_tokens(label_to_tokens, num_tokens, num_slots or self.num_slots,
                                         device=dot_product_logits[0].device)
        per_level = [self._single_level(reg.float(), ctr.float(), logits.float(), anchors, image_sizes,
                                        label_tokens)
                     for reg, ctr, logits, anchors in zip(box_regression, centerness, dot_product_logits,
                                                          anchors_per_level)]
        per_image = [cat_boxlist(list(levels)) for levels in zip(*per_level)]
        return [self._select_over_all_levels(boxlist) for boxlist in per_image]


def build_atss_postprocessor(cfg, box_coder: BoxCoder) -> ATSSPostProcessor:
    """``ATSSPostProcessor`` from ``MODEL.ATSS``, ``MODEL.DYHEAD`` and ``TEST.MDETR_STYLE_AGGREGATE_CLASS_NUM``.

    The label slots are ``TEST.MDETR_STYLE_AGGREGATE_CLASS_NUM`` when it is positive, else the class-logit
    channels of the head (``MODEL.DYHEAD.NUM_CLASSES - 1``, 80 by default).
    """
    mdetr_slots = cfg.TEST.MDETR_STYLE_AGGREGATE_CLASS_NUM
    num_slots = mdetr_slots if mdetr_slots > 0 else cfg.MODEL.DYHEAD.NUM_CLASSES - 1
    atss = cfg.MODEL.ATSS
    return ATSSPostProcessor(pre_nms_thresh=atss.INFERENCE_TH, pre_nms_top_n=atss.PRE_NMS_TOP_N,
                             nms_thresh=atss.NMS_TH, detections_per_img=atss.DETECTIONS_PER_IMG,
                             num_slots=num_slots, score_agg=cfg.MODEL.DYHEAD.SCORE_AGG, min_size=0,
                             box_coder=box_coder)
