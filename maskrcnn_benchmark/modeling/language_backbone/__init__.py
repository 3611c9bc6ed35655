"""Text encoders and tokenizer loading.

Importing this package registers ``roberta-fused-v2`` in
:data:`~maskrcnn_benchmark.modeling.registry.LANGUAGE_BACKBONES`.
"""

from maskrcnn_benchmark.modeling.language_backbone import roberta  # noqa: F401
from maskrcnn_benchmark.modeling.language_backbone.tokenizer import build_tokenizer, write_local_bpe_tokenizer  # noqa: F401
from maskrcnn_benchmark.modeling.registry import LANGUAGE_BACKBONES

__all__ = ["build_language_backbone", "build_tokenizer", "write_local_bpe_tokenizer"]


def build_language_backbone(cfg):
    """Build the text encoder named by ``MODEL.LANGUAGE_BACKBONE.MODEL_TYPE`` (``Sequential(body=...)``)."""
    return LANGUAGE_BACKBONES.get(cfg.MODEL.LANGUAGE_BACKBONE.MODEL_TYPE)(cfg)
