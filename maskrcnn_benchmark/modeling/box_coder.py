"""Upstream's import path of the box coder: ``from maskrcnn_benchmark.modeling.box_coder import BoxCoder``.

The class lives with the head that uses it, in :mod:`maskrcnn_benchmark.modeling.rpn.box_coder`; this module
re-exports it so scripts and tests written for maskrcnn-benchmark / GLIP / FIBER import it unchanged.
"""

from .rpn.box_coder import DEFAULT_BBOX_XFORM_CLIP, DEFAULT_WEIGHTS, BoxCoder

__all__ = ["BoxCoder", "DEFAULT_WEIGHTS", "DEFAULT_BBOX_XFORM_CLIP"]
