"""Image backbones: Swin body + FPN, and FIBER's fusion backbone (Swin x RoBERTa).

Importing this package registers ``SWINT-FPN-RETINANET`` in :data:`~maskrcnn_benchmark.modeling.registry.BACKBONES`.
"""

from maskrcnn_benchmark.modeling.backbone import fpn, swin  # noqa: F401
from maskrcnn_benchmark.modeling.backbone.fusion_backbone import (  # noqa: F401
    FusionBackbone,
    ImagePrefix,
    TextPrefix,
    build_fusion_backbone,
    build_swint_fpn_retinanet,
)
from maskrcnn_benchmark.modeling.registry import BACKBONES

__all__ = ["build_backbone", "build_fusion_backbone", "FusionBackbone", "ImagePrefix", "TextPrefix"]


def build_backbone(cfg):
    """Build the image backbone named by ``MODEL.BACKBONE.CONV_BODY`` (``Sequential(body, fpn)``)."""
    return BACKBONES.get(cfg.MODEL.BACKBONE.CONV_BODY)(cfg)
