"""FIBER's vision-language ATSS head (upstream ``modeling/rpn/vldyhead.py`` ``VLDyHead``, ``VLDyHeadModule``).

``VLDyHead`` runs the DyHead tower over the FPN levels and predicts, per anchor: box deltas (scaled per level),
a centerness logit, and a logit against every text token (dot product of the tower feature with projected,
L2-normalised final text features; upstream-facts.md 1.11). ``VLDyHeadModule`` (registered as ``"VLDYHEAD"``,
state-dict prefix ``rpn.``) adds the anchors, the ATSS losses in training and the post-processing at test.

The class logits ``cls_logits`` exist only so that upstream's checkpoints load without unexpected keys: they
are frozen, never computed, and their loss is the constant 0 upstream multiplies it to.
"""

import logging
import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from maskrcnn_benchmark.modeling.registry import RPN_ARCHITECTURES

from .anchor_generator import AnchorGenerator, build_anchor_generator
from .box_coder import BoxCoder
from .dyhead import build_dyhead_tower
from .inference import ATSSPostProcessor, build_atss_postprocessor
from .loss import VLATSSLoss, build_vl_atss_loss

__all__ = ["Scale", "HeadOutputs", "VLDyHead", "VLDyHeadModule", "build_vldyhead_module", "split_positive_map"]

logger = logging.getLogger(__name__)

# Logits are clamped to this magnitude (upstream FUSE_CONFIG.CLAMP_DOT_PRODUCT) to keep fp16 finite.
_DOT_PRODUCT_CLAMP = 50000.0


def _prior_bias(prior_prob: float) -> float:
    """Logit of the prior probability: ``-ln((1 - p) / p)`` (-4.59512 for p = 0.01)."""
    return -math.log((1 - prior_prob) / prior_prob)


