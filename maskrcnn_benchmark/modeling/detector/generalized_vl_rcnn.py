"""``GeneralizedVLRCNN``: FIBER's detector (upstream ``modeling/detector/generalized_vl_rcnn.py``, fusion mode).

Data flow (upstream-facts.md 1.1): images (+ captions, tokenised here) -> fusion backbone (Swin x RoBERTa with
cross-attention, then FPN) -> FPN maps P3..P7 and the text features -> the VL head (``rpn``) -> losses in
training, one ``BoxList`` per image at test. State-dict prefixes are upstream's: ``fusion_backbone.`` and ``rpn.``.
"""

import logging
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from maskrcnn_benchmark.modeling.backbone import build_fusion_backbone
from maskrcnn_benchmark.modeling.backbone.fusion_backbone import TextPrefix
from maskrcnn_benchmark.modeling.language_backbone.tokenizer import CaptionTokenizerMixin
from maskrcnn_benchmark.modeling.registry import META_ARCHITECTURES
from maskrcnn_benchmark.modeling.rpn import build_rpn
from maskrcnn_benchmark.modeling.rpn.vl_head import split_positive_map
from maskrcnn_benchmark.structures.bounding_box import BoxList
from maskrcnn_benchmark.structures.image_list import ImageList, to_image_list

from .chunked_prompts import (
    COMPILE_MODES,
    PRECISIONS,
    TextPrefixCache,
    auto_chunk_batch,
    merge_per_image,
    precision_context,
    sample_bytes,
)

__all__ = ["GeneralizedVLRCNN", "phrases_for_labels"]

logger = logging.getLogger(__name__)

# Head parameters that stay trainable with MODEL.LINEAR_PROB (upstream's list of name fragments).
_LINEAR_PROB_TRAINABLE = ("bbox_pred", "centerness", "dot_product_projection_text", "head.log_scale",
                          "head.bias_lang", "head.bias0")


def _freeze(module: nn.Module) -> None:
    """Put ``module`` in eval mode and stop its gradients."""
    module.eval()
    for parameter in module.parameters():
        parameter.requires_grad_(False)


