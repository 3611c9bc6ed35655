"""The DyHead tower of FIBER's VL head (upstream ``modeling/rpn/vldyhead.py`` ``DyConv``, ``layers/dyrelu.py``).

Paper: "Dynamic Head: Unifying Object Detection Heads with Attentions" (Dai et al., CVPR 2021).
FIBER runs the pure-vision form (no early fusion): a stack of ``DyConv`` blocks, each mixing every FPN level
with its finer and coarser neighbours through modulated deformable 3x3 convolutions (offsets predicted from
the level itself), a scale attention, and a dynamic ReLU (upstream-facts.md 1.10). State-dict names follow
upstream: ``DyConv.{0,1,2}.conv/bn``, ``AttnConv.1``, ``relu.fc.{0,2}``, ``offset``.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from maskrcnn_benchmark.layers import ModulatedDeformConv

__all__ = ["HSigmoid", "DyReLU", "Conv3x3Norm", "DyConv", "build_dyhead_tower"]

# Deformable 3x3 kernel: 9 taps, each with a (dy, dx) offset pair and one modulation scalar.
_NUM_TAPS = 9
_OFFSET_CHANNELS = 2 * _NUM_TAPS


class HSigmoid(nn.Module):
    """Hard sigmoid ``relu6(x + 3) / 6``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(x + 3.0) / 6.0


