"""Operations on :class:`BoxList`: IoU (with and without the +1 convention), concatenation, filtering, NMS,
and the generalized IoU used by the RefExp evaluator and the GIoU loss."""

import logging
from collections.abc import Sequence
from typing import Any

import torch

from maskrcnn_benchmark.structures.bounding_box import TO_REMOVE, BoxList

__all__ = [
    "boxlist_iou",
    "cat_boxlist",
    "remove_small_boxes",
    "boxlist_nms",
    "boxlist_ml_nms",
    "box_area",
    "box_iou",
    "generalized_box_iou",
]

logger = logging.getLogger(__name__)


def _pairwise_iou(boxes1: torch.Tensor, boxes2: torch.Tensor, offset: float) -> torch.Tensor:
    """IoU of xyxy boxes [N, 4] x [M, 4] -> [N, M]; widths are ``x2 - x1 + offset``."""
    area1 = (boxes1[:, 2] - boxes1[:, 0] + offset) * (boxes1[:, 3] - boxes1[:, 1] + offset)
    area2 = (boxes2[:, 2] - boxes2[:, 0] + offset) * (boxes2[:, 3] - boxes2[:, 1] + offset)
    lt = torch.max(boxes1[:, None, :2], boxes2[:, :2])  # [N, M, 2]
    rb = torch.min(boxes1[:, None, 2:], boxes2[:, 2:])  # [N, M, 2]
    wh = (rb - lt + offset).clamp(min=0)
    inter = wh[:, :, 0] * wh[:, :, 1]
    return inter / (area1[:, None] + area2 - inter)


def boxlist_iou(boxlist1: BoxList, boxlist2: BoxList, plus_one: bool = True) -> torch.Tensor:
    """Pairwise IoU between two BoxLists of the same image.

    Args:
        boxlist1: N boxes. boxlist2: M boxes (any mode; converted to xyxy).
        plus_one: use the legacy +1 convention (``w = x2 - x1 + 1``, upstream ATSS/anchors) when True, the
            continuous convention (``w = x2 - x1``, torchvision) when False.

    Returns:
        Tensor[N, M] of IoUs.

    Raises:
        ValueError: the two BoxLists belong to images of different sizes.
    """
    if boxlist1.size != boxlist2.size:
        raise ValueError(f"boxlist_iou: boxlists should have the same image size, got {boxlist1}, {boxlist2}")
    boxes1 = boxlist1.convert("xyxy").bbox
    boxes2 = boxlist2.convert("xyxy").bbox
    return _pairwise_iou(boxes1, boxes2, float(TO_REMOVE) if plus_one else 0.0)


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Areas of xyxy boxes Tensor[N, 4] -> Tensor[N] (continuous convention, no +1)."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU of xyxy boxes Tensor[N, 4] x Tensor[M, 4] -> Tensor[N, M] (no +1)."""
    return _pairwise_iou(boxes1, boxes2, 0.0)


