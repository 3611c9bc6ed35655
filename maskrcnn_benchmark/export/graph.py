"""The exportable part of FIBER: images and a tokenised caption in, the VL head's raw outputs out.

:class:`DetectorGraph` wraps a :class:`~maskrcnn_benchmark.modeling.detector.GeneralizedVLRCNN` and runs exactly
the network part of its test-time forward pass (fusion backbone -> FPN -> DyHead tower -> box, centerness and
token-logit predictors). Everything after the head (anchors, box decoding, per-label scores, NMS, the
token-to-label mapping) stays in Python, in the package's own post-processing, which
:class:`~maskrcnn_benchmark.export.runtime.OnnxDetector` runs on the exported graph's outputs.

Outputs, per FPN level ``l`` (0 = P3 ... 4 = P7), in this order (see :func:`output_names`):

- ``box_regression_l`` (Tensor[B, 4, H_l, W_l]): box-coder deltas, already multiplied by the level's scale;
- ``centerness_l`` (Tensor[B, 1, H_l, W_l]): centerness logits;
- ``dot_product_logits_l`` (Tensor[B, H_l*W_l, L]): anchor-token logits (anchors row-major).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from maskrcnn_benchmark.layers import ModulatedDeformConv

__all__ = ["DetectorGraph", "INPUT_NAMES", "OUTPUT_KINDS", "output_names", "deform_conv_impl"]

#: Graph inputs: images Tensor[B, 3, H, W] float32 (normalised BGR, padded), input_ids and attention_mask
#: LongTensor[B, L] (the tokenizer's output).
INPUT_NAMES = ("images", "input_ids", "attention_mask")
#: The three raw outputs of each FPN level, in order.
OUTPUT_KINDS = ("box_regression", "centerness", "dot_product_logits")


def output_names(num_levels: int) -> list[str]:
    """``["box_regression_0", "centerness_0", "dot_product_logits_0", "box_regression_1", ...]``."""
    return [f"{kind}_{level}" for level in range(num_levels) for kind in OUTPUT_KINDS]


@contextlib.contextmanager
def deform_conv_impl(model: nn.Module, impl: str) -> Iterator[None]:
    """Temporarily make every ``ModulatedDeformConv`` of ``model`` use ``impl`` ("torch", "compiled", ...).

    Export needs the torchvision path: ``torchvision::deform_conv2d`` is a registered operator that the
    exporter can trace and translate to ONNX ``DeformConv``; the compiled kernel is an opaque autograd function.
    """
    convs = [m for m in model.modules() if isinstance(m, ModulatedDeformConv)]
    previous = [conv.impl for conv in convs]
    for conv in convs:
        conv.impl = impl
    try:
        yield
    finally:
        for conv, old in zip(convs, previous):
            conv.impl = old


class DetectorGraph(nn.Module):
    """Network part of a ``GeneralizedVLRCNN`` with tensor inputs and a flat tuple of tensor outputs.

    Args:
        model: a ``GeneralizedVLRCNN`` (its ``fusion_backbone`` and ``rpn.head`` are used, in eval mode).
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        for name in ("fusion_backbone", "rpn"):
            if not hasattr(model, name):
                raise TypeError(f"DetectorGraph needs a GeneralizedVLRCNN (with .{name}), got "
                                f"{type(model).__name__}")
        self.model = model

    @property
    def num_levels(self) -> int:
        """Number of FPN levels (one ``Scale`` per level in the head)."""
        return len(self.model.rpn.head.scales)

    def forward(self, images: Tensor, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, ...]:
        """
        Args:
            images (Tensor[B, 3, H, W]): normalised BGR images, H and W multiples of 32.
            input_ids (LongTensor[B, L]), attention_mask (LongTensor[B, L]): the tokenised captions.

        Returns:
            3 * num_levels tensors, named by :func:`output_names` (see the module docstring).
        """
        text = {"input_ids": input_ids, "attention_mask": attention_mask}
        features, language_dict = self.model.fusion_backbone(text, images)
        outputs = self.model.rpn.head(features, language_dict["embedded"])
        flat: list[Tensor] = []
        for box_regression, centerness, logits in zip(outputs.box_regression, outputs.centerness,
                                                      outputs.dot_product_logits):
            flat += [box_regression, centerness, logits]
        return tuple(flat)

    @torch.no_grad()
    def run(self, images: Tensor, input_ids: Tensor, attention_mask: Tensor) -> dict[str, Tensor]:
        """Eager forward returning ``{output name: tensor}`` (the reference the exported graph is checked with)."""
        return dict(zip(output_names(self.num_levels), self(images, input_ids, attention_mask)))