@META_ARCHITECTURES.register("GeneralizedVLRCNN")
class GeneralizedVLRCNN(CaptionTokenizerMixin, nn.Module):
    """Grounded detector: fusion backbone + VL DyHead/ATSS head.

    Args:
        cfg: the merged config (read at build time; ``MODEL.LANGUAGE_BACKBONE.TOKENIZER_TYPE`` is loaded lazily,
            the first time raw captions arrive).

    Attributes:
        fusion_backbone: ``forward(tokenizer_input, images) -> (FPN maps P3..P7, language dict)``.
        rpn: the ``VLDyHeadModule``.
    """

    def __init__(self, cfg):
        super().__init__()
        if not cfg.MODEL.RPN_ONLY:
            raise ValueError("GeneralizedVLRCNN supports MODEL.RPN_ONLY True only (FIBER has no ROI heads)")
        language = cfg.MODEL.LANGUAGE_BACKBONE
        if language.MASK_SPECIAL:
            raise ValueError("MODEL.LANGUAGE_BACKBONE.MASK_SPECIAL True is not supported (every FIBER config sets "
                             "False)")
        self._init_caption_tokenizer(language)
        self.freeze_backbone_body = cfg.MODEL.BACKBONE.FREEZE
        self.freeze_fpn = cfg.MODEL.FPN.FREEZE
        self.freeze_language_backbone = language.FREEZE
        self.freeze_rpn = cfg.MODEL.RPN.FREEZE
        self.linear_prob = cfg.MODEL.LINEAR_PROB
        self.chunk_batch = int(cfg.TEST.CHUNK_BATCH)
        self.precision = str(cfg.TEST.PRECISION)
        if self.precision not in PRECISIONS:
            raise ValueError(f"TEST.PRECISION must be one of {PRECISIONS}, got {self.precision!r}")
        self.head_channels = int(cfg.MODEL.DYHEAD.CHANNELS)
        self.compile_mode = str(cfg.TEST.COMPILE)
        if self.compile_mode not in COMPILE_MODES:
            raise ValueError(f"TEST.COMPILE must be one of {COMPILE_MODES}, got {self.compile_mode!r}")
        self._compiled: dict[str, Callable] = {}
        self._text_cache = TextPrefixCache()
        self.fusion_backbone = build_fusion_backbone(cfg)
        self.rpn = build_rpn(cfg)
        self._apply_freezing()

    # ------------------------------------------------------------------------------------------- text input
    def _text_input(self, captions, tokenizer_input, targets, batch_size: int, device) -> dict[str, torch.Tensor]:
        if tokenizer_input is not None:
            return {key: tokenizer_input[key].to(device) for key in ("input_ids", "attention_mask")}
        if captions is None and targets is not None and all(t.has_field("caption") for t in targets):
            captions = [t.get_field("caption") for t in targets]
        if captions is None:
            raise ValueError("GeneralizedVLRCNN needs captions (or tokenizer_input, or targets with a 'caption' "
                             "field)")
        if len(captions) != batch_size:
            raise ValueError(f"got {len(captions)} captions for {batch_size} images")
        return self.tokenize(captions, device)

    # ---------------------------------------------------------------------------------------------- forward
    def forward(self, images, targets: Sequence[BoxList] | None = None, captions: Sequence[str] | None = None,
                positive_map=None, tokenizer_input: Mapping[str, torch.Tensor] | None = None):
        """Run the detector.

        Args:
            images (ImageList or Tensor[B, 3, H, W] or list of Tensor[3, H_i, W_i]): normalised BGR images.
            targets: training only, one BoxList (xyxy) per image with a "labels" field (and "caption").
            captions: one prompt per image (taken from the targets' "caption" field when omitted).
            positive_map: training: binary Tensor[total boxes, L]; test: ``{label: [token index]}`` (or a
                Tensor[P, L], row p -> label p + 1).
            tokenizer_input: pre-tokenised ``{"input_ids", "attention_mask"}`` (Tensor[B, L]); skips the tokenizer.

        Returns:
            training: dict of losses (``loss_reg``, ``loss_centerness``, ``loss_cls``, ``loss_dot_product_token``);
            test: list of BoxList (fields "labels", "scores") in the (resized) input image's coordinates.
        """
        if self.training and targets is None:
            raise ValueError("in training mode targets must be given")
        images = to_image_list(images)
        device = images.tensors.device
        if targets is not None:
            targets = [target.to(device) for target in targets]
        text = self._text_input(captions, tokenizer_input, targets, len(images.image_sizes), device)
        features, language_dict = self.fusion_backbone(text, images)
        detections, losses, _ = self.rpn(images, features, targets, language_dict, positive_map, captions)
        return losses if self.training else detections

    # ------------------------------------------------------------------------------------ chunked prompts
    def detect_prompts(self, images, plans: Sequence, *, reuse_prefix: bool = True, chunk_batch: int | None = None,
                       precision: str | None = None, check_label_slots: bool = True) -> list[BoxList]:
        """Detect every prompt (chunk) in every image of a batch; the test-time entry point for class lists.

        Evaluation (``engine/inference.py``) and the ``Predictor`` call this. The model needs to be in eval mode.

        Args:
            images (ImageList, or Tensor[B, 3, H, W]): normalised BGR images, padded (to a multiple of 32);
                moved to the model's device.
            plans: the prompts, each with ``caption`` (str) and ``token_map`` (``{global label: [token index]}``),
                e.g. the ``PromptPlan`` chunks of ``data/prompts.py``; every plan runs on every image.
            reuse_prefix: True: the caption-independent image prefix runs once per batch, each caption's
                pre-fusion text layers once per model and weights (cached across calls), and ``chunk_batch``
                plans run as one batch; False: the naive schedule, one full forward pass per plan (upstream's).
            chunk_batch: plans per batch with ``reuse_prefix`` (None: ``TEST.CHUNK_BATCH``; 0: as many as fit
                in half the free memory).
            precision: "fp32", "tf32", "bf16" or "fp16" (None: ``TEST.PRECISION``).
            check_label_slots: labels must lie in the configured label slots (``TEST.MDETR_STYLE_AGGREGATE_
                CLASS_NUM`` or 80), as upstream; False lets any label through (user class lists).

        Returns:
            one BoxList per image (xyxy, the image's size before padding) with fields "labels" (int64, the
            plans' global labels) and "scores" (float32): every plan's detections, concatenated in plan order
            (no NMS across plans, as upstream).
        """
        if self.training:
            raise RuntimeError("detect_prompts runs in eval mode; call model.eval() first")
        if not plans:
            raise ValueError("detect_prompts: no prompt given")
        device = next(self.parameters()).device
        images = to_image_list(images).to(device)
        label_maps = [split_positive_map(plan.token_map, None, training=False)[1] for plan in plans]
        num_slots = None if check_label_slots else max([self.rpn.post_processor.num_slots]
                                                       + [max(m, default=0) for m in label_maps])
        precision = precision or self.precision
        with torch.no_grad(), precision_context(precision, device):
            if not reuse_prefix:
                per_plan = [self._full_pass(images, plan.caption, label_map, num_slots)
                            for plan, label_map in zip(plans, label_maps)]
            else:
                batch = self.chunk_batch if chunk_batch is None else int(chunk_batch)
                per_plan = self._prefix_passes(images, [plan.caption for plan in plans], label_maps, batch,
                                               precision, num_slots)
        return merge_per_image(per_plan)

    def _full_pass(self, images: ImageList, caption: str, label_map, num_slots) -> list[BoxList]:
        """One complete forward pass for one prompt (the naive schedule)."""
        text = self.tokenize([caption] * len(images.image_sizes), images.tensors.device)
        features, language_dict = self.fusion_backbone(text, images)
        return self.rpn.detect_per_prompt(images.image_sizes, features, language_dict, [label_map], num_slots)[0]

    def _prefix_passes(self, images: ImageList, captions: Sequence[str], label_maps, chunk_batch: int,
                       precision: str, num_slots) -> list[list[BoxList]]:
        """The image prefix once, cached text prefixes, then ``chunk_batch`` prompts per fused pass."""
        device = images.tensors.device
        num_images = len(images.image_sizes)
        if chunk_batch < 0:
            raise ValueError(f"TEST.CHUNK_BATCH must be >= 0, got {chunk_batch}")
        if chunk_batch == 0:
            element = 2 if precision in ("bf16", "fp16") else 4
            per_sample = sample_bytes(tuple(images.tensors.shape[-2:]), self.head_channels, element)
            chunk_batch = auto_chunk_batch(len(captions), num_images, per_sample, device)
        image_prefix = self._backbone_step("forward_image_prefix")(images.tensors)
        texts = [self._text_cache.get(self, caption, device, precision) for caption in captions]
        results: list[list[BoxList]] = []
        for start in range(0, len(captions), chunk_batch):
            group = slice(start, start + chunk_batch)
            text = TextPrefix.stack(texts[group], num_images)
            prefix = image_prefix.tile(text.batch_size // num_images)
            features, language_dict = self._backbone_step("forward_from_prefix")(prefix, text)
            results += self.rpn.detect_per_prompt(images.image_sizes, features, language_dict, label_maps[group],
                                                  num_slots)
        return results

    def _backbone_step(self, name: str) -> Callable:
        """A fusion-backbone method, compiled with ``torch.compile`` when ``TEST.COMPILE`` names a mode.

        Only the image prefix and the caption-dependent backbone pass are compiled (transformer blocks, no
        custom kernels); the DyHead's deformable convolutions are compiled ops that torch.compile cannot trace.
        """
        method = getattr(self.fusion_backbone, name)
        if not self.compile_mode:
            return method
        if name not in self._compiled:
            self._compiled[name] = torch.compile(method, mode=None if self.compile_mode == "default"
                                                 else self.compile_mode)
        return self._compiled[name]

    # --------------------------------------------------------------------------------------------- freezing
    def train(self, mode: bool = True) -> "GeneralizedVLRCNN":
        """Switch mode, then re-apply the configured freezing (frozen parts stay in eval mode)."""
        super().train(mode)
        if mode:
            self._text_cache.clear()
        self._apply_freezing()
        return self

    def _apply_freezing(self) -> None:
        backbone = self.fusion_backbone.backbone
        if self.freeze_backbone_body:
            _freeze(backbone.body)
        if self.freeze_fpn:
            _freeze(backbone.fpn)
        if self.freeze_language_backbone:
            _freeze(self.fusion_backbone.language_backbone)
        if self.freeze_rpn:
            _freeze(self.rpn)
        if self.linear_prob:
            self._freeze_for_linear_probe()
        self.rpn.head.freeze_cls_logits()

    def _freeze_for_linear_probe(self) -> None:
        for name, parameter in self.fusion_backbone.named_parameters():
            if not name.startswith("tunable_linear"):
                parameter.requires_grad_(False)
        for name, parameter in self.rpn.named_parameters():
            if not any(fragment in name for fragment in _LINEAR_PROB_TRAINABLE):
                parameter.requires_grad_(False)


def phrases_for_labels(labels, caption: str, label_to_spans: Mapping[int, Sequence[tuple[int, int]]]) -> list[str]:
    """The caption text each predicted label stands for.

    Args:
        labels (Tensor[N] int64 or sequence of int): predicted labels (e.g. a result's "labels" field).
        caption: the prompt.
        label_to_spans: ``{label: [(start, end), ...]}`` character spans of each label in the caption
            (e.g. a grounding sample's ``tokens_positive_eval``, row p -> label p + 1).

    Returns:
        one string per label: its spans' text joined by a space ("" for a label without spans).
    """
    phrases = []
    for label in (labels.tolist() if isinstance(labels, torch.Tensor) else labels):
        spans = label_to_spans.get(int(label), ())
        phrases.append(" ".join(caption[int(start):int(end)] for start, end in spans))
    return phrases
