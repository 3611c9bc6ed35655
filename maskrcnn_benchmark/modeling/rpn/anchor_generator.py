"""Anchors of the VL ATSS head (upstream ``modeling/rpn/anchor_generator.py``, ``make_anchor_generator_complex``).

Legacy Detectron generation (upstream-facts.md 1.12): a base window ``[0, 0, stride - 1, stride - 1]`` is
reshaped to each aspect ratio (rounded), then scaled to each size, keeping the centre ``(stride - 1) / 2``.
Anchors are xyxy with the +1 pixel convention. For FIBER: one square anchor of ``8 * stride`` per location,
e.g. ``[-28, -28, 35, 35]`` at cell (0, 0) of the stride-8 level.
"""

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["generate_cell_anchors", "AnchorGenerator", "anchor_sizes_per_level", "build_anchor_generator"]


def _ratio_enum(base: torch.Tensor, aspect_ratios: Sequence[float]) -> torch.Tensor:
    """Windows of the same area as ``base`` (xyxy, +1 convention) for each aspect ratio (h / w)."""
    width = base[2] - base[0] + 1
    height = base[3] - base[1] + 1
    ctr_x = base[0] + 0.5 * (width - 1)
    ctr_y = base[1] + 0.5 * (height - 1)
    ratios = torch.tensor(aspect_ratios, dtype=torch.float64)
    widths = torch.round(torch.sqrt(width * height / ratios))
    heights = torch.round(widths * ratios)
    return _windows(ctr_x, ctr_y, widths, heights)


def _windows(ctr_x, ctr_y, widths: torch.Tensor, heights: torch.Tensor) -> torch.Tensor:
    """xyxy windows (+1 convention) of the given sizes around one centre, ``Tensor[K, 4]``."""
    return torch.stack(
        (ctr_x - 0.5 * (widths - 1), ctr_y - 0.5 * (heights - 1),
         ctr_x + 0.5 * (widths - 1), ctr_y + 0.5 * (heights - 1)), dim=1)


def generate_cell_anchors(stride: int, sizes: Sequence[float], aspect_ratios: Sequence[float]) -> torch.Tensor:
    """Anchors of one feature-map cell at the origin.

    Args:
        stride: the level's stride in pixels.
        sizes: anchor side lengths (sqrt of the area) for this level.
        aspect_ratios: height / width ratios.

    Returns:
        Tensor[len(aspect_ratios) * len(sizes), 4] float32, xyxy (+1 convention), ratio-major order.
    """
    base = torch.tensor([0.0, 0.0, stride - 1.0, stride - 1.0], dtype=torch.float64)
    scales = torch.tensor(sizes, dtype=torch.float64) / stride
    rows = []
    for window in _ratio_enum(base, aspect_ratios):
        width = window[2] - window[0] + 1
        height = window[3] - window[1] + 1
        ctr_x = window[0] + 0.5 * (width - 1)
        ctr_y = window[1] + 0.5 * (height - 1)
        rows.append(_windows(ctr_x, ctr_y, width * scales, height * scales))
    return torch.cat(rows, dim=0).to(torch.float32)


def anchor_sizes_per_level(anchor_sizes: Sequence[float], octave: float,
                           scales_per_octave: int) -> list[tuple[float, ...]]:
    """One tuple of sizes per FPN level: ``size * octave ** (j / scales_per_octave)`` for each scale j."""
    return [tuple(size * octave ** (j / float(scales_per_octave)) for j in range(scales_per_octave))
            for size in anchor_sizes]


class _CellAnchors(nn.Module):
    """Holds one ``cell_anchors.{i}`` buffer per level (state-dict names as upstream's BufferList)."""

    def __init__(self, cells: Sequence[torch.Tensor]):
        super().__init__()
        for index, cell in enumerate(cells):
            self.register_buffer(str(index), cell)

    def __len__(self) -> int:
        return len(self._buffers)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self._buffers[str(index)]


class AnchorGenerator(nn.Module):
    """Anchors for every location of every FPN level.

    Args:
        sizes_per_level: anchor sizes of each level (one tuple per level).
        aspect_ratios: height / width ratios, shared by all levels.
        strides: the stride of each level, in pixels.
    """

    def __init__(self, sizes_per_level: Sequence[Sequence[float]], aspect_ratios: Sequence[float],
                 strides: Sequence[int]):
        super().__init__()
        if len(sizes_per_level) != len(strides):
            raise ValueError(f"one anchor size group per FPN level is needed: got {len(sizes_per_level)} size "
                             f"groups (MODEL.RPN.ANCHOR_SIZES) for {len(strides)} strides (MODEL.RPN.ANCHOR_STRIDE)")
        self.strides = tuple(int(s) for s in strides)
        self.cell_anchors = _CellAnchors([generate_cell_anchors(stride, sizes, aspect_ratios)
                                          for stride, sizes in zip(self.strides, sizes_per_level)])

    def num_anchors_per_location(self) -> list[int]:
        """Anchors per location of each level."""
        return [self.cell_anchors[i].shape[0] for i in range(len(self.cell_anchors))]

    def grid_anchors(self, grid_sizes: Sequence[tuple[int, int]]) -> list[torch.Tensor]:
        """Anchors of feature maps of the given (height, width) sizes.

        Returns:
            list of Tensor[H*W*A, 4] float32, xyxy (+1 convention); order rows (y), then columns (x), then A.
        """
        if len(grid_sizes) != len(self.strides):
            raise ValueError(f"got {len(grid_sizes)} feature maps for {len(self.strides)} anchor strides")
        anchors = []
        for index, ((height, width), stride) in enumerate(zip(grid_sizes, self.strides)):
            cell = self.cell_anchors[index]
            shifts_x = torch.arange(0, width * stride, step=stride, dtype=torch.float32, device=cell.device)
            shifts_y = torch.arange(0, height * stride, step=stride, dtype=torch.float32, device=cell.device)
            shift_y, shift_x = torch.meshgrid(shifts_y, shifts_x, indexing="ij")
            shift_x, shift_y = shift_x.reshape(-1), shift_y.reshape(-1)
            shifts = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=1)
            anchors.append((shifts[:, None, :] + cell[None, :, :]).reshape(-1, 4))
        return anchors

    def forward(self, feature_maps: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Anchors for a batch's feature maps (the same for every image of the padded batch).

        Args:
            feature_maps: per level Tensor[B, C, H, W].

        Returns:
            list of Tensor[H*W*A, 4] per level, on the feature maps' device.
        """
        grid_sizes = [tuple(f.shape[-2:]) for f in feature_maps]
        return [a.to(feature_maps[0].device) for a in self.grid_anchors(grid_sizes)]


def build_anchor_generator(cfg) -> AnchorGenerator:
    """``AnchorGenerator`` from ``MODEL.RPN`` (ANCHOR_SIZES, ANCHOR_STRIDE, ASPECT_RATIOS, OCTAVE,
    SCALES_PER_OCTAVE); FIBER uses the FPN form (``MODEL.RPN.USE_FPN`` True, one size per level)."""
    rpn = cfg.MODEL.RPN
    if not rpn.USE_FPN:
        raise ValueError("MODEL.RPN.USE_FPN must be True for the VLDYHEAD head (one anchor size per FPN level)")
    sizes = anchor_sizes_per_level(rpn.ANCHOR_SIZES, rpn.OCTAVE, rpn.SCALES_PER_OCTAVE)
    return AnchorGenerator(sizes, rpn.ASPECT_RATIOS, rpn.ANCHOR_STRIDE)
