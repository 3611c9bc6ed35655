"""Greedy non-maximum suppression with the legacy "+1" pixel convention (upstream-facts.md section 8).

Boxes are ``xyxy`` with inclusive pixel ends: width = x2 - x1 + 1, height = y2 - y1 + 1, and the
intersection of two boxes uses the same +1. A box j is suppressed by a kept, higher-scored box i when
IoU(i, j) > iou_threshold. Ties in score are broken by index (lower index first) in every implementation.

Implementations (``impl=``): "compiled" (``maskrcnn_benchmark._C``, CPU and CUDA), "torch"
(``torchvision.ops.nms`` on boxes shifted to ``[x1, y1, x2 + 1, y2 + 1]``, which is the +1 convention exactly,
or a pure-torch greedy loop when torchvision is missing) and "auto" (compiled when built for the device).
float16/bfloat16 boxes are compared in float32.
"""

import logging

import torch

from . import _ext

logger = logging.getLogger(__name__)

__all__ = ["ml_nms", "nms"]

try:
    import torchvision.ops as _tv_ops
except ImportError:  # torchvision is optional for this op
    _tv_ops = None


def _check_inputs(op: str, boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor | None) -> None:
    if not isinstance(boxes, torch.Tensor) or not isinstance(scores, torch.Tensor):
        raise TypeError(f"{op}: boxes and scores must be tensors, got {type(boxes)} and {type(scores)}")
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{op}: boxes must have shape [N, 4], got {tuple(boxes.shape)}")
    if scores.dim() != 1 or scores.shape[0] != boxes.shape[0]:
        raise ValueError(f"{op}: scores must have shape [N] with N={boxes.shape[0]}, got {tuple(scores.shape)}")
    if not boxes.is_floating_point():
        raise TypeError(f"{op}: boxes must be floating point, got {boxes.dtype}")
    if scores.device != boxes.device:
        raise ValueError(f"{op}: boxes on {boxes.device} but scores on {scores.device}")
    if labels is not None:
        if labels.dim() != 1 or labels.shape[0] != boxes.shape[0]:
            raise ValueError(f"{op}: labels must have shape [N] with N={boxes.shape[0]}, got {tuple(labels.shape)}")
        if labels.device != boxes.device:
            raise ValueError(f"{op}: boxes on {boxes.device} but labels on {labels.device}")


def _working_dtype(boxes: torch.Tensor) -> torch.Tensor:
    """float16/bfloat16 boxes are compared in float32 (the kernels support float32 and float64)."""
    if boxes.dtype in (torch.float16, torch.bfloat16):
        return boxes.float()
    return boxes


def _stable_order(scores: torch.Tensor) -> torch.Tensor:
    return torch.sort(scores, descending=True, stable=True).indices


def _greedy_loop(boxes: torch.Tensor, order: torch.Tensor, labels: torch.Tensor | None,
                 iou_threshold: float) -> torch.Tensor:
    """Pure-torch greedy NMS over boxes already in processing order; returns kept positions in that order."""
    n = boxes.shape[0]
    x1, y1, x2, y2 = boxes.unbind(1)
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    suppressed = torch.zeros(n, dtype=torch.bool, device=boxes.device)
    kept = []
    for i in range(n):
        if bool(suppressed[i]):
            continue
        kept.append(i)
        width = (torch.minimum(x2[i], x2) - torch.maximum(x1[i], x1) + 1).clamp(min=0)
        height = (torch.minimum(y2[i], y2) - torch.maximum(y1[i], y1) + 1).clamp(min=0)
        inter = width * height
        iou = inter / (areas[i] + areas - inter)
        over = iou > iou_threshold
        if labels is not None:
            over &= labels == labels[i]
        over[: i + 1] = False
        suppressed |= over
    return order[torch.tensor(kept, dtype=torch.long, device=boxes.device)]


def _nms_torch(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    order = _stable_order(scores)
    sorted_boxes = boxes[order]
    if _tv_ops is not None:
        shifted = sorted_boxes.clone()
        shifted[:, 2:] += 1
        # Strictly decreasing surrogate scores make torchvision follow our stable order exactly.
        rank = torch.arange(order.numel(), 0, -1, dtype=shifted.dtype, device=shifted.device)
        keep = _tv_ops.nms(shifted, rank, iou_threshold)
        return order[keep]
    return _greedy_loop(sorted_boxes, order, None, iou_threshold)


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, impl: str = "auto") -> torch.Tensor:
    """Greedy NMS with the +1 area convention.

    Args:
        boxes (Tensor[N, 4]): xyxy boxes, inclusive pixel ends (+1 convention); float16/32/64.
        scores (Tensor[N]): box scores (higher first).
        iou_threshold (float): boxes with IoU > threshold to a kept, higher-scored box are dropped.
        impl (str): "auto", "compiled" or "torch".

    Returns:
        Tensor[K] int64: indices of kept boxes, sorted by decreasing score (ties: lower index first), on the
        boxes' device.
    """
    _check_inputs("nms", boxes, scores, None)
    if boxes.shape[0] == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    work = _working_dtype(boxes)
    scores = scores.to(work.dtype) if scores.dtype in (torch.float16, torch.bfloat16) else scores
    if _ext.select_impl("nms", impl, boxes.device) == "compiled":
        return _ext.get_extension().nms(work, scores, float(iou_threshold))
    return _nms_torch(work, scores, float(iou_threshold))


def _ml_nms_torch(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor,
                  iou_threshold: float) -> torch.Tensor:
    if _tv_ops is None:
        order = _stable_order(scores)
        keep = _greedy_loop(boxes[order], order, labels[order], iou_threshold)
        return torch.sort(keep).values
    # Per-label torchvision NMS on the exact coordinates (no coordinate-offset trick, which would lose float
    # precision and change IoUs near the threshold).
    kept = []
    for label in torch.unique(labels):
        idx = torch.nonzero(labels == label).squeeze(1)
        kept.append(idx[_nms_torch(boxes[idx], scores[idx], iou_threshold)])
    return torch.sort(torch.cat(kept)).values


def ml_nms(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, iou_threshold: float,
           impl: str = "auto") -> torch.Tensor:
    """Class-aware ("multi-label") greedy NMS with the +1 area convention: boxes of different labels never
    suppress each other.

    Args:
        boxes (Tensor[N, 4]): xyxy boxes, inclusive pixel ends (+1 convention); float16/32/64.
        scores (Tensor[N]): box scores.
        labels (Tensor[N]): integer (or integral float, as upstream passes them) class labels.
        iou_threshold (float): suppression threshold on IoU (strictly greater suppresses).
        impl (str): "auto", "compiled" or "torch".

    Returns:
        Tensor[K] int64: indices of kept boxes SORTED ASCENDING (by index, not by score), on the boxes' device.
    """
    _check_inputs("ml_nms", boxes, scores, labels)
    if boxes.shape[0] == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    work = _working_dtype(boxes)
    scores = scores.to(work.dtype) if scores.dtype in (torch.float16, torch.bfloat16) else scores
    labels = labels.long() if labels.is_floating_point() else labels
    # UPSTREAM-QUIRK: section 8 - upstream's ml_nms returns the kept indices sorted ascending, not by score.
    if _ext.select_impl("ml_nms", impl, boxes.device) == "compiled":
        return _ext.get_extension().ml_nms(work, scores, labels, float(iou_threshold))
    return _ml_nms_torch(work, scores, labels, float(iou_threshold))
