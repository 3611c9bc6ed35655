"""What :meth:`GeneralizedVLRCNN.detect_prompts` needs besides the model: precisions, the text-prefix cache,
the choice of how many prompt chunks run as one batch, and the per-image merge of chunk detections.

LVIS-style evaluation runs every image under many prompt chunks (31 chunks of 40 class names). FIBER fuses
text into the last backbone blocks, so every chunk needs its own pass through them, but

* the image prefix (patch embedding .. the Swin stage-3 blocks before fusion) does not depend on the caption:
  it runs once per batch of images and is tiled over the chunks;
* the text layers before fusion depend only on the caption, the same for every image: they run once per
  caption for a whole evaluation run (:class:`TextPrefixCache`);
* the caption-dependent rest (fused Swin and RoBERTa blocks, stage 4, FPN, DyHead, head) runs for several
  chunks of the same images as one batch (``TEST.CHUNK_BATCH``; :func:`auto_chunk_batch` picks it from the
  free memory).

The results equal one full forward pass per chunk (upstream's schedule) up to float rounding (see the tests).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch

from maskrcnn_benchmark.layers.deform_conv import reduced_precision_dcn
from maskrcnn_benchmark.structures.bounding_box import BoxList
from maskrcnn_benchmark.structures.boxlist_ops import cat_boxlist

__all__ = ["PRECISIONS", "COMPILE_MODES", "precision_context", "TextPrefixCache", "auto_chunk_batch", "sample_bytes",
           "merge_per_image"]

logger = logging.getLogger(__name__)

#: TEST.PRECISION values: strict float32; float32 with TF32 matmuls/convolutions (CUDA); autocast to bfloat16
#: or float16 (the numerically sensitive parts stay float32, see :func:`precision_context`).
PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
#: TEST.COMPILE values: off, or a torch.compile mode for the backbone passes of detect_prompts.
COMPILE_MODES = ("", "default", "reduce-overhead", "max-autotune")

# Fraction of the free memory that automatic chunk batching may fill, and the most chunks it batches on a CPU
# (where batching saves little and memory is shared with the data loader).
_MEMORY_FRACTION = 0.5
_MAX_CPU_CHUNK_BATCH = 8
# Live activation bytes per sample and per (P3 pixel x head channel), measured on FIBER-B at 800x1344 in
# float32 (the DyHead tower dominates: its inputs, three deformable-conv terms, offsets and column buffers).
_BYTES_PER_P3_CHANNEL = 160


@contextmanager
def precision_context(precision: str, device: torch.device) -> Iterator[None]:
    """Run a block in the given inference precision.

    * ``fp32``: float32; on CUDA with TF32 matmuls and cuDNN convolutions switched off (strict float32).
    * ``tf32``: float32 with TF32 allowed (CUDA only; the same as ``fp32`` on a CPU).
    * ``bf16`` / ``fp16``: ``torch.autocast`` to that dtype. Kept in float32 (and named where they are): layer
      and group norms (autocast's own float32 list), the head's text projection, box deltas and token logits
      (modeling/rpn/vl_head.py) and the post-processing (modeling/rpn/inference.py); attention goes through
      ``scaled_dot_product_attention``, whose softmax accumulates in float32. The
      deformable convolutions keep upstream's float32 on a CPU; on CUDA the compiled kernel runs them in the
      16-bit dtype with float32 sampling coordinates and interpolation (layers/deform_conv.py
      ``reduced_precision_dcn``).

    The previous TF32 switches are restored on exit.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"TEST.PRECISION must be one of {PRECISIONS}, got {precision!r}")
    saved = None
    if device.type == "cuda":
        saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        tf32 = precision == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
    dtype = _AUTOCAST_DTYPES.get(precision)
    try:
        if dtype is None:
            yield
            return
        with torch.autocast(device.type, dtype=dtype), reduced_precision_dcn(True):
            yield
    finally:
        if saved is not None:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _weights_stamp(model) -> tuple:
    """Changes whenever a text-prefix weight is replaced or modified in place (optimizer step, load_state_dict)."""
    backbone = model.fusion_backbone
    parameters = list(backbone.language_backbone.parameters())
    if getattr(backbone, "add_linear_layer", False):
        parameters.append(backbone.tunable_linear.weight)
    return (id(model.tokenizer),) + tuple((p.data_ptr(), p._version) for p in parameters)


class TextPrefixCache:
    """Pre-fusion text states per caption, computed once and reused by every batch of a run.

    Keyed by (caption, device, precision). The cache empties itself when a text weight changes (new
    ``data_ptr`` or in-place ``_version`` bump) or the tokenizer is replaced, so a model trained further, or
    loaded with new weights, never reuses stale text states.
    """

    def __init__(self):
        self._entries: dict[tuple[str, str, str], object] = {}
        self._stamp: tuple | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()
        self._stamp = None

    def get(self, model, caption: str, device: torch.device, precision: str):
        """The :class:`~maskrcnn_benchmark.modeling.backbone.fusion_backbone.TextPrefix` of one caption (batch 1)."""
        stamp = _weights_stamp(model)
        if stamp != self._stamp:
            self._entries.clear()
            self._stamp = stamp
        key = (caption, str(device), precision)
        if key not in self._entries:
            tokens = model.tokenize([caption], device)
            self._entries[key] = model.fusion_backbone.forward_text_prefix(tokens)
        return self._entries[key]


def sample_bytes(padded_hw: tuple[int, int], head_channels: int, element_bytes: int = 4) -> int:
    """Estimated activation bytes of one (image, prompt) sample after the image prefix.

    Args:
        padded_hw: padded image size (height, width).
        head_channels: DyHead width (``MODEL.DYHEAD.CHANNELS``).
        element_bytes: 4 for float32, 2 under bf16 / fp16 autocast.
    """
    p3_pixels = -(-padded_hw[0] // 8) * -(-padded_hw[1] // 8)
    return int(p3_pixels * head_channels * _BYTES_PER_P3_CHANNEL * element_bytes / 4)


def _free_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 4 << 30


def auto_chunk_batch(num_prompts: int, num_images: int, per_sample_bytes: int, device: torch.device) -> int:
    """How many prompts run together when ``TEST.CHUNK_BATCH`` is 0: as many as fill half the free memory.

    Capped at ``num_prompts`` (and at 8 on a CPU); at least 1.
    """
    budget = _free_bytes(device) * _MEMORY_FRACTION
    fit = int(budget // max(1, per_sample_bytes * num_images))
    cap = num_prompts if device.type == "cuda" else min(num_prompts, _MAX_CPU_CHUNK_BATCH)
    return max(1, min(cap, fit))


def merge_per_image(per_prompt: Sequence[Sequence[BoxList]]) -> list[BoxList]:
    """Concatenate, per image, the detections of every prompt (prompt order; no NMS across prompts, as upstream).

    Args:
        per_prompt: per prompt, one BoxList per image.

    Returns:
        one BoxList per image.
    """
    per_image = list(zip(*per_prompt))
    return [parts[0] if len(parts) == 1 else cat_boxlist(list(parts)) for parts in per_image]
