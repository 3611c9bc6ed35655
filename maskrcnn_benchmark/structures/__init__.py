"""Typed structures: :class:`BoxList` (boxes + fields of one image), :class:`ImageList` (padded image batch)
and box operations."""

from maskrcnn_benchmark.structures.bounding_box import FLIP_LEFT_RIGHT, FLIP_TOP_BOTTOM, BoxList
from maskrcnn_benchmark.structures.boxlist_ops import (
    boxlist_iou,
    boxlist_ml_nms,
    boxlist_nms,
    cat_boxlist,
    generalized_box_iou,
    remove_small_boxes,
)
from maskrcnn_benchmark.structures.image_list import ImageList, to_image_list

__all__ = [
    "BoxList",
    "FLIP_LEFT_RIGHT",
    "FLIP_TOP_BOTTOM",
    "ImageList",
    "to_image_list",
    "boxlist_iou",
    "boxlist_ml_nms",
    "boxlist_nms",
    "cat_boxlist",
    "generalized_box_iou",
    "remove_small_boxes",
]
