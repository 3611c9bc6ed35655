"""Detectors. ``build_detection_model(cfg)`` picks the class registered under ``MODEL.META_ARCHITECTURE``."""

from maskrcnn_benchmark.modeling.registry import META_ARCHITECTURES

from .generalized_vl_rcnn import GeneralizedVLRCNN, phrases_for_labels

__all__ = ["build_detection_model", "GeneralizedVLRCNN", "phrases_for_labels"]


def build_detection_model(cfg):
    """The detector of ``MODEL.META_ARCHITECTURE`` (FIBER: ``"GeneralizedVLRCNN"``), built from ``cfg``."""
    return META_ARCHITECTURES.get(cfg.MODEL.META_ARCHITECTURE)(cfg)