class DyReLU(nn.Module):
    """Dynamic ReLU with channel-wise coefficients from the global context (no spatial branch).

    ``out = max(x * a1 + b1, x * a2 + b2)`` where ``(a1, b1, a2, b2)`` per channel come from
    ``Linear -> ReLU -> Linear -> hsigmoid`` on the global average pool, recentred so that at a neutral
    hsigmoid output of 0.5 the function is the plain ReLU (``a1 = 1, a2 = 0, b = 0``).

    Args:
        channels: input and output channels C.
        reduction: the squeeze width is ``C // reduction``.
    """

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        self.channels = channels
        squeeze = channels // reduction
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(nn.Linear(channels, squeeze), nn.ReLU(inplace=True),
                                nn.Linear(squeeze, 4 * channels), HSigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x (Tensor[B, C, H, W]). Returns: Tensor[B, C, H, W]."""
        batch, channels = x.shape[:2]
        coeffs = self.fc(self.avg_pool(x).view(batch, channels)).view(batch, 4 * channels, 1, 1)
        a1, b1, a2, b2 = torch.split(coeffs, channels, dim=1)
        a1 = (a1 - 0.5) * 2.0 + 1.0
        a2 = (a2 - 0.5) * 2.0
        b1 = b1 - 0.5
        b2 = b2 - 0.5
        return torch.max(x * a1 + b1, x * a2 + b2)


class Conv3x3Norm(nn.Module):
    """Modulated deformable 3x3 convolution (padding 1, with bias) followed by GroupNorm.

    Args:
        in_channels, out_channels: channel counts.
        stride: 1 or 2.
        num_groups: GroupNorm groups (``MODEL.GROUP_NORM.NUM_GROUPS``).
        eps: GroupNorm epsilon.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, num_groups: int, eps: float = 1e-5):
        super().__init__()
        self.conv = ModulatedDeformConv(in_channels, out_channels, kernel_size=3, stride=stride, padding=1,
                                        bias=True)
        self.bn = nn.GroupNorm(num_groups=num_groups, num_channels=out_channels, eps=eps)

    def forward(self, x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Args: x (Tensor[B, C, H, W]), offset (Tensor[B, 18, H', W']), mask (Tensor[B, 9, H', W'])."""
        return self.bn(self.conv(x, offset, mask))


class DyConv(nn.Module):
    """One DyHead block over all FPN levels.

    ``DyConv[0]`` (stride 1) reads the next coarser level, ``DyConv[1]`` (stride 1) the level itself and
    ``DyConv[2]`` (stride 2) the next finer level; all three share the offsets and masks predicted from the
    level itself. Their outputs are weighted by the scale attention, averaged, and passed through DyReLU.

    Args:
        in_channels, out_channels: channel counts (equal in FIBER).
        num_groups: GroupNorm groups.
        eps: GroupNorm epsilon.
        zero_init_offsets: start the ``offset`` conv at zero (offsets 0, masks 0.5), as DCNv2 and the original
            DyHead do, instead of upstream's PyTorch default init (``MODEL.DYHEAD.ZERO_INIT_OFFSETS``).
    """

    def __init__(self, in_channels: int, out_channels: int, num_groups: int, eps: float = 1e-5,
                 zero_init_offsets: bool = False):
        super().__init__()
        self.DyConv = nn.ModuleList([Conv3x3Norm(in_channels, out_channels, 1, num_groups, eps),
                                     Conv3x3Norm(in_channels, out_channels, 1, num_groups, eps),
                                     Conv3x3Norm(in_channels, out_channels, 2, num_groups, eps)])
        self.AttnConv = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(in_channels, 1, kernel_size=1),
                                      nn.ReLU(inplace=True), HSigmoid())
        self.relu = DyReLU(out_channels)
        self.offset = nn.Conv2d(in_channels, _OFFSET_CHANNELS + _NUM_TAPS, kernel_size=3, stride=1, padding=1)
        self._init_weights(zero_init_offsets)

    def _init_weights(self, zero_init_offsets: bool) -> None:
        # Only plain Conv2d modules inside DyConv/AttnConv are re-initialised (the deformable convs are not
        # nn.Conv2d and keep their own reset); the offset conv keeps PyTorch's default init, as upstream's
        # VLDyHead, unless zero_init_offsets. Random offsets are harmless under a released checkpoint, but a
        # head trained from scratch starts with offsets of a few pixels that grow with the FPN features.
        for module in list(self.DyConv.modules()) + list(self.AttnConv.modules()):
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, mean=0.0, std=0.01)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        if zero_init_offsets:
            nn.init.zeros_(self.offset.weight)
            nn.init.zeros_(self.offset.bias)

    def _level_terms(self, features: Sequence[torch.Tensor], level: int) -> list[torch.Tensor]:
        """The same-level, finer-level and coarser-level convolutions for one level."""
        feature = features[level]
        offset_mask = self.offset(feature)
        offset = offset_mask[:, :_OFFSET_CHANNELS]
        mask = offset_mask[:, _OFFSET_CHANNELS:].sigmoid()
        terms = [self.DyConv[1](feature, offset, mask)]
        if level > 0:
            terms.append(self.DyConv[2](features[level - 1], offset, mask))
        if level < len(features) - 1:
            # UPSTREAM-QUIRK: 1.10 - offsets predicted at this level's resolution drive a convolution whose
            # output has the coarser level's size; ModulatedDeformConv reinterprets the offset buffer like
            # upstream's CUDA kernel does.
            coarser = self.DyConv[0](features[level + 1], offset, mask)
            terms.append(F.interpolate(coarser, size=feature.shape[-2:], mode="bilinear", align_corners=True))
        return terms

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Args: features: per level Tensor[B, C, H_l, W_l]. Returns: list of the same shapes."""
        outputs = []
        for level in range(len(features)):
            terms = self._level_terms(features, level)
            weighted = [term * self.AttnConv(term) for term in terms]
            outputs.append(self.relu(torch.stack(weighted).mean(dim=0)))
        return outputs


class DyHeadTower(nn.Sequential):
    """``num_convs`` DyConv blocks applied one after the other to the list of FPN levels."""

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        features = list(features)
        for block in self:
            features = block(features)
        return features


def build_dyhead_tower(in_channels: int, channels: int, num_convs: int, num_groups: int,
                       eps: float = 1e-5, zero_init_offsets: bool = False) -> DyHeadTower:
    """The FIBER tower: ``num_convs`` DyConv blocks (GroupNorm, deformable convs, DyReLU, scale attention).

    Args:
        in_channels: FPN output channels (``MODEL.BACKBONE.OUT_CHANNELS``).
        channels: tower width (``MODEL.DYHEAD.CHANNELS``).
        num_convs: number of blocks (``MODEL.DYHEAD.NUM_CONVS``).
        num_groups: GroupNorm groups (``MODEL.GROUP_NORM.NUM_GROUPS``).
        eps: GroupNorm epsilon (``MODEL.GROUP_NORM.EPSILON``).
        zero_init_offsets: zero-initialise every block's offset conv (``MODEL.DYHEAD.ZERO_INIT_OFFSETS``).
    """
    if num_convs < 1:
        raise ValueError(f"MODEL.DYHEAD.NUM_CONVS must be >= 1, got {num_convs}")
    if in_channels != channels:
        # Upstream silently turns the first block into a plain conv + ReLU block in that case.
        raise ValueError(f"MODEL.DYHEAD.CHANNELS ({channels}) must equal MODEL.BACKBONE.OUT_CHANNELS "
                         f"({in_channels}): the DyHead tower keeps the FPN width")
    blocks = [DyConv(channels, channels, num_groups, eps, zero_init_offsets) for _ in range(num_convs)]
    return DyHeadTower(*blocks)
