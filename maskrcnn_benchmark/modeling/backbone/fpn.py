"""Feature pyramid (Lin et al., "Feature Pyramid Networks for Object Detection", 2017) with DropBlock and P6/P7.

Upstream file: ``fine_grained/maskrcnn_benchmark/modeling/backbone/fpn.py`` (maskrcnn-benchmark, MIT) and
GLIP's ``layers/dropblock.py``. Our own implementation of the FIBER configuration (upstream-facts.md 1.9):
1x1 laterals ``fpn_inner{k}`` and 3x3 outputs ``fpn_layer{k}`` (k = 1-based index of the input level, levels
with 0 channels are skipped), nearest top-down upsampling to the lateral's exact size, DropBlock on the merged
maps below the top level in training, and ``top_blocks`` = :class:`LastLevelP6P7`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["DropBlock2D", "LastLevelP6P7", "FPN", "conv_kaiming_uniform"]

logger = logging.getLogger(__name__)


def conv_kaiming_uniform(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> nn.Conv2d:
    """Plain Conv2d with bias, "same" padding, kaiming_uniform(a=1) weights and zero bias."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=True)
    nn.init.kaiming_uniform_(conv.weight, a=1)
    nn.init.zeros_(conv.bias)
    return conv


class DropBlock2D(nn.Module):
    """DropBlock (Ghiasi et al., 2018): drop square blocks of a feature map, shared across channels.

    In training, block centres are sampled per sample and position with probability
    ``gamma = drop_prob / block_size**2``, grown to ``block_size`` squares by max-pooling, and the kept
    activations are rescaled by ``mask.numel() / mask.sum()``. Identity in eval mode or with ``drop_prob == 0``.

    Args:
        drop_prob: probability used for gamma.
        block_size: side of the dropped squares.
    """

    def __init__(self, drop_prob: float, block_size: int):
        super().__init__()
        if not 0.0 <= drop_prob <= 1.0:
            raise ValueError(f"drop_prob must be in [0, 1], got {drop_prob}")
        if block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {block_size}")
        self.drop_prob, self.block_size = drop_prob, block_size

    def forward(self, x: Tensor) -> Tensor:
        """
        Args:
            x (Tensor[B, C, H, W]).

        Returns:
            Tensor[B, C, H, W].
        """
        if not self.training or self.drop_prob == 0.0:
            return x
        gamma = self.drop_prob / self.block_size ** 2
        seeds = (torch.rand(x.shape[0], *x.shape[2:], device=x.device) < gamma).to(x.dtype)
        dropped = F.max_pool2d(seeds[:, None], kernel_size=self.block_size, stride=1,
                               padding=self.block_size // 2)
        if self.block_size % 2 == 0:
            dropped = dropped[:, :, :-1, :-1]
        keep = 1.0 - dropped.squeeze(1)  # [B, H, W]
        return x * keep[:, None] * (keep.numel() / keep.sum().clamp(min=1.0))

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}, block_size={self.block_size}"


class LastLevelP6P7(nn.Module):
    """P6 = conv3x3/2 on P5 (on C5 when the widths differ), P7 = conv3x3/2 on ReLU(P6)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.p6 = conv_kaiming_uniform(in_channels, out_channels, 3, 2)
        self.p7 = conv_kaiming_uniform(out_channels, out_channels, 3, 2)
        self.use_p5 = in_channels == out_channels

    def forward(self, c5: Tensor, p5: Tensor) -> list[Tensor]:
        p6 = self.p6(p5 if self.use_p5 else c5)
        return [p6, self.p7(F.relu(p6))]


class FPN(nn.Module):
    """Top-down feature pyramid.

    Args:
        in_channels_list: channels of each input level, finest first; 0 skips a level (FIBER:
            [0, 256, 512, 1024], the stride-4 map is not used).
        out_channels: pyramid width.
        top_blocks: extra coarser levels (:class:`LastLevelP6P7`) or None.
        drop_block: applied in training to merged maps below the top level, before their 3x3 conv.
    """

    def __init__(self, in_channels_list: Sequence[int], out_channels: int,
                 top_blocks: LastLevelP6P7 | None = None, drop_block: DropBlock2D | None = None):
        super().__init__()
        self.levels: list[int] = []  # indices into the input list that have a lateral
        for idx, in_channels in enumerate(in_channels_list):
            if in_channels == 0:
                continue
            self.add_module(f"fpn_inner{idx + 1}", conv_kaiming_uniform(in_channels, out_channels, 1))
            self.add_module(f"fpn_layer{idx + 1}", conv_kaiming_uniform(out_channels, out_channels, 3))
            self.levels.append(idx)
        if not self.levels:
            raise ValueError("FPN needs at least one input level with channels > 0")
        self.top_blocks = top_blocks
        self.drop_block = drop_block

    def forward(self, features: Sequence[Tensor]) -> tuple[Tensor, ...]:
        """
        Args:
            features: one map per entry of ``in_channels_list`` (skipped levels may hold anything).

        Returns:
            tuple of maps [B, out_channels, H_l, W_l], finest first (FIBER: P3, P4, P5, P6, P7).
        """
        top = self.levels[-1]
        merged = getattr(self, f"fpn_inner{top + 1}")(features[top])
        results = [getattr(self, f"fpn_layer{top + 1}")(merged)]
        for idx in reversed(self.levels[:-1]):
            lateral = getattr(self, f"fpn_inner{idx + 1}")(features[idx])
            if lateral.shape[-2:] != merged.shape[-2:]:
                merged = F.interpolate(merged, size=lateral.shape[-2:], mode="nearest")
            merged = lateral + merged
            if self.drop_block is not None and self.training:
                results.insert(0, getattr(self, f"fpn_layer{idx + 1}")(self.drop_block(merged)))
            else:
                results.insert(0, getattr(self, f"fpn_layer{idx + 1}")(merged))
        if self.top_blocks is not None:
            results.extend(self.top_blocks(features[top], results[-1]))
        return tuple(results)
