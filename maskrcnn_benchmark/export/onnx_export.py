"""Export FIBER's network (:class:`~maskrcnn_benchmark.export.graph.DetectorGraph`) to ONNX at opset 19.

The graph maps ``images`` Tensor[B, 3, H, W] (normalised BGR, padded), ``input_ids`` and ``attention_mask``
LongTensor[B, L] to the head's raw outputs per FPN level. It uses standard ONNX operators only:

- the DyHead's modulated deformable convolutions become ONNX ``DeformConv`` (opset 19; same (dy, dx) offset
  layout and mask as DCNv2), translated from ``torchvision::deform_conv2d``. The coarser-level offset
  reinterpretation (UPSTREAM-QUIRK, upstream-facts.md 1.10) is computed before the op, in
  ``layers/deform_conv.py``, so it is traced into the graph as Reshape/Slice/Reshape of each image's offset and
  mask buffers and the exported graph keeps it exactly;
- GroupNorm, LayerNorm, attention, Resize (bilinear, align_corners) and the rest map to their ONNX operators.

Dynamic axes: the batch ``B`` and the caption length ``L`` (2 .. the position-embedding limit, 512 for
RoBERTa). The image size is fixed when exporting (``image_size``, a canvas every image is padded to, as the
Predictor's ``pad_mode="canvas"``): the Swin body pads every stage to a multiple of its window, builds the
shifted-window masks and merges patches with sizes that are piecewise functions of H and W (ceil-divisions and
remainders modulo the window), and with symbolic H and W ``torch.export`` did not get through the first
Swin stage of the tiny model in 25 minutes (its symbolic shape engine kept simplifying nested floor-divisions
in ``window_reverse``). A fixed canvas exports in a few minutes and runs every image size that fits in it.

The config the model was built from and the canvas size are stored in the ONNX file's metadata, so that
:class:`~maskrcnn_benchmark.export.runtime.OnnxDetector` needs nothing but the file.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import torch
from torch import nn

from maskrcnn_benchmark.utils.atomic_io import atomic_write

from .graph import INPUT_NAMES, DetectorGraph, deform_conv_impl, output_names

__all__ = ["OPSET", "METADATA_CONFIG", "METADATA_IMAGE_SIZE", "METADATA_LEVELS", "ExportInfo", "export_onnx",
           "default_image_size", "max_caption_length", "sample_inputs"]

logger = logging.getLogger(__name__)

#: ONNX opset of the exported graph (the first with ``DeformConv``).
OPSET = 19
METADATA_CONFIG = "maskrcnn_benchmark.config"
METADATA_IMAGE_SIZE = "maskrcnn_benchmark.image_size"
METADATA_LEVELS = "maskrcnn_benchmark.num_levels"


@dataclass
class ExportInfo:
    """What :func:`export_onnx` wrote.

    Attributes:
        path: the ONNX file.
        image_size: (height, width) of the canvas the graph takes.
        num_levels: FPN levels (3 outputs each).
        max_caption_length: the longest ``L`` the graph accepts.
        seconds: export wall time.
        num_bytes: file size.
    """

    path: str
    image_size: tuple[int, int]
    num_levels: int
    max_caption_length: int
    seconds: float
    num_bytes: int


def default_image_size(cfg) -> tuple[int, int]:
    """A square of ``INPUT.MAX_SIZE_TEST`` rounded up to ``DATALOADER.SIZE_DIVISIBILITY`` (fits every image
    the test transforms produce; the Predictor's default canvas)."""
    side = int(cfg.INPUT.MAX_SIZE_TEST)
    divisibility = int(cfg.DATALOADER.SIZE_DIVISIBILITY)
    if divisibility > 0:
        side = int(math.ceil(side / divisibility) * divisibility)
    return side, side


def max_caption_length(cfg) -> int:
    """The longest caption (in tokens) the text encoder's position embeddings allow (512 for RoBERTa)."""
    language = cfg.MODEL.LANGUAGE_BACKBONE
    return int(language.MAX_POSITION_EMBEDDINGS) - int(language.PAD_TOKEN_ID) - 1


def _check_image_size(cfg, image_size) -> tuple[int, int]:
    if len(image_size) != 2:
        raise ValueError(f"image_size must be (height, width), got {image_size!r}")
    height, width = int(image_size[0]), int(image_size[1])
    divisibility = max(int(cfg.DATALOADER.SIZE_DIVISIBILITY), 1)
    if height <= 0 or width <= 0 or height % divisibility or width % divisibility:
        raise ValueError(f"image_size {height}x{width} must be positive multiples of DATALOADER.SIZE_DIVISIBILITY "
                         f"({divisibility})")
    return height, width


def sample_inputs(cfg, image_size: tuple[int, int], batch: int = 2, length: int | None = None,
                  seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random images and token ids of the right shapes and dtypes: ``(images, input_ids, attention_mask)``.

    ``input_ids`` start with ``<s>`` (0), end with ``</s>`` (2) and hold random ids from the vocabulary between.
    """
    generator = torch.Generator().manual_seed(seed)
    language = cfg.MODEL.LANGUAGE_BACKBONE
    length = int(length or language.MAX_QUERY_LEN)
    images = torch.randn((batch, 3) + tuple(image_size), generator=generator)
    input_ids = torch.randint(4, int(language.VOCAB_SIZE) - 1, (batch, length), generator=generator)
    input_ids[:, 0], input_ids[:, -1] = 0, 2
    return images, input_ids, torch.ones_like(input_ids)


def _deform_conv2d_to_onnx(input, weight, offset, mask, bias, stride_h: int, stride_w: int, pad_h: int, pad_w: int,
                           dilation_h: int, dilation_w: int, groups: int, offset_groups: int, use_mask: bool):
    """``torchvision::deform_conv2d`` -> ONNX ``DeformConv`` (opset 19): same layouts, mask optional."""
    from onnxscript import opset19 as op

    attributes = {"dilations": [dilation_h, dilation_w], "group": groups, "offset_group": offset_groups,
                  "pads": [pad_h, pad_w, pad_h, pad_w], "strides": [stride_h, stride_w]}
    if use_mask:
        return op.DeformConv(input, weight, offset, bias, mask, **attributes)
    return op.DeformConv(input, weight, offset, bias, **attributes)


def _dynamic_shapes(cfg, max_batch: int) -> dict:
    from torch.export import Dim

    batch = Dim("batch", min=1, max=max_batch)
    tokens = Dim("tokens", min=2, max=max_caption_length(cfg))
    return {"images": {0: batch}, "input_ids": {0: batch, 1: tokens}, "attention_mask": {0: batch, 1: tokens}}


def _trace(graph: DetectorGraph, cfg, image_size, max_batch: int):
    """torch.export + translation to ONNX; returns the ``onnx.ModelProto``."""
    import torchvision  # noqa: F401  (registers torchvision::deform_conv2d)
    from torch.nn.attention import SDPBackend, sdpa_kernel

    # The math attention kernel gives the traced tensors the strides of its decomposed form: with the CPU
    # flash kernel, views recorded after attention no longer apply once the exporter decomposes it.
    with torch.no_grad(), deform_conv_impl(graph, "torch"), sdpa_kernel(SDPBackend.MATH):
        program = torch.onnx.export(
            graph, sample_inputs(cfg, image_size), dynamo=True, opset_version=OPSET,
            dynamic_shapes=_dynamic_shapes(cfg, max_batch), input_names=list(INPUT_NAMES),
            output_names=output_names(graph.num_levels), external_data=False, verbose=False,
            custom_translation_table={torch.ops.torchvision.deform_conv2d.default: _deform_conv2d_to_onnx})
    return program.model_proto


def export_onnx(model: nn.Module, cfg, path: str, image_size: tuple[int, int] | None = None,
                max_batch: int = 64) -> ExportInfo:
    """Export ``model`` (a ``GeneralizedVLRCNN`` built from ``cfg``, weights loaded) to an ONNX file.

    Args:
        model: the detector; exported in eval mode on the CPU (its mode and device are restored).
        cfg: the config the model was built from (stored in the file's metadata).
        path: the ONNX file to write (atomically).
        image_size: (height, width) canvas, multiples of ``DATALOADER.SIZE_DIVISIBILITY``
            (default :func:`default_image_size`).
        max_batch: the largest batch the graph accepts.

    Returns:
        :class:`ExportInfo`.
    """
    image_size = _check_image_size(cfg, image_size or default_image_size(cfg))
    graph = DetectorGraph(model).eval()
    was_training, device = model.training, next(model.parameters()).device
    model.eval().to("cpu")
    start = time.perf_counter()
    try:
        proto = _trace(graph, cfg, image_size, max_batch)
    finally:
        model.train(was_training).to(device)
    metadata = {METADATA_CONFIG: cfg.dump(), METADATA_IMAGE_SIZE: f"{image_size[0]},{image_size[1]}",
                METADATA_LEVELS: str(graph.num_levels)}
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    data = proto.SerializeToString()
    with atomic_write(path, "wb") as handle:
        handle.write(data)
    seconds = time.perf_counter() - start
    logger.info("exported %s (%.1f MB, canvas %dx%d, opset %d) in %.0f s", path, len(data) / 1e6, *image_size,
                OPSET, seconds)
    return ExportInfo(path, image_size, graph.num_levels, max_caption_length(cfg), seconds, len(data))
