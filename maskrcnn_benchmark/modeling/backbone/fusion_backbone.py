"""FIBER's fusion backbone: Swin and RoBERTa exchanging gated cross-attention inside the backbones.

Upstream files: ``fine_grained/maskrcnn_benchmark/modeling/backbone/fusion_swin_transformer_v2.py`` / ``_v3.py``
(``FusionSwinTransformer``) and ``backbone/__init__.py`` (``SWINT-FPN-RETINANET``). Our own implementation of
the data flow in upstream-facts.md 1.5:

1. image: patch embed -> stages 1, 2 -> stage-3 blocks before the first fused block (image only);
2. text: embeddings [+ prompt-tuning rows] -> the text layers before the first fused one (text only);
3. every fused step k pairs Swin block b_k with text layer t_k and updates both at once: the image block reads
   the CURRENT text states, the text layer reads the CURRENT (pre-step) image tokens (unpadded, unmasked);
4. stage outputs go through norm1..norm3 into the FPN (P3..P7); the final text states become the language dict.

Step 1 does not depend on the caption and step 2 not on the image: :meth:`FusionBackbone.forward_image_prefix`
and :meth:`FusionBackbone.forward_text_prefix` compute them once so that several prompts (LVIS chunks) can reuse
an image's prefix, and a fixed prompt's prefix can be reused for every image, through
:meth:`FusionBackbone.forward_from_prefix` (upstream-facts.md 12). A prefix of batch 1 is broadcast to the
other side's batch.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from maskrcnn_benchmark.modeling.backbone.fpn import FPN, DropBlock2D, LastLevelP6P7
from maskrcnn_benchmark.modeling.backbone.swin import SwinTransformer
from maskrcnn_benchmark.modeling.language_backbone.roberta import LanguageDict, aggregate_language_features
from maskrcnn_benchmark.modeling.registry import BACKBONES, LANGUAGE_BACKBONES

__all__ = ["ImagePrefix", "TextPrefix", "FusionBackbone", "build_swint_fpn_retinanet", "build_fusion_backbone",
           "FUSION_VERSIONS"]

logger = logging.getLogger(__name__)

#: MODEL.BACKBONE.FUSION_VERSION -> whether fused Swin blocks have the ``norm_i2t_i`` query LayerNorm.
FUSION_VERSIONS = {"v2": False, "v3": True}

# UPSTREAM-QUIRK: upstream-facts.md 1.5 (tunable_linear is hard-coded to 1000 rows, the longest text it can tune)
_PROMPT_TUNING_ROWS = 1000


class ImagePrefix(NamedTuple):
    """Caption-independent part of the fused backbone for a batch of images.

    Attributes:
        stage_maps: normalised outputs of Swin stages 1 and 2, [B, C, H/4, W/4] and [B, 2C, H/8, W/8].
        tokens (Tensor[B, H16*W16, 4C]): stage-3 tokens before the first fused block.
        height, width: stage-3 grid size.
    """

    stage_maps: tuple[Tensor, ...]
    tokens: Tensor
    height: int
    width: int

    @property
    def batch_size(self) -> int:
        return self.tokens.shape[0]

    def expand(self, batch_size: int) -> ImagePrefix:
        """Repeat a single-image prefix ``batch_size`` times (one image, several prompts)."""
        if self.batch_size == batch_size:
            return self
        if self.batch_size != 1:
            raise ValueError(f"cannot expand an image prefix of batch {self.batch_size} to {batch_size}")
        return ImagePrefix(tuple(m.expand(batch_size, -1, -1, -1) for m in self.stage_maps),
                           self.tokens.expand(batch_size, -1, -1), self.height, self.width)

    def tile(self, copies: int) -> ImagePrefix:
        """The prefix of B images repeated for ``copies`` prompts, prompt-major (sample ``p * B + b`` = image b).

        A batch of one is broadcast (no copy); larger batches are copied once (the image part is reused, not
        recomputed).
        """
        if copies == 1:
            return self
        if self.batch_size == 1:
            return self.expand(copies)

        def repeat(t: Tensor) -> Tensor:
            return t.unsqueeze(0).expand(copies, *t.shape).reshape(copies * t.shape[0], *t.shape[1:])

        return ImagePrefix(tuple(repeat(m) for m in self.stage_maps), repeat(self.tokens), self.height, self.width)


class TextPrefix(NamedTuple):
    """Image-independent part of the fused backbone for a batch of captions.

    Attributes:
        hidden (Tensor[B, L, D]): text states after the text layers that precede the first fused one.
        attention_mask (Tensor[B, L]): the tokenizer's attention mask.
    """

    hidden: Tensor
    attention_mask: Tensor

    @property
    def batch_size(self) -> int:
        return self.hidden.shape[0]

    def expand(self, batch_size: int) -> TextPrefix:
        """Repeat a single-caption prefix ``batch_size`` times (one prompt, several images)."""
        if self.batch_size == batch_size:
            return self
        if self.batch_size != 1:
            raise ValueError(f"cannot expand a text prefix of batch {self.batch_size} to {batch_size}")
        return TextPrefix(self.hidden.expand(batch_size, -1, -1), self.attention_mask.expand(batch_size, -1))

    @staticmethod
    def stack(prefixes: Sequence[TextPrefix], images: int) -> TextPrefix:
        """Single-caption prefixes of P prompts as one batch of P x ``images`` samples (prompt-major).

        Captions of different lengths are padded to the longest with masked zero tokens: a masked key gets
        exactly zero attention weight, and the text of a padded position is never read by the real tokens,
        the image or the head, so the detections do not change.
        """
        if any(p.batch_size != 1 for p in prefixes):
            raise ValueError("TextPrefix.stack takes prefixes of a single caption each")
        length = max(p.hidden.shape[1] for p in prefixes)
        hidden, masks = [], []
        for prefix in prefixes:
            pad = length - prefix.hidden.shape[1]
            hidden.append(nn.functional.pad(prefix.hidden, (0, 0, 0, pad)))
            masks.append(nn.functional.pad(prefix.attention_mask, (0, pad)))
        hidden_t, mask_t = torch.cat(hidden), torch.cat(masks)
        return TextPrefix(hidden_t.repeat_interleave(images, dim=0), mask_t.repeat_interleave(images, dim=0))


def _image_tensor(images) -> Tensor:
    tensors = getattr(images, "tensors", images)
    if not isinstance(tensors, Tensor) or tensors.dim() != 4:
        raise TypeError(f"images must be an ImageList or a Tensor[B, 3, H, W], got {type(images).__name__}")
    return tensors


class FusionBackbone(nn.Module):
    """Swin body + FPN (``backbone``) fused with the RoBERTa encoder (``language_backbone``).

    Args:
        backbone: ``Sequential(body=SwinTransformer, fpn=FPN)`` with fused blocks at the end of stage 3 and in
            all of stage 4.
        language_backbone: ``Sequential(body=RobertaFusedEncoder)`` whose last layers own cross-attention,
            one per fused Swin block, in the same order.
        add_linear_layer: add ``tunable_linear`` (prompt tuning, weight [1000, D], zero init) whose first L
            rows are added to the text embeddings.
    """

    def __init__(self, backbone: nn.Module, language_backbone: nn.Module, add_linear_layer: bool = False):
        super().__init__()
        self.backbone = backbone
        self.language_backbone = language_backbone
        self.add_linear_layer = add_linear_layer
        text_model = self.language_backbone.body.model
        if add_linear_layer:
            self.tunable_linear = nn.Linear(text_model.arch.hidden_size, _PROMPT_TUNING_ROWS, bias=False)
            nn.init.zeros_(self.tunable_linear.weight)
        self._check_pairing()

    def _fused_image_blocks(self) -> list[tuple[int, int]]:
        """(stage, block) of every fused Swin block, in execution order."""
        return [(s, b) for s in range(4) for b, blk in enumerate(self.backbone.body.layers[s].blocks)
                if blk.fused]

    def _check_pairing(self) -> None:
        body, layers = self.backbone.body, self.language_backbone.body.model.encoder.layer
        image_steps = self._fused_image_blocks()
        text_steps = [i for i, layer in enumerate(layers) if layer.fused]
        expected_image = [(2, b) for b in range(body.layers[2].first_fused, len(body.layers[2].blocks))]
        expected_image += [(3, b) for b in range(len(body.layers[3].blocks))]
        n = len(image_steps)
        if image_steps != expected_image or text_steps != list(range(len(layers) - n, len(layers))):
            raise ValueError(
                f"fusion layout mismatch: fused Swin blocks {image_steps} (need the last blocks of stage 3 and "
                f"all of stage 4) must pair one-to-one with the LAST text layers, fused text layers are "
                f"{text_steps}")
        for (stage, block), t in zip(image_steps, text_steps):
            width = body.num_features[stage]
            kv = layers[t].crossattention_t2i.self.key.in_features
            dt = body.layers[stage].blocks[block].attn.qkv_text_i2t.in_features
            if kv != width or dt != layers[t].attention.self.query.in_features:
                raise ValueError(f"text layer {t} reads image width {kv} but Swin stage {stage} has {width}, or "
                                 f"Swin block ({stage},{block}) reads text width {dt}")
        self.num_pre_fusion_text_layers = len(layers) - n

    def forward_image_prefix(self, images) -> ImagePrefix:
        """Run the caption-independent image part (patch embed .. stage-3 blocks before fusion).

        Args:
            images: ImageList or Tensor[B, 3, H, W].
        """
        body = self.backbone.body
        x, h, w = body.embed(_image_tensor(images))
        maps = []
        for stage in (0, 1):
            out, x, h2, w2 = body.layers[stage](x, h, w)
            maps.append(body.stage_output(stage, out, h, w))
            h, w = h2, w2
        stage3 = body.layers[2]
        mask = stage3.shift_mask(h, w, x.device)
        for j in range(stage3.first_fused):
            x = stage3.run_block(j, x, h, w, mask)
        return ImagePrefix(tuple(maps), x, h, w)

    def forward_text_prefix(self, tokenizer_input: Mapping[str, Tensor]) -> TextPrefix:
        """Run the image-independent text part (embeddings [+ prompt tuning] .. text layers before fusion).

        Args:
            tokenizer_input: ``{"input_ids": LongTensor[B, L], "attention_mask": Tensor[B, L]}``.
        """
        model = self.language_backbone.body.model
        input_ids, attention_mask = tokenizer_input["input_ids"], tokenizer_input["attention_mask"]
        if input_ids.shape != attention_mask.shape:
            raise ValueError(f"input_ids {tuple(input_ids.shape)} and attention_mask "
                             f"{tuple(attention_mask.shape)} differ in shape")
        key_mask = model.get_extended_attention_mask(attention_mask)
        text = model.embeddings(input_ids)
        if self.add_linear_layer:
            length = text.shape[1]
            if length > _PROMPT_TUNING_ROWS:
                raise ValueError(f"prompt tuning supports at most {_PROMPT_TUNING_ROWS} tokens, got {length}")
            text = text + self.tunable_linear.weight[:length].unsqueeze(0)
        for i in range(self.num_pre_fusion_text_layers):
            text = model.run_layer(i, text, key_mask)
        return TextPrefix(text, attention_mask)

    def forward_from_prefix(self, prefix: ImagePrefix, text: Mapping[str, Tensor] | TextPrefix
                            ) -> tuple[tuple[Tensor, ...], LanguageDict]:
        """Finish the forward pass from :meth:`forward_image_prefix`'s result.

        Args:
            prefix: image prefix of batch B (or 1, broadcast to the captions' batch).
            text: ``{"input_ids": LongTensor[B, L], "attention_mask": Tensor[B, L]}``, or a :class:`TextPrefix`
                from :meth:`forward_text_prefix` (batch B, or 1 broadcast to the images' batch).

        Returns:
            (FPN maps P3..P7 as Tensor[B, C_fpn, H_l, W_l], language dict) as :meth:`forward`.
        """
        if not isinstance(text, TextPrefix):
            text = self.forward_text_prefix(text)
        batch = max(prefix.batch_size, text.batch_size)
        prefix, text_prefix = prefix.expand(batch), text.expand(batch)
        attention_mask = text_prefix.attention_mask
        body = self.backbone.body
        text_model = self.language_backbone.body.model
        key_mask = text_model.get_extended_attention_mask(attention_mask)
        text = text_prefix.hidden
        x, h, w = prefix.tokens, prefix.height, prefix.width
        maps = list(prefix.stage_maps)
        step = self.num_pre_fusion_text_layers
        for stage in (2, 3):
            layer = body.layers[stage]
            mask = layer.shift_mask(h, w, x.device)
            for j in range(layer.first_fused, len(layer.blocks)):
                # UPSTREAM-QUIRK: upstream-facts.md 1.5 step 7 (stage-3 blocks follow the stage's checkpoint
                # flag; stage-4 blocks are never checkpointed)
                if stage == 2:
                    new_x = layer.run_block(j, x, h, w, mask, text, key_mask)
                else:
                    new_x = layer.blocks[j](x, h, w, mask, text, key_mask)
                # Simultaneous update: the text layer reads the image tokens from before this step.
                # UPSTREAM-QUIRK: upstream-facts.md 1.4 (no mask over image keys: padded pixels are attended to)
                text = text_model.run_layer(step, text, key_mask, image_tokens=x)
                x, step = new_x, step + 1
            maps.append(body.stage_output(stage, x, h, w))
            x, h, w = layer.downsample_tokens(x, h, w)
        language = aggregate_language_features(text, attention_mask)
        return self.backbone.fpn(maps), language

    def forward(self, tokenizer_input: Mapping[str, Tensor], images
                ) -> tuple[tuple[Tensor, ...], LanguageDict]:
        """
        Args:
            tokenizer_input: ``{"input_ids": LongTensor[B, L], "attention_mask": Tensor[B, L]}``.
            images: ImageList or Tensor[B, 3, H, W] (BGR 0-255 normalised, padded to a multiple of 32).

        Returns:
            features: tuple of 5 FPN maps P3..P7, Tensor[B, C_fpn, H/8, W/8] ... [B, C_fpn, H/128, W/128].
            language dict: ``hidden``/``embedded`` Tensor[B, L, D], ``masks`` Tensor[B, L],
            ``aggregate`` Tensor[B, D].
        """
        return self.forward_from_prefix(self.forward_image_prefix(images), tokenizer_input)


def _swin_from_cfg(cfg) -> SwinTransformer:
    sw, bb = cfg.MODEL.SWINT, cfg.MODEL.BACKBONE
    if sw.APE:
        raise ValueError("MODEL.SWINT.APE True (absolute position embedding) is not supported")
    dims = [sw.EMBED_DIM * 2 ** i for i in range(4)]
    if list(sw.OUT_CHANNELS) != dims:
        raise ValueError(f"MODEL.SWINT.OUT_CHANNELS {tuple(sw.OUT_CHANNELS)} must equal the stage widths "
                         f"{tuple(dims)} implied by MODEL.SWINT.EMBED_DIM {sw.EMBED_DIM}")
    fused = sw.VERSION == "fusion"
    if fused and bb.FUSION_VERSION not in FUSION_VERSIONS:
        raise ValueError(f"MODEL.BACKBONE.FUSION_VERSION {bb.FUSION_VERSION!r} is not supported; "
                         f"choose one of {sorted(FUSION_VERSIONS)}")
    return SwinTransformer(
        patch_size=4, in_chans=3, embed_dim=sw.EMBED_DIM, depths=tuple(sw.DEPTHS), num_heads=tuple(sw.NUM_HEADS),
        window=sw.WINDOW_SIZE, mlp_ratio=sw.MLP_RATIO, qkv_bias=True, qk_scale=None, drop_rate=0.0,
        attn_drop_rate=0.0, drop_path_rate=sw.DROP_PATH_RATE, patch_norm=True,
        frozen_stages=bb.FREEZE_CONV_BODY_AT, use_checkpoint=bb.USE_CHECKPOINT,
        dim_text=cfg.MODEL.LANGUAGE_BACKBONE.LANG_DIM if fused else None,
        fusion_blocks_stage3=sw.FUSION_BLOCKS_STAGE3 if fused else 0,
        i2t_query_norm=fused and FUSION_VERSIONS[bb.FUSION_VERSION],
        first_norm_identity=bb.CONV_BODY.endswith("RETINANET"))


def _fpn_from_cfg(cfg, stage_channels) -> FPN:
    fpn_cfg, out = cfg.MODEL.FPN, cfg.MODEL.BACKBONE.OUT_CHANNELS
    if fpn_cfg.USE_GN or fpn_cfg.USE_RELU:
        raise ValueError("MODEL.FPN.USE_GN / USE_RELU are not supported by SWINT-FPN-RETINANET (FIBER uses neither)")
    drop_block = DropBlock2D(fpn_cfg.DROP_PROB, fpn_cfg.DROP_SIZE) if fpn_cfg.DROP_BLOCK else None
    return FPN([0] + list(stage_channels[1:]), out, top_blocks=LastLevelP6P7(out, out), drop_block=drop_block)


@BACKBONES.register("SWINT-FPN-RETINANET")
def build_swint_fpn_retinanet(cfg) -> nn.Sequential:
    """``Sequential(body=SwinTransformer, fpn=FPN)`` (upstream-facts.md 1.3, 1.9)."""
    body = _swin_from_cfg(cfg)
    fpn = _fpn_from_cfg(cfg, body.num_features)
    return nn.Sequential(OrderedDict(body=body, fpn=fpn))


def build_fusion_backbone(cfg) -> FusionBackbone:
    """Build the image backbone and the text encoder through their registries and fuse them.

    Reads MODEL.BACKBONE.CONV_BODY, MODEL.LANGUAGE_BACKBONE.MODEL_TYPE and
    MODEL.DYHEAD.FUSE_CONFIG.ADD_LINEAR_LAYER (plus everything the two builders read).
    """
    if cfg.MODEL.SWINT.VERSION != "fusion":
        raise ValueError(f"build_fusion_backbone needs MODEL.SWINT.VERSION 'fusion', got {cfg.MODEL.SWINT.VERSION!r}")
    backbone = BACKBONES.get(cfg.MODEL.BACKBONE.CONV_BODY)(cfg)
    language_backbone = LANGUAGE_BACKBONES.get(cfg.MODEL.LANGUAGE_BACKBONE.MODEL_TYPE)(cfg)
    model = FusionBackbone(backbone, language_backbone,
                           add_linear_layer=cfg.MODEL.DYHEAD.FUSE_CONFIG.ADD_LINEAR_LAYER)
    logger.info("fusion backbone %s: %d fused steps, text layers before fusion: %d",
                cfg.MODEL.BACKBONE.FUSION_VERSION, len(model._fused_image_blocks()),
                model.num_pre_fusion_text_layers)
    return model
