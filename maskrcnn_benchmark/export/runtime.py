"""Run an exported FIBER graph with onnxruntime behind the detector's test-time interface.

:class:`OnnxDetector` loads a file written by :func:`~maskrcnn_benchmark.export.onnx_export.export_onnx` and
stands in for a ``GeneralizedVLRCNN`` at test time: it tokenises the captions (the same tokenizer call as the
model), pads the batch to the graph's canvas, runs the session for the head's raw outputs, and hands them to
the package's own post-processing (``AnchorGenerator`` + ``ATSSPostProcessor``: box decoding, per-label token
scores, thresholds, class-aware NMS). So ``Predictor(cfg, model=OnnxDetector(path))`` (or
:func:`onnx_predictor`) gives the same :class:`~maskrcnn_benchmark.engine.predictor.Detections` as the
PyTorch model with ``pad_mode="canvas"`` and the same canvas.

Example::

    from maskrcnn_benchmark.export import onnx_predictor

    predictor = onnx_predictor("fiber_coco.onnx")          # config and canvas read from the file
    dets = predictor.predict("street.jpg", ["person", "bicycle", "car"], threshold=0.5)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from maskrcnn_benchmark.modeling.detector.chunked_prompts import merge_per_image
from maskrcnn_benchmark.modeling.language_backbone.tokenizer import CaptionTokenizerMixin
from maskrcnn_benchmark.modeling.rpn import BoxCoder, build_anchor_generator, build_atss_postprocessor
from maskrcnn_benchmark.modeling.rpn.vl_head import HeadOutputs, split_positive_map
from maskrcnn_benchmark.structures.bounding_box import BoxList
from maskrcnn_benchmark.structures.image_list import to_image_list

from .graph import INPUT_NAMES, OUTPUT_KINDS, output_names
from .onnx_export import METADATA_CONFIG, METADATA_IMAGE_SIZE, METADATA_LEVELS

__all__ = ["OnnxDetector", "RawOutputPostProcessor", "onnx_predictor", "config_from_metadata"]

logger = logging.getLogger(__name__)


def config_from_metadata(metadata: Mapping[str, str], source: str):
    """The config stored in an exported file's metadata, merged onto the defaults and validated."""
    import yaml

    from maskrcnn_benchmark.config import get_cfg, validate_config

    if METADATA_CONFIG not in metadata:
        raise ValueError(f"{source}: the ONNX file holds no '{METADATA_CONFIG}' metadata (it was not written by "
                         f"tools/export_onnx.py); pass the config with cfg=")
    cfg = get_cfg()
    cfg.merge_from_dict(yaml.safe_load(metadata[METADATA_CONFIG]), source=f"{source} (metadata)")
    validate_config(cfg)
    return cfg


class RawOutputPostProcessor(nn.Module):
    """What ``VLDyHeadModule`` does after its head at test time: anchors for every level, then detections.

    Args:
        anchor_generator: the config's ``AnchorGenerator``.
        post_processor: the config's ``ATSSPostProcessor``.
    """

    def __init__(self, anchor_generator: nn.Module, post_processor: nn.Module):
        super().__init__()
        self.anchor_generator = anchor_generator
        self.post_processor = post_processor

    @classmethod
    def from_config(cls, cfg) -> RawOutputPostProcessor:
        return cls(build_anchor_generator(cfg), build_atss_postprocessor(cfg, BoxCoder()))

    def forward(self, outputs: HeadOutputs, image_sizes: Sequence[tuple[int, int]],
                label_to_tokens: Mapping[int, Sequence[int]], num_slots: int | None = None) -> list[BoxList]:
        """Detections of a batch from raw outputs (see ``ATSSPostProcessor.forward``)."""
        anchors = self.anchor_generator(outputs.box_regression)  # reads each level's (H, W) only
        return self.post_processor(outputs.box_regression, outputs.centerness, outputs.dot_product_logits,
                                   anchors, image_sizes, label_to_tokens, num_slots)