class Scale(nn.Module):
    """Multiplies its input by a learnable scalar ``scale`` (init ``init_value``)."""

    def __init__(self, init_value: float = 1.0):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor([float(init_value)]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class HeadOutputs(NamedTuple):
    """Raw predictions, one entry per FPN level l (A = 1 anchor per location).

    Attributes:
        box_regression: Tensor[B, 4, H_l, W_l] box-coder deltas.
        centerness: Tensor[B, 1, H_l, W_l] logits.
        dot_product_logits: Tensor[B, H_l*W_l, L] anchor-token logits (anchor order: rows, then columns).
        tower_features: Tensor[B, C, H_l, W_l] DyHead tower outputs.
    """

    box_regression: list[torch.Tensor]
    centerness: list[torch.Tensor]
    dot_product_logits: list[torch.Tensor]
    tower_features: list[torch.Tensor]


class VLDyHead(nn.Module):
    """DyHead tower + box, centerness and token-alignment predictors.

    Args:
        in_channels: FPN channels (``MODEL.BACKBONE.OUT_CHANNELS``).
        channels: tower width (``MODEL.DYHEAD.CHANNELS``).
        num_convs: DyConv blocks (``MODEL.DYHEAD.NUM_CONVS``).
        num_groups: GroupNorm groups (``MODEL.GROUP_NORM.NUM_GROUPS``, or CHANNELS / DIM_PER_GP).
        group_norm_eps: GroupNorm epsilon (``MODEL.GROUP_NORM.EPSILON``).
        num_levels: FPN levels (one ``Scale`` each).
        num_classes: ``MODEL.DYHEAD.NUM_CLASSES`` (class logits have ``num_classes - 1`` channels).
        lang_dim: text feature width (``MODEL.LANGUAGE_BACKBONE.LANG_DIM``).
        prior_prob: ``MODEL.DYHEAD.PRIOR_PROB`` for the biases of the class and token logits.
        log_scale: initial ``log_scale`` (``MODEL.DYHEAD.LOG_SCALE``).
        clamp_dot_product: clamp the token logits to +-50000 (``FUSE_CONFIG.CLAMP_DOT_PRODUCT``).
        zero_init_offsets: zero-initialise the tower's deformable offsets (``MODEL.DYHEAD.ZERO_INIT_OFFSETS``).
    """

    def __init__(self, in_channels: int = 256, channels: int = 256, num_convs: int = 6, num_groups: int = 16,
                 group_norm_eps: float = 1e-5, num_levels: int = 5, num_classes: int = 81, lang_dim: int = 768,
                 prior_prob: float = 0.01,
                 log_scale: float = 0.0, clamp_dot_product: bool = True, zero_init_offsets: bool = False):
        super().__init__()
        self.clamp_dot_product = clamp_dot_product
        self.dyhead_tower = build_dyhead_tower(in_channels, channels, num_convs, num_groups, group_norm_eps,
                                               zero_init_offsets)
        self.cls_logits = nn.Conv2d(channels, num_classes - 1, kernel_size=1)
        self.bbox_pred = nn.Conv2d(channels, 4, kernel_size=1)
        self.centerness = nn.Conv2d(channels, 1, kernel_size=1)
        self.scales = nn.ModuleList([Scale(1.0) for _ in range(num_levels)])
        self.dot_product_projection_text = nn.Linear(lang_dim, channels, bias=True)
        self.log_scale = nn.Parameter(torch.tensor([float(log_scale)]))
        self.bias_lang = nn.Parameter(torch.zeros(lang_dim))
        self.bias0 = nn.Parameter(torch.tensor([_prior_bias(prior_prob)]))
        for conv in (self.cls_logits, self.bbox_pred, self.centerness):
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)
        nn.init.constant_(self.cls_logits.bias, _prior_bias(prior_prob))
        self.freeze_cls_logits()

    def freeze_cls_logits(self) -> None:
        """Keep the unused class logits frozen (as upstream with the dot-product token loss)."""
        self.cls_logits.eval()
        for parameter in self.cls_logits.parameters():
            parameter.requires_grad_(False)

    def _text_tokens(self, embedded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected tokens ``Tensor[B, L, C]`` and per-token biases ``Tensor[B, L]`` (pad rows are zero)."""
        normalized = F.normalize(embedded, p=2, dim=-1)
        tokens = self.dot_product_projection_text(normalized / 2.0)
        bias = torch.matmul(normalized, self.bias_lang) + self.bias0
        return tokens, bias

    def _predict_level(self, level: int, feature: torch.Tensor, tokens: torch.Tensor, token_bias: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Box deltas, centerness and token logits of one level (see :class:`HeadOutputs`)."""
        box_regression = self.scales[level](self.bbox_pred(feature))
        centerness = self.centerness(feature)
        queries = feature.flatten(2).transpose(1, 2)  # [B, H*W, C]
        logits = torch.matmul(queries, tokens.transpose(-1, -2)) / self.log_scale.exp() + token_bias[:, None, :]
        if self.clamp_dot_product:
            logits = logits.clamp(min=-_DOT_PRODUCT_CLAMP, max=_DOT_PRODUCT_CLAMP)
        return box_regression, centerness, logits

    def forward(self, features: Sequence[torch.Tensor], embedded: torch.Tensor) -> HeadOutputs:
        """Args:
            features: FPN maps P3..P7, Tensor[B, C, H_l, W_l].
            embedded (Tensor[B, L, D]): final text features with padded tokens zeroed.

        Returns:
            HeadOutputs (predictions in float32, also under autocast).
        """
        if len(features) != len(self.scales):
            raise ValueError(f"the head was built for {len(self.scales)} FPN levels, got {len(features)}")
        tower = self.dyhead_tower(features)
        box_regression, centerness, dot_product_logits = [], [], []
        # Numerically sensitive, kept in float32 under autocast (TEST.PRECISION bf16 / fp16): the text
        # projection, the box deltas (exponentiated by the box coder: a bf16 delta moves a box edge by ~1%)
        # and the token logits (thresholded and ranked). A few 1x1 convolutions and one matmul per level.
        with torch.autocast(device_type=embedded.device.type, enabled=False):
            tokens, token_bias = self._text_tokens(embedded.float())
            for level, feature in enumerate(tower):
                outputs = self._predict_level(level, feature.float(), tokens, token_bias)
                box_regression.append(outputs[0])
                centerness.append(outputs[1])
                dot_product_logits.append(outputs[2])
        return HeadOutputs(box_regression, centerness, dot_product_logits, tower)


def _check_supported(cfg) -> None:
    """Reject head options this implementation does not build (FIBER uses none of them)."""
    dyhead, fuse = cfg.MODEL.DYHEAD, cfg.MODEL.DYHEAD.FUSE_CONFIG
    required = {"MODEL.DYHEAD.USE_GN": dyhead.USE_GN, "MODEL.DYHEAD.USE_DFCONV": dyhead.USE_DFCONV,
                "MODEL.DYHEAD.USE_DYRELU": dyhead.USE_DYRELU, "MODEL.DYHEAD.USE_DYFUSE": dyhead.USE_DYFUSE,
                "MODEL.DYHEAD.FUSE_CONFIG.USE_DOT_PRODUCT_TOKEN_LOSS": fuse.USE_DOT_PRODUCT_TOKEN_LOSS}
    off = [key for key, value in required.items() if not value]
    if off:
        raise ValueError(f"VLDYHEAD implements FIBER's head only; these keys must be True: {', '.join(off)}")
    if fuse.EARLY_FUSE_ON or fuse.USE_CLASSIFICATION_LOSS:
        raise ValueError("VLDYHEAD: MODEL.DYHEAD.FUSE_CONFIG.EARLY_FUSE_ON (GLIP fusion in the head) and "
                         "USE_CLASSIFICATION_LOSS (class-logit loss) are not supported; FIBER sets both False")
    rpn = cfg.MODEL.RPN
    if len(rpn.ASPECT_RATIOS) * rpn.SCALES_PER_OCTAVE != 1:
        raise ValueError(f"VLDYHEAD supports one anchor per location: MODEL.RPN.ASPECT_RATIOS "
                         f"{tuple(rpn.ASPECT_RATIOS)} x SCALES_PER_OCTAVE {rpn.SCALES_PER_OCTAVE} anchors given")


TrainPositiveMap = torch.Tensor  # binary float [total boxes in the batch, L]
TestPositiveMap = Mapping[int, Sequence[int]]  # label -> token indices


def split_positive_map(positive_map: TrainPositiveMap | TestPositiveMap | None, targets, training: bool
                       ) -> tuple[list[torch.Tensor] | None, dict[int, list[int]] | None]:
    """Turn upstream's polymorphic ``positive_map`` into the two values the head needs.

    Training: a dense binary ``Tensor[sum N_i, L]`` (rows in target order) becomes one ``Tensor[N_i, L]`` per
    image (``token_maps``); when it is None, each target's own "positive_map" field is used (binarised).
    Test: a ``{label: [token index]}`` dict is used as is (``label_to_tokens``); a ``Tensor[P, L]`` (e.g. a
    grounding sample's ``positive_map_eval``) becomes ``{p + 1: nonzero tokens of row p}``.

    Returns:
        (token_maps, None) in training, (None, label_to_tokens) at test.
    """
    if training:
        if targets is None:
            raise ValueError("training needs targets (one BoxList per image)")
        if positive_map is None:
            if not all(t.has_field("positive_map") for t in targets):
                raise ValueError("training needs positive_map (or a 'positive_map' field on every target)")
            return [(t.get_field("positive_map") > 0).float() for t in targets], None
        if not isinstance(positive_map, torch.Tensor):
            raise TypeError(f"in training positive_map must be a dense Tensor[total boxes, L], got "
                            f"{type(positive_map).__name__}")
        counts = [len(t) for t in targets]
        if positive_map.shape[0] != sum(counts):
            raise ValueError(f"positive_map has {positive_map.shape[0]} rows for {sum(counts)} target boxes")
        return list(torch.split((positive_map > 0).float(), counts, dim=0)), None
    if positive_map is None:
        raise ValueError("evaluation needs positive_map: {label: [token indices]} for the prompt's labels")
    if isinstance(positive_map, torch.Tensor):
        return None, {row + 1: positive_map[row].nonzero().flatten().tolist() for row in range(positive_map.shape[0])}
    if not isinstance(positive_map, Mapping):
        raise TypeError(f"at test positive_map must be a dict label -> token indices or a Tensor[P, L], got "
                        f"{type(positive_map).__name__}")
    return None, dict(positive_map)


class VLDyHeadModule(nn.Module):
    """The ``rpn`` of GeneralizedVLRCNN: head, anchors, losses (training) and post-processing (test).

    Args:
        head: the ``VLDyHead``.
        anchor_generator: anchors of every level.
        loss_evaluator: ATSS assignment and losses.
        post_processor: test-time detections.
    """

    def __init__(self, head: VLDyHead, anchor_generator: AnchorGenerator, loss_evaluator: VLATSSLoss,
                 post_processor: ATSSPostProcessor):
        super().__init__()
        self.head = head
        self.anchor_generator = anchor_generator
        self.loss_evaluator = loss_evaluator
        self.post_processor = post_processor

    @classmethod
    def from_config(cls, cfg) -> "VLDyHeadModule":
        """Build from ``MODEL.DYHEAD``, ``MODEL.RPN``, ``MODEL.ATSS``, ``MODEL.GROUP_NORM`` and ``TEST``."""
        _check_supported(cfg)
        dyhead, rpn = cfg.MODEL.DYHEAD, cfg.MODEL.RPN
        anchors_per_location = len(rpn.ASPECT_RATIOS) * rpn.SCALES_PER_OCTAVE
        group_norm = cfg.MODEL.GROUP_NORM
        num_groups = dyhead.CHANNELS // group_norm.DIM_PER_GP if group_norm.DIM_PER_GP > 0 else group_norm.NUM_GROUPS
        head = VLDyHead(in_channels=cfg.MODEL.BACKBONE.OUT_CHANNELS, channels=dyhead.CHANNELS,
                        num_convs=dyhead.NUM_CONVS, num_groups=num_groups, group_norm_eps=group_norm.EPSILON,
                        num_levels=len(rpn.ANCHOR_STRIDE), num_classes=dyhead.NUM_CLASSES,
                        lang_dim=cfg.MODEL.LANGUAGE_BACKBONE.LANG_DIM, prior_prob=dyhead.PRIOR_PROB,
                        log_scale=dyhead.LOG_SCALE, clamp_dot_product=dyhead.FUSE_CONFIG.CLAMP_DOT_PRODUCT,
                        zero_init_offsets=dyhead.ZERO_INIT_OFFSETS)
        box_coder = BoxCoder()
        return cls(head, build_anchor_generator(cfg), build_vl_atss_loss(cfg, box_coder, anchors_per_location),
                   build_atss_postprocessor(cfg, box_coder))

    def forward(self, images, features: Sequence[torch.Tensor], targets=None, language_dict=None,
                positive_map=None, captions=None, swint_feature_c4=None):
        """Upstream's call: ``rpn(images, features, targets, language_dict, positive_map, captions, None)``.

        Args:
            images (ImageList): the padded batch (``image_sizes`` are (h, w) before padding).
            features: FPN maps P3..P7, Tensor[B, C, H_l, W_l].
            targets: training only, one BoxList (xyxy) per image.
            language_dict: the fusion backbone's text outputs ("embedded" Tensor[B, L, D], "masks" [B, L]).
            positive_map: dense ``Tensor[sum N_i, L]`` in training; ``{label: [token index]}`` (or a
                ``Tensor[P, L]``) at test. See :func:`split_positive_map`.
            captions, swint_feature_c4: accepted for upstream's call signature; unused.

        Returns:
            ``(detections, losses, tower_features)``: at test a list of BoxList per image (fields "labels",
            "scores") and ``{}``; in training ``None`` and the loss dict.
        """
        if language_dict is None:
            raise ValueError("the VLDYHEAD head needs the language dict of the fusion backbone")
        token_maps, label_to_tokens = split_positive_map(positive_map, targets, self.training)
        outputs = self.head(features, language_dict["embedded"])
        anchors = self.anchor_generator(features)
        if self.training:
            losses = self._losses(outputs, anchors, targets, token_maps, language_dict["masks"])
            return None, losses, outputs.tower_features
        detections = self.post_processor(outputs.box_regression, outputs.centerness, outputs.dot_product_logits,
                                         anchors, images.image_sizes, label_to_tokens)
        return detections, {}, outputs.tower_features

    def detect_per_prompt(self, image_sizes: Sequence[tuple[int, int]], features: Sequence[torch.Tensor],
                          language_dict, label_maps: Sequence[Mapping[int, Sequence[int]]],
                          num_slots: int | None = None) -> list[list]:
        """Test-time detections of P prompts x B images computed as one batch of P*B samples.

        Samples are prompt-major: sample ``p * B + b`` is image ``b`` under prompt ``p``.

        Args:
            image_sizes: (height, width) of the B images before padding.
            features: FPN maps P3..P7 of the P*B samples, Tensor[P*B, C, H_l, W_l].
            language_dict: the fusion backbone's text outputs for the P*B samples.
            label_maps: P maps ``{label: [token index]}``, one per prompt.
            num_slots: label slots (default: the post-processor's ``num_slots``).

        Returns:
            per prompt, one BoxList per image (fields "labels", "scores").
        """
        batch = len(image_sizes)
        samples = features[0].shape[0]
        if samples != batch * len(label_maps):
            raise ValueError(f"{samples} samples for {len(label_maps)} prompts x {batch} images")
        outputs = self.head(features, language_dict["embedded"])
        anchors = self.anchor_generator(features)
        results = []
        for index, label_map in enumerate(label_maps):
            part = slice(index * batch, (index + 1) * batch)
            results.append(self.post_processor([r[part] for r in outputs.box_regression],
                                               [c[part] for c in outputs.centerness],
                                               [d[part] for d in outputs.dot_product_logits], anchors,
                                               image_sizes, label_map, num_slots))
        return results

    def _losses(self, outputs: HeadOutputs, anchors, targets, token_maps, text_masks) -> dict[str, torch.Tensor]:
        batch = outputs.box_regression[0].shape[0]
        box_regression = torch.cat([r.permute(0, 2, 3, 1).reshape(batch, -1, 4) for r in outputs.box_regression], 1)
        centerness = torch.cat([c.reshape(batch, -1) for c in outputs.centerness], dim=1)
        dot_product_logits = torch.cat(outputs.dot_product_logits, dim=1)
        gt_boxes = [t.convert("xyxy").bbox for t in targets]
        gt_labels = [t.get_field("labels") if t.has_field("labels") else torch.ones(len(t), dtype=torch.int64)
                     for t in targets]
        return self.loss_evaluator(box_regression, centerness, dot_product_logits, anchors, gt_boxes, token_maps,
                                   text_masks, gt_labels)


@RPN_ARCHITECTURES.register("VLDYHEAD")
def build_vldyhead_module(cfg) -> VLDyHeadModule:
    """Registered builder of ``MODEL.RPN_ARCHITECTURE: "VLDYHEAD"``."""
    return VLDyHeadModule.from_config(cfg)
