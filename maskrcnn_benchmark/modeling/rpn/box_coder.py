"""Box coder of the VL ATSS head (upstream ``modeling/rpn/vldyhead.py`` ``BoxCoder``).

Boxes are xyxy with the legacy +1 pixel convention: a box's width is ``x2 - x1 + 1`` and its centre is
``(x1 + x2) / 2``. Deltas are ``(dx, dy, dw, dh)`` scaled by the weights ``(10, 10, 5, 5)``
(upstream-facts.md 1.13).
"""

import math

import torch

__all__ = ["BoxCoder", "DEFAULT_WEIGHTS", "DEFAULT_BBOX_XFORM_CLIP"]

DEFAULT_WEIGHTS = (10.0, 10.0, 5.0, 5.0)
# Largest log-scale change of a box side allowed when decoding: a box grows at most 1000/16 times its anchor.
DEFAULT_BBOX_XFORM_CLIP = math.log(1000.0 / 16)


def _centre_size(boxes: torch.Tensor):
    """Split xyxy boxes ``Tensor[N, 4]`` (+1 convention) into centre x, centre y, width, height."""
    widths = boxes[:, 2] - boxes[:, 0] + 1
    heights = boxes[:, 3] - boxes[:, 1] + 1
    ctr_x = (boxes[:, 2] + boxes[:, 0]) / 2
    ctr_y = (boxes[:, 3] + boxes[:, 1]) / 2
    return ctr_x, ctr_y, widths, heights


class BoxCoder:
    """Encodes boxes as deltas relative to anchors, and decodes deltas back to boxes.

    Args:
        weights: ``(wx, wy, ww, wh)`` multipliers of the deltas.
        bbox_xform_clip: upper clamp of the decoded ``dw``/``dh`` (after dividing by the weights).
    """

    def __init__(self, weights=DEFAULT_WEIGHTS, bbox_xform_clip: float = DEFAULT_BBOX_XFORM_CLIP):
        if len(weights) != 4:
            raise ValueError(f"BoxCoder needs 4 weights (wx, wy, ww, wh), got {tuple(weights)}")
        self.weights = tuple(float(w) for w in weights)
        self.bbox_xform_clip = float(bbox_xform_clip)

    def encode(self, gt_boxes: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
        """Deltas that turn each anchor into its ground-truth box.

        Args:
            gt_boxes (Tensor[N, 4]): target boxes, xyxy, +1 convention.
            anchors (Tensor[N, 4]): anchors, xyxy, +1 convention, paired row by row with ``gt_boxes``.

        Returns:
            Tensor[N, 4]: ``(dx, dy, dw, dh)`` weighted deltas. An empty input gives an empty output.
        """
        if gt_boxes.shape != anchors.shape:
            raise ValueError(f"encode: gt_boxes {tuple(gt_boxes.shape)} and anchors {tuple(anchors.shape)} differ")
        if gt_boxes.numel() == 0:
            return torch.zeros_like(anchors)
        wx, wy, ww, wh = self.weights
        a_x, a_y, a_w, a_h = _centre_size(anchors)
        g_x, g_y, g_w, g_h = _centre_size(gt_boxes)
        dx = wx * (g_x - a_x) / a_w
        dy = wy * (g_y - a_y) / a_h
        dw = ww * torch.log(g_w / a_w)
        dh = wh * torch.log(g_h / a_h)
        return torch.stack((dx, dy, dw, dh), dim=1)

    def decode(self, deltas: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
        """Boxes obtained by applying ``deltas`` to ``anchors``.

        Args:
            deltas (Tensor[N, 4K]): weighted ``(dx, dy, dw, dh)``, K >= 1 groups per anchor (upstream's
                class-specific form; the VL head uses K = 1).
            anchors (Tensor[N, 4]): anchors, xyxy, +1 convention.

        Returns:
            Tensor[N, 4K]: decoded xyxy boxes (+1 convention), in ``deltas``' dtype.
        """
        if deltas.dim() != 2 or deltas.shape[0] != anchors.shape[0] or deltas.shape[-1] % 4 or not deltas.shape[-1]:
            raise ValueError(f"decode: deltas {tuple(deltas.shape)} do not pair with anchors {tuple(anchors.shape)}"
                             " (expected [N, 4K])")
        anchors = anchors.to(deltas.dtype)
        wx, wy, ww, wh = self.weights
        a_x, a_y, a_w, a_h = (t[:, None] for t in _centre_size(anchors))
        dx = deltas[:, 0::4] / wx
        dy = deltas[:, 1::4] / wy
        dw = (deltas[:, 2::4] / ww).clamp(max=self.bbox_xform_clip)
        dh = (deltas[:, 3::4] / wh).clamp(max=self.bbox_xform_clip)
        ctr_x = dx * a_w + a_x
        ctr_y = dy * a_h + a_y
        half_w = (torch.exp(dw) * a_w - 1) / 2
        half_h = (torch.exp(dh) * a_h - 1) / 2
        boxes = torch.stack((ctr_x - half_w, ctr_y - half_h, ctr_x + half_w, ctr_y + half_h), dim=2)
        return boxes.reshape(deltas.shape)
