"""Explicit key maps from the checkpoint files FIBER users have to our state-dict keys.

Upstream (``utils/model_serialization.py``) loads any file by removing the substrings ``vit_model.`` and
``text_transformer.`` from every key and then matching each model key to the longest file key that is a
suffix of it. That silently ignores whatever does not match and can pair the wrong tensors. Here every
kind of file has an ordered table of prefix rules; the first rule whose pattern matches a file key decides
what happens to it: it is renamed to one of our keys, or it is dropped as a key that is known to be unused
for that kind of file (and reported as such). Nothing is matched by suffix.

Kinds of files (see :data:`FILE_KINDS`):

* ``training``: a checkpoint written by upstream's or our ``Checkpointer.save`` (``{"model": ...,
  "model_ema": ..., "optimizer": ..., ...}``) or a bare ``model.state_dict()`` of a FIBER model. Keys
  are already ours (after removing a DDP ``module.`` prefix).
* ``coarse``: a coarse-grained-stage checkpoint (``fiber_coarse_init*.pt``, a PyTorch-Lightning file with
  ``state_dict``); its Swin is ``vit_model.*`` and its RoBERTa ``text_transformer.*``; it also carries
  MLM / ITM / ITC heads, poolers and queues that the fine-grained model does not have.
* ``swin``: a Swin ImageNet checkpoint (``swin_base_patch4_window12_384_22k.pth``: ``{"model": {...}}``
  with ``patch_embed.*``, ``layers.*``, ``norm.*``, ``head.*``).
* ``roberta``: a ``roberta-base`` state dict (``pytorch_model.bin`` / ``model.safetensors``, keys
  ``roberta.*`` or bare ``embeddings.*`` / ``encoder.*``, plus ``lm_head.*`` / ``pooler.*``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "KeyRule",
    "FileKind",
    "FILE_KINDS",
    "SWIN_BODY",
    "TEXT_BODY",
    "DERIVED_BUFFER_PATTERN",
    "detect_file_kind",
    "map_key",
]

#: Where the Swin image body lives in our (and upstream's fine-grained) model.
SWIN_BODY = "fusion_backbone.backbone.body."
#: Where the RoBERTa text body lives.
TEXT_BODY = "fusion_backbone.language_backbone.body.model."

#: Buffers that are pure functions of the architecture (index tables, anchor cells). When a file lacks
#: them, or holds different values, the model's own values are the right ones.
DERIVED_BUFFER_PATTERN = re.compile(
    r"(^|\.)(relative_position_index|position_ids|cell_anchors\.\d+)$"
)


@dataclass(frozen=True)
class KeyRule:
    """One row of a key-map table.

    Args:
        pattern: regular expression matched at the start of a file key (``re.match``).
        target: replacement template for ``re.sub`` over the matched part (``\\g<rest>`` etc.), giving our
            key; ``None`` means the key is known to be unused for this kind of file and is dropped.
        why: one line shown in reports and docs.
    """

    pattern: str
    target: str | None
    why: str

    def apply(self, key: str) -> tuple[bool, str | None]:
        """Returns ``(matched, new_key)``; ``new_key`` is None for a drop rule."""
        match = re.match(self.pattern, key)
        if match is None:
            return False, None
        if self.target is None:
            return True, None
        return True, match.expand(self.target) + key[match.end():]


@dataclass(frozen=True)
class FileKind:
    """A kind of checkpoint file and how its keys become ours.

    Attributes:
        name: short name used in reports (``training``, ``coarse``, ``swin``, ``roberta``).
        description: what the file is.
        rules: ordered rules; the first match decides. A key no rule matches is "unexpected".
        expected_missing: patterns (``re.match`` on OUR keys) of model keys this kind of file never holds;
            they keep their initial values and are listed apart from real omissions.
        optional_targets: patterns of OUR keys that a rule may produce but a model variant lacks (v3's
            ``norm_i2t_i`` in a v2 model, coarse ``alpha_t2i`` of non-fused text layers); such file keys are
            reported as expected-unused rather than unexpected.
    """

    name: str
    description: str
    rules: tuple[KeyRule, ...]
    expected_missing: tuple[str, ...] = ()
    optional_targets: tuple[tuple[str, str], ...] = ()

    def optional_reason(self, target_key: str) -> str | None:
        """Why a produced key may be absent from the model, or None if it must be present."""
        for pattern, why in self.optional_targets:
            if re.match(pattern, target_key):
                return why
        return None

    def is_expected_missing(self, model_key: str) -> bool:
        return any(re.match(p, model_key) for p in self.expected_missing) or bool(
            DERIVED_BUFFER_PATTERN.search(model_key)
        )


_V3_NORM = (
    re.escape(SWIN_BODY) + r"layers\.\d+\.blocks\.\d+\.attn\.norm_i2t_i\.",
    "v3-only LayerNorm (norm_i2t_i); the model is fusion v2 (upstream drops it the same way)",
)

_TRAINING = FileKind(
    name="training",
    description="FIBER fine-grained model weights (upstream or our Checkpointer, or a bare state_dict)",
    rules=(
        KeyRule(r"fusion_backbone\.", "fusion_backbone.", "FIBER fusion backbone"),
        KeyRule(r"rpn\.", "rpn.", "FIBER VL DyHead"),
    ),
    expected_missing=(
        # Prompt-tuning table added on top of a pretrained model (ADD_LINEAR_LAYER) starts from zeros.
        r"fusion_backbone\.tunable_linear\.",
    ),
)

#: Our keys that no pre-training file (coarse stage, Swin, RoBERTa) holds; they keep their initial values:
#: the FPN, the Swin stage-output norms (norm1..3), the prompt-tuning table and the VL DyHead.
_DETECTOR_ONLY = (
    r"fusion_backbone\.backbone\.fpn\.",
    re.escape(SWIN_BODY) + r"norm\d\.",
    r"fusion_backbone\.tunable_linear\.",
    r"rpn\.",
)

_COARSE_UNUSED_HEADS = (
    r"(cross_modal_\w+|mlm_score|itm_score|rank_output|vqa_classifier|nlvr2_classifier|snli_classifier"
    r"|itc_\w+|image_queue|text_queue|image_input_queue|text_input_queue|text_input_mask_queue"
    r"|queue_ptr|queue_total|temp)(\.|$)"
)

_COARSE = FileKind(
    name="coarse",
    description="FIBER coarse-grained-stage checkpoint (vit_model.* / text_transformer.* keys)",
    rules=(
        KeyRule(r"vit_model\.norm\.", None, "coarse Swin's final LayerNorm (the fine model has norm1..3)"),
        KeyRule(r"vit_model\.head\.", None, "coarse Swin classifier head"),
        KeyRule(r"vit_model\.absolute_pos_embed$", None, "absolute position embedding (APE off)"),
        KeyRule(r"vit_model\.layers\.\d+\.blocks\.\d+\.attn_mask$", None,
                "shifted-window mask buffer (recomputed per input size)"),
        KeyRule(r"vit_model\.", SWIN_BODY, "coarse Swin body -> image body"),
        KeyRule(r"text_transformer\.pooler\.", None, "RoBERTa pooler (the fine model has none)"),
        KeyRule(r"text_transformer\.encoder\.layer\.\d+\.crossattention_t2i\.output\.LayerNorm\.", None,
                "coarse cross-attention LayerNorm, never applied in the forward (Identity in the fine model)"),
        KeyRule(r"text_transformer\.embeddings\.token_type_ids$", None, "HF helper buffer"),
        KeyRule(r"text_transformer\.", TEXT_BODY, "coarse RoBERTa -> text body"),
        KeyRule(_COARSE_UNUSED_HEADS, None, "coarse-stage-only heads, poolers, ITC queues"),
    ),
    expected_missing=_DETECTOR_ONLY,
    optional_targets=(
        _V3_NORM,
        (re.escape(TEXT_BODY) + r"encoder\.layer\.\d+\.alpha_t2i$",
         "coarse RoBERTa has a gate in every layer; the fine model only in the fused ones"),
    ),
)

_SWIN = FileKind(
    name="swin",
    description="Swin Transformer ImageNet checkpoint (patch_embed.* / layers.* / norm.* / head.*)",
    rules=(
        KeyRule(r"head\.", None, "ImageNet classifier head"),
        KeyRule(r"norm\.", None, "final LayerNorm of the classifier (the detector has norm1..3)"),
        KeyRule(r"absolute_pos_embed$", None, "absolute position embedding (APE off)"),
        KeyRule(r"layers\.\d+\.blocks\.\d+\.attn_mask$", None, "shifted-window mask buffer"),
        KeyRule(r"(?=patch_embed\.|layers\.)", SWIN_BODY, "Swin body -> image body"),
    ),
    expected_missing=_DETECTOR_ONLY + (
        r"fusion_backbone\.language_backbone\.",
        re.escape(SWIN_BODY) + r"layers\.\d+\.blocks\.\d+\.attn\.(qkv_text_i2t|qkv_i2t|proj_i2t|alpha_i2t|norm_i2t_i)",
    ),
)

_ROBERTA = FileKind(
    name="roberta",
    description="roberta-base state dict (roberta.* or bare embeddings.* / encoder.*)",
    rules=(
        KeyRule(r"lm_head\.", None, "masked-LM head"),
        KeyRule(r"(roberta\.)?pooler\.", None, "RoBERTa pooler (the detector has none)"),
        KeyRule(r"(roberta\.)?embeddings\.token_type_ids$", None, "HF helper buffer"),
        KeyRule(r"roberta\.", TEXT_BODY, "HF RobertaForMaskedLM body -> text body"),
        KeyRule(r"(?=embeddings\.|encoder\.)", TEXT_BODY, "HF RobertaModel -> text body"),
    ),
    expected_missing=_DETECTOR_ONLY + (
        r"fusion_backbone\.backbone\.",  # the whole image side
        re.escape(TEXT_BODY) + r"encoder\.layer\.\d+\.(crossattention_t2i\.|alpha_t2i$)",
    ),
)

#: Every kind of file, by name.
FILE_KINDS: Mapping[str, FileKind] = {k.name: k for k in (_TRAINING, _COARSE, _SWIN, _ROBERTA)}


def _first_segments(keys: Iterable[str]) -> set:
    return {k.split(".", 1)[0] for k in keys}


def detect_file_kind(keys: Sequence[str]) -> FileKind | None:
    """Recognises the kind of a state dict from its key names (after ``module.`` stripping).

    Args:
        keys: the state dict's keys.

    Returns:
        The :class:`FileKind`, or None if the keys look like none of the known kinds.
    """
    heads = _first_segments(keys)
    if heads & {"fusion_backbone", "rpn"}:
        return _TRAINING
    if heads & {"vit_model", "text_transformer"}:
        return _COARSE
    if "roberta" in heads or ("embeddings" in heads and "encoder" in heads):
        return _ROBERTA
    if "patch_embed" in heads and "layers" in heads:
        return _SWIN
    return None


def map_key(kind: FileKind, key: str) -> tuple[KeyRule | None, str | None]:
    """Applies ``kind``'s rule table to one file key.

    Returns:
        ``(rule, new_key)``: the first matching rule and our key (None when the rule drops it);
        ``(None, None)`` if no rule matches (the key is unexpected for this kind of file).
    """
    for rule in kind.rules:
        matched, new_key = rule.apply(key)
        if matched:
            return rule, new_key
    return None, None
