"""The dense VL head of FIBER: DyHead tower, anchors, box coder, ATSS losses and post-processing.

Importing this package registers ``"VLDYHEAD"`` in :data:`maskrcnn_benchmark.modeling.registry.RPN_ARCHITECTURES`.
"""

from maskrcnn_benchmark.modeling.registry import RPN_ARCHITECTURES

from .anchor_generator import AnchorGenerator, build_anchor_generator
from .box_coder import BoxCoder
from .dyhead import DyConv, DyReLU, build_dyhead_tower
from .inference import ATSSPostProcessor, build_atss_postprocessor
from .loss import VLATSSLoss, atss_assign, build_vl_atss_loss
from .vl_head import HeadOutputs, VLDyHead, VLDyHeadModule, build_vldyhead_module, split_positive_map

__all__ = [
    "AnchorGenerator", "build_anchor_generator", "BoxCoder", "DyConv", "DyReLU", "build_dyhead_tower",
    "ATSSPostProcessor", "build_atss_postprocessor", "VLATSSLoss", "atss_assign", "build_vl_atss_loss",
    "HeadOutputs", "VLDyHead", "VLDyHeadModule", "build_vldyhead_module", "split_positive_map", "build_rpn",
]


def build_rpn(cfg):
    """The head selected by ``MODEL.RPN_ARCHITECTURE`` (FIBER: ``"VLDYHEAD"``)."""
    return RPN_ARCHITECTURES.get(cfg.MODEL.RPN_ARCHITECTURE)(cfg)