def generalized_box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Pairwise generalized IoU (Rezatofighi et al. 2019) of xyxy boxes, no +1 convention.

    ``GIoU = IoU - (|C| - |A ∪ B|) / |C|`` where C is the smallest box enclosing A and B.

    Args:
        boxes1: Tensor[N, 4] xyxy. boxes2: Tensor[M, 4] xyxy. Each box needs ``x2 >= x1`` and ``y2 >= y1``.

    Returns:
        Tensor[N, M] in [-1, 1].

    Raises:
        ValueError: a box is degenerate (x2 < x1 or y2 < y1); the message gives its index.
    """
    for name, boxes in (("boxes1", boxes1), ("boxes2", boxes2)):
        bad = ~(boxes[:, 2:] >= boxes[:, :2]).all(dim=1)
        if bad.any():
            index = int(bad.nonzero()[0])
            raise ValueError(f"generalized_box_iou: {name}[{index}] = {boxes[index].tolist()} has x2 < x1 or y2 < y1")
    area1 = box_area(boxes1)
    area2 = box_area(boxes2)
    lt = torch.max(boxes1[:, None, :2], boxes2[:, :2])
    rb = torch.min(boxes1[:, None, 2:], boxes2[:, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[:, :, 0] * wh[:, :, 1]
    union = area1[:, None] + area2 - inter
    iou = inter / union
    lt_c = torch.min(boxes1[:, None, :2], boxes2[:, :2])
    rb_c = torch.max(boxes1[:, None, 2:], boxes2[:, 2:])
    wh_c = (rb_c - lt_c).clamp(min=0)
    area_c = wh_c[:, :, 0] * wh_c[:, :, 1]
    return iou - (area_c - union) / area_c


def _same_value(a, b) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)) or a.shape != b.shape:
            return False
        return torch.equal(a, b.to(a.device))
    return bool(a == b)


def cat_boxlist(bboxes: Sequence[BoxList]) -> BoxList:
    """Concatenate BoxLists of the same image (same size, mode and field names).

    Per-box fields are concatenated (tensors with ``torch.cat``, lists by extension); per-image fields must be
    equal in every input and are kept once.

    Raises:
        ValueError: empty input, or inputs that differ in image size, mode, field names or per-image values.
        TypeError: an input is not a BoxList.
    """
    if len(bboxes) == 0:
        raise ValueError("cat_boxlist: got an empty list")
    for i, b in enumerate(bboxes):
        if not isinstance(b, BoxList):
            raise TypeError(f"cat_boxlist: item {i} is a {type(b)}, not a BoxList")
    first = bboxes[0]
    fields = set(first.fields())
    for i, b in enumerate(bboxes[1:], start=1):
        if b.size != first.size:
            raise ValueError(f"cat_boxlist: item {i} has image size {b.size}, item 0 has {first.size}")
        if b.mode != first.mode:
            raise ValueError(f"cat_boxlist: item {i} has mode {b.mode}, item 0 has {first.mode}")
        if set(b.fields()) != fields:
            raise ValueError(f"cat_boxlist: item {i} has fields {sorted(b.fields())}, item 0 has {sorted(fields)}")
    result = BoxList(torch.cat([b.bbox for b in bboxes], dim=0), first.size, first.mode)
    for field in first.fields():
        values = [b.get_field(field) for b in bboxes]
        per_box = [b.is_per_box_field(field) for b in bboxes]
        merged: Any
        if all(per_box):
            if isinstance(values[0], torch.Tensor):
                merged = torch.cat(values, dim=0)
            else:
                merged = [v for value in values for v in value]
            result.add_field(field, merged, per_box=True)
        elif not any(per_box):
            for i, value in enumerate(values[1:], start=1):
                if not _same_value(values[0], value):
                    raise ValueError(f"cat_boxlist: per-image field {field!r} differs between item 0 and item {i}")
            result.add_field(field, values[0], per_box=False)
        else:
            raise ValueError(f"cat_boxlist: field {field!r} is per-box in some inputs and per-image in others")
    return result


def remove_small_boxes(boxlist: BoxList, min_size: float) -> BoxList:
    """Keep boxes whose width and height (+1 convention) are both >= ``min_size``."""
    _, _, ws, hs = boxlist.convert("xywh").bbox.unbind(dim=1)
    keep = ((ws >= min_size) & (hs >= min_size)).nonzero().squeeze(1)
    return boxlist[keep]


def boxlist_nms(boxlist: BoxList, nms_thresh: float, max_proposals: int = -1, score_field: str = "scores") -> BoxList:
    """Non-maximum suppression on a BoxList (class-agnostic, +1 area convention).

    Args:
        boxlist: boxes with a score field.
        nms_thresh: IoU threshold; <= 0 disables NMS (the input is returned).
        max_proposals: keep at most this many boxes (in the order returned by ``nms``), -1 = all.
        score_field: name of the score field.
    """
    if nms_thresh <= 0 or len(boxlist) == 0:
        return boxlist
    from maskrcnn_benchmark.layers import nms

    mode = boxlist.mode
    boxlist = boxlist.convert("xyxy")
    keep = nms(boxlist.bbox, boxlist.get_field(score_field), nms_thresh)
    if max_proposals > 0:
        keep = keep[:max_proposals]
    return boxlist[keep].convert(mode)


def boxlist_ml_nms(
    boxlist: BoxList,
    nms_thresh: float,
    max_proposals: int = -1,
    score_field: str = "scores",
    label_field: str = "labels",
) -> BoxList:
    """Class-aware ("multi-label") NMS: boxes only suppress boxes of the same label (+1 area convention).

    Args: as :func:`boxlist_nms`, plus ``label_field``, the name of the label field.
    """
    if nms_thresh <= 0 or len(boxlist) == 0:
        return boxlist
    from maskrcnn_benchmark.layers import ml_nms

    mode = boxlist.mode
    boxlist = boxlist.convert("xyxy")
    keep = ml_nms(boxlist.bbox, boxlist.get_field(score_field), boxlist.get_field(label_field), nms_thresh)
    if max_proposals > 0:
        keep = keep[:max_proposals]
    return boxlist[keep].convert(mode)