class OnnxDetector(CaptionTokenizerMixin, nn.Module):
    """A ``GeneralizedVLRCNN`` stand-in for inference, backed by an onnxruntime session.

    Args:
        path: an ONNX file from ``tools/export_onnx.py``.
        cfg: the config (default: the one stored in the file). Post-processing keys (``MODEL.ATSS.*``,
            ``TEST.MDETR_STYLE_AGGREGATE_CLASS_NUM``) may differ from the export's; the network must not.
        providers: onnxruntime execution providers (default ``["CPUExecutionProvider"]``).
        num_threads: onnxruntime intra-op threads (default: onnxruntime's choice).

    Attributes:
        image_size: (height, width) canvas of the graph; batches are zero-padded to it.
        rpn: the post-processing (:class:`RawOutputPostProcessor`, with ``post_processor`` as in the model).
    """

    def __init__(self, path: str, cfg=None, providers: Sequence[str] | None = None, num_threads: int | None = None):
        super().__init__()
        self.path = os.fspath(path)
        self.session = self._open_session(self.path, providers, num_threads)
        metadata = self.session.get_modelmeta().custom_metadata_map
        self.cfg = cfg if cfg is not None else config_from_metadata(metadata, self.path)
        height, width = (int(v) for v in metadata.get(METADATA_IMAGE_SIZE, "0,0").split(","))
        self.image_size = (height, width)
        self.num_levels = int(metadata.get(METADATA_LEVELS, len(self.cfg.MODEL.RPN.ANCHOR_STRIDE)))
        self._check_signature()
        self._init_caption_tokenizer(self.cfg.MODEL.LANGUAGE_BACKBONE)
        self.rpn = RawOutputPostProcessor.from_config(self.cfg)
        self.eval()

    @staticmethod
    def _open_session(path: str, providers, num_threads):
        try:
            import onnxruntime
        except ImportError as e:
            raise ImportError("OnnxDetector needs onnxruntime: pip install onnxruntime") from e
        if not os.path.isfile(path):
            raise FileNotFoundError(f"ONNX file {path} does not exist")
        options = onnxruntime.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = int(num_threads)
        return onnxruntime.InferenceSession(path, sess_options=options,
                                            providers=list(providers or ["CPUExecutionProvider"]))

    def _check_signature(self) -> None:
        inputs = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        if inputs != list(INPUT_NAMES) or outputs != output_names(self.num_levels):
            raise ValueError(f"{self.path}: inputs {inputs} / outputs {outputs} are not those of an exported FIBER "
                             f"graph ({list(INPUT_NAMES)} / {output_names(self.num_levels)})")
        if min(self.image_size) <= 0:
            shape = self.session.get_inputs()[0].shape
            self.image_size = (int(shape[2]), int(shape[3]))


    # --------------------------------------------------------------------------------------------- network
    @property
    def device(self) -> torch.device:
        """Where results are returned (the device of the post-processing buffers; the session runs apart)."""
        return self.rpn.anchor_generator.cell_anchors[0].device

    def _to_canvas(self, tensors: torch.Tensor) -> torch.Tensor:
        height, width = tensors.shape[-2:]
        canvas_h, canvas_w = self.image_size
        if height > canvas_h or width > canvas_w:
            raise ValueError(f"images of {height}x{width} (after resizing and padding) do not fit the {canvas_h}x"
                             f"{canvas_w} canvas of {self.path}; export with a larger --image-size")
        return F.pad(tensors, (0, canvas_w - width, 0, canvas_h - height))

    def raw_outputs(self, images: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
                    ) -> HeadOutputs:
        """The session's outputs as torch tensors on :attr:`device` (``tower_features`` is empty).

        Args:
            images (Tensor[B, 3, h, w]): padded batch, at most the canvas (zero-padded to it here).
            input_ids, attention_mask (Tensor[B, L]): tokenised captions, one per image.
        """
        if input_ids.shape[0] != images.shape[0]:
            raise ValueError(f"got {input_ids.shape[0]} captions for {images.shape[0]} images")
        feeds = {"images": self._to_canvas(images.detach().float().cpu()).numpy(),
                 "input_ids": input_ids.detach().cpu().long().numpy(),
                 "attention_mask": attention_mask.detach().cpu().long().numpy()}
        values = [torch.from_numpy(np.asarray(v)).to(self.device) for v in self.session.run(None, feeds)]
        per_kind = {kind: values[index::len(OUTPUT_KINDS)] for index, kind in enumerate(OUTPUT_KINDS)}
        return HeadOutputs(per_kind["box_regression"], per_kind["centerness"], per_kind["dot_product_logits"], [])

    def forward(self, images, targets=None, captions: Sequence[str] | None = None, positive_map=None,
                tokenizer_input: Mapping[str, torch.Tensor] | None = None) -> list[BoxList]:
        """``GeneralizedVLRCNN.forward`` at test time: one BoxList (fields "labels", "scores") per image."""
        if targets is not None or self.training:
            raise ValueError("OnnxDetector runs inference only (no targets, eval mode)")
        images = to_image_list(images)
        if tokenizer_input is None:
            if captions is None or len(captions) != len(images.image_sizes):
                raise ValueError("OnnxDetector needs one caption per image (or tokenizer_input)")
            tokenizer_input = self.tokenize(captions)
        _, label_to_tokens = split_positive_map(positive_map, None, training=False)
        outputs = self.raw_outputs(images.tensors, tokenizer_input["input_ids"], tokenizer_input["attention_mask"])
        return self.rpn(outputs, images.image_sizes, label_to_tokens)

    @torch.no_grad()
    def detect_prompts(self, images, plans: Sequence[Any], *, reuse_prefix: bool = True,
                       chunk_batch: int | None = None, precision: str | None = None,
                       check_label_slots: bool = True) -> list[BoxList]:
        """``GeneralizedVLRCNN.detect_prompts`` on the session: every plan (prompt chunk) on every image.

        Args:
            images (ImageList or Tensor[B, 3, H, W]): normalised BGR images, padded (to at most the canvas).
            plans: prompts with ``caption`` and ``token_map`` (``{global label: [token index]}``).
            reuse_prefix, chunk_batch: accepted for the same call; the graph is one whole network pass, so each
                plan runs as one session run over the batch.
            precision: None, "fp32" or "tf32" (the graph is float32; no half precision).
            check_label_slots: labels must lie in the configured label slots; False lets any label through.

        Returns:
            one BoxList per image (xyxy, the image's size before padding), fields "labels" (the plans' global
            labels) and "scores": every plan's detections, concatenated in plan order.
        """
        del reuse_prefix, chunk_batch
        if precision not in (None, "fp32", "tf32"):  # the graph is float32 (tf32 only changes CUDA matmuls)
            raise ValueError(f"the ONNX graph runs in float32; precision {precision!r} is not available")
        if not plans:
            raise ValueError("detect_prompts: no prompt given")
        images = to_image_list(images)
        label_maps = [split_positive_map(plan.token_map, None, training=False)[1] for plan in plans]
        num_slots = None if check_label_slots else max([self.rpn.post_processor.num_slots]
                                                       + [max(m, default=0) for m in label_maps])
        per_plan = []
        for plan, label_map in zip(plans, label_maps):
            text = self.tokenize([plan.caption] * len(images.image_sizes))
            outputs = self.raw_outputs(images.tensors, text["input_ids"], text["attention_mask"])
            per_plan.append(self.rpn(outputs, images.image_sizes, label_map, num_slots))
        return merge_per_image(per_plan)

    def extra_repr(self) -> str:
        return f"path={self.path!r}, image_size={self.image_size}, providers={self.session.get_providers()}"


def onnx_predictor(path: str, cfg=None, providers: Sequence[str] | None = None, num_threads: int | None = None,
                   **predictor_kwargs):
    """A :class:`~maskrcnn_benchmark.engine.predictor.Predictor` on an :class:`OnnxDetector`.

    Images are padded to the graph's canvas (``pad_mode="canvas"``); other keyword arguments go to the
    Predictor (``batch_size``, ``opts`` are not allowed: the config is the file's or ``cfg``).
    """
    from maskrcnn_benchmark.engine.predictor import Predictor

    detector = OnnxDetector(path, cfg=cfg, providers=providers, num_threads=num_threads)
    predictor_kwargs.setdefault("pad_mode", "canvas")
    predictor_kwargs.setdefault("canvas_size", detector.image_size)
    return Predictor(detector.cfg, model=detector, device="cpu", **predictor_kwargs)
