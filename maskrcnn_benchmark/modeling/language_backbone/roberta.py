"""RoBERTa text encoder with FIBER's text-to-image cross-attention layers ("roberta-fused-v2").

Paper: Liu et al., "RoBERTa: A Robustly Optimized BERT Pretraining Approach" (2019); FIBER (Dou et al., 2022).
Upstream file: ``fine_grained/maskrcnn_benchmark/modeling/language_backbone/roberta_fused_model_v2.py``
(a modified copy of Hugging Face's RoBERTa, Apache-2.0). Our own modules; parameter names equal Hugging Face
``RobertaModel`` names (no pooler) so ``roberta-base`` weights and FIBER checkpoints load unchanged
(upstream-facts.md 1.4, 5).

Layer computation (all layers; upstream-facts.md 1.4)::

    a = dropout(attention.output.dense(self_attention(h)))             # no residual / LayerNorm yet
    if image tokens given and the layer is fused:
        a = a + alpha_t2i * crossattention_t2i(query=a, key/value=image tokens)
    a = attention.output.LayerNorm(a + h)
    out = output.LayerNorm(dropout(output.dense(gelu(intermediate.dense(a)))) + a)

With ``alpha_t2i == 0`` or no image tokens this is exactly stock (post-LN) RoBERTa.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypedDict

import torch
import torch.nn.functional as F
import torch.utils.checkpoint as torch_checkpoint
from torch import Tensor, nn

from maskrcnn_benchmark.modeling.registry import LANGUAGE_BACKBONES

__all__ = [
    "RobertaArch",
    "LanguageDict",
    "create_position_ids",
    "extended_attention_mask",
    "RobertaEmbeddings",
    "RobertaSelfAttention",
    "RobertaAttention",
    "RobertaLayer",
    "RobertaEncoder",
    "RobertaModel",
    "RobertaFusedEncoder",
    "aggregate_language_features",
    "build_roberta_fused_v2",
]

logger = logging.getLogger(__name__)


@dataclass
class RobertaArch:
    """Architecture numbers of the text encoder (defaults = Hugging Face ``roberta-base``).

    ``fusion_kv_dims`` maps a layer index to the width of the image tokens its ``crossattention_t2i`` reads
    (FIBER-B: layers 6-9 read Swin stage 3 (512), layers 10-11 stage 4 (1024)); other layers have no
    cross-attention.
    """

    vocab_size: int = 50265
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 514
    type_vocab_size: int = 1
    layer_norm_eps: float = 1e-5
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    pad_token_id: int = 1
    fusion_kv_dims: dict[int, int] = field(default_factory=dict)

    def __post_init__(self):
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        bad = [i for i in self.fusion_kv_dims if not 0 <= i < self.num_layers]
        if bad:
            raise ValueError(f"fusion layers {bad} outside [0, {self.num_layers})")


class LanguageDict(TypedDict):
    """Text features handed to the head (upstream's ``language_dict_features``).

    hidden (Tensor[B, L, D]): final text states. embedded (Tensor[B, L, D]): hidden with padded tokens
    zeroed. masks (Tensor[B, L]): the attention mask. aggregate (Tensor[B, D]): masked mean of hidden.
    """

    hidden: Tensor
    embedded: Tensor
    masks: Tensor
    aggregate: Tensor


def create_position_ids(input_ids: Tensor, padding_idx: int) -> Tensor:
    """RoBERTa positions: non-pad tokens get padding_idx+1, +2, ... in order; pad tokens get padding_idx.

    Args:
        input_ids (LongTensor[B, L]).

    Returns:
        LongTensor[B, L].
    """
    keep = input_ids.ne(padding_idx).to(torch.int64)
    return torch.cumsum(keep, dim=1) * keep + padding_idx


def extended_attention_mask(attention_mask: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """Additive key mask from a 0/1 attention mask: 0 for real tokens, ``finfo(dtype).min`` for padding.

    Old transformers (used when FIBER was trained) put -10000 here; recent ones use ``finfo(dtype).min``.
    After the softmax both give the same probabilities (to float precision) for every row that has at least
    one real token, which is always the case (``<s>`` is never masked).

    Args:
        attention_mask (Tensor[B, L]): 1 for tokens to attend to.

    Returns:
        Tensor[B, 1, 1, L] of ``dtype``.
    """
    mask = attention_mask[:, None, None, :].to(dtype)
    return (1.0 - mask) * torch.finfo(dtype).min


def aggregate_language_features(hidden: Tensor, attention_mask: Tensor) -> LanguageDict:
    """Build the language dict (upstream ``get_aggregated_output`` with the dot-product token loss).

    Args:
        hidden (Tensor[B, L, D]), attention_mask (Tensor[B, L]).
    """
    mask = attention_mask.to(hidden.dtype)
    embedded = hidden * mask.unsqueeze(-1)
    aggregate = embedded.sum(1) / mask.sum(-1, keepdim=True)
    return {"aggregate": aggregate, "embedded": embedded, "masks": attention_mask, "hidden": hidden}


class RobertaEmbeddings(nn.Module):
    """Word + position (from input ids) + token-type(0) embeddings, LayerNorm, dropout."""

    def __init__(self, arch: RobertaArch):
        super().__init__()
        self.padding_idx = arch.pad_token_id
        self.word_embeddings = nn.Embedding(arch.vocab_size, arch.hidden_size, padding_idx=arch.pad_token_id)
        self.position_embeddings = nn.Embedding(arch.max_position_embeddings, arch.hidden_size,
                                                padding_idx=arch.pad_token_id)
        self.token_type_embeddings = nn.Embedding(arch.type_vocab_size, arch.hidden_size)
        self.LayerNorm = nn.LayerNorm(arch.hidden_size, eps=arch.layer_norm_eps)
        self.dropout = nn.Dropout(arch.hidden_dropout)
        # Kept for state-dict compatibility (upstream/HF save it); positions are derived from input_ids.
        self.register_buffer("position_ids", torch.arange(arch.max_position_embeddings).expand(1, -1).clone(),
                             persistent=True)

    def forward(self, input_ids: Tensor) -> Tensor:
        """
        Args:
            input_ids (LongTensor[B, L]).

        Returns:
            Tensor[B, L, D].
        """
        max_len = self.position_embeddings.num_embeddings - self.padding_idx - 1
        if input_ids.shape[1] > max_len:
            raise ValueError(f"text of length {input_ids.shape[1]} exceeds the {max_len} supported positions")
        positions = create_position_ids(input_ids, self.padding_idx)
        token_types = torch.zeros_like(input_ids)
        x = self.word_embeddings(input_ids) + self.token_type_embeddings(token_types)
        x = x + self.position_embeddings(positions)
        return self.dropout(self.LayerNorm(x))


class RobertaSelfAttention(nn.Module):
    """Multi-head attention projections (``query``, ``key``, ``value``) and the attention itself.

    Args:
        hidden_size: query width and output width D.
        num_heads: heads (head_dim = D / heads).
        dropout: attention-probability dropout.
        kv_dim: key/value input width (default D; the image width for cross-attention).
    """

    def __init__(self, hidden_size: int, num_heads: int, dropout: float, kv_dim: int | None = None):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, hidden_size // num_heads
        kv_dim = kv_dim or hidden_size
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key = nn.Linear(kv_dim, hidden_size)
        self.value = nn.Linear(kv_dim, hidden_size)
        self.dropout = nn.Dropout(dropout)

    def _heads(self, x: Tensor) -> Tensor:
        return x.unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2)

    def forward(self, hidden: Tensor, key_mask: Tensor | None = None,
                encoder_hidden: Tensor | None = None) -> Tensor:
        """
        Args:
            hidden (Tensor[B, L, D]): queries (and keys/values without ``encoder_hidden``).
            key_mask (Tensor[B, 1, 1, Lk] | None): additive mask over keys.
            encoder_hidden (Tensor[B, Lk, kv_dim] | None): keys/values for cross-attention.

        Returns:
            Tensor[B, L, D] (context, before the output dense).
        """
        source = hidden if encoder_hidden is None else encoder_hidden
        q, k, v = self._heads(self.query(hidden)), self._heads(self.key(source)), self._heads(self.value(source))
        if key_mask is not None:
            key_mask = key_mask.to(q.dtype)
        # softmax(q k^T / sqrt(hd) + mask) v with dropout on the probabilities, through the fused SDPA kernel
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask,
                                             dropout_p=self.dropout.p if self.training else 0.0,
                                             scale=1.0 / math.sqrt(self.head_dim))
        return out.transpose(1, 2).flatten(2)


class RobertaSelfOutput(nn.Module):
    """Output projection + dropout. The residual + LayerNorm is applied by :class:`RobertaLayer`."""

    def __init__(self, hidden_size: int, eps: float, dropout: float, with_layer_norm: bool = True):
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        # UPSTREAM-QUIRK: upstream-facts.md 1.4 (the cross-attention's LayerNorm is unused and replaced by
        # Identity, so it has no parameters)
        self.LayerNorm = nn.LayerNorm(hidden_size, eps=eps) if with_layer_norm else nn.Identity()
        self.dropout = nn.Dropout(dropout)

    def forward(self, context: Tensor) -> Tensor:
        return self.dropout(self.dense(context))


class RobertaAttention(nn.Module):
    """``self`` (attention) + ``output`` (dense, dropout; LayerNorm applied by the layer)."""

    def __init__(self, arch: RobertaArch, kv_dim: int | None = None, cross: bool = False):
        super().__init__()
        self.self = RobertaSelfAttention(arch.hidden_size, arch.num_heads, arch.attention_dropout, kv_dim)
        self.output = RobertaSelfOutput(arch.hidden_size, arch.layer_norm_eps, arch.hidden_dropout,
                                        with_layer_norm=not cross)

    def forward(self, hidden: Tensor, key_mask: Tensor | None = None,
                encoder_hidden: Tensor | None = None) -> Tensor:
        return self.output(self.self(hidden, key_mask, encoder_hidden))


class RobertaIntermediate(nn.Module):
    def __init__(self, arch: RobertaArch):
        super().__init__()
        self.dense = nn.Linear(arch.hidden_size, arch.intermediate_size)
        self.intermediate_act_fn = nn.GELU()

    def forward(self, x: Tensor) -> Tensor:
        return self.intermediate_act_fn(self.dense(x))


class RobertaOutput(nn.Module):
    def __init__(self, arch: RobertaArch):
        super().__init__()
        self.dense = nn.Linear(arch.intermediate_size, arch.hidden_size)
        self.LayerNorm = nn.LayerNorm(arch.hidden_size, eps=arch.layer_norm_eps)
        self.dropout = nn.Dropout(arch.hidden_dropout)

    def forward(self, x: Tensor, residual: Tensor) -> Tensor:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class RobertaLayer(nn.Module):
    """One post-LN encoder layer, optionally with gated text-to-image cross-attention.

    Args:
        arch: architecture numbers.
        kv_dim: image-token width for ``crossattention_t2i``; ``None`` = no cross-attention.
    """

    def __init__(self, arch: RobertaArch, kv_dim: int | None = None):
        super().__init__()
        self.attention = RobertaAttention(arch)
        if kv_dim is not None:
            self.crossattention_t2i = RobertaAttention(arch, kv_dim=kv_dim, cross=True)
            self.alpha_t2i = nn.Parameter(torch.zeros(1))
        self.intermediate = RobertaIntermediate(arch)
        self.output = RobertaOutput(arch)

    @property
    def fused(self) -> bool:
        """Whether this layer owns text-to-image cross-attention parameters."""
        return hasattr(self, "crossattention_t2i")

    def forward(self, hidden: Tensor, key_mask: Tensor | None = None,
                image_tokens: Tensor | None = None) -> Tensor:
        """
        Args:
            hidden (Tensor[B, L, D]).
            key_mask (Tensor[B, 1, 1, L] | None): additive text mask.
            image_tokens (Tensor[B, N, kv_dim] | None): image tokens (no mask over them, as upstream).

        Returns:
            Tensor[B, L, D].
        """
        attended = self.attention(hidden, key_mask)
        if image_tokens is not None:
            if not self.fused:
                raise ValueError("image tokens given to a RoBERTa layer without crossattention_t2i")
            # UPSTREAM-QUIRK: upstream-facts.md 1.4 (the query is the raw self-attention output, before the
            # residual and LayerNorm; the first LayerNorm comes after the gated cross-attention is added)
            attended = attended + self.alpha_t2i * self.crossattention_t2i(attended, None, image_tokens)
        attended = self.attention.output.LayerNorm(attended + hidden)
        return self.output(self.intermediate(attended), attended)


class RobertaEncoder(nn.Module):
    """``layer``: the stack of :class:`RobertaLayer`."""

    def __init__(self, arch: RobertaArch):
        super().__init__()
        self.layer = nn.ModuleList([RobertaLayer(arch, arch.fusion_kv_dims.get(i)) for i in range(arch.num_layers)])


class RobertaModel(nn.Module):
    """Embeddings + encoder (no pooler), Hugging Face parameter names.

    Args:
        arch: architecture numbers (:class:`RobertaArch`).
        use_checkpoint: gradient-checkpoint every layer in training (MODEL.LANGUAGE_BACKBONE.USE_CHECKPOINT;
            upstream sets the flag but never exercises it).
    """

    def __init__(self, arch: RobertaArch, use_checkpoint: bool = False):
        super().__init__()
        self.arch = arch
        self.use_checkpoint = use_checkpoint
        self.embeddings = RobertaEmbeddings(arch)
        self.encoder = RobertaEncoder(arch)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        # Hugging Face's BERT init (normal 0.02, zero bias, zero padding row); real weights come from a checkpoint.
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)
            if module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def get_extended_attention_mask(self, attention_mask: Tensor) -> Tensor:
        """Additive mask Tensor[B, 1, 1, L] in the parameters' dtype (see :func:`extended_attention_mask`)."""
        return extended_attention_mask(attention_mask, self.embeddings.word_embeddings.weight.dtype)

    def run_layer(self, index: int, hidden: Tensor, key_mask: Tensor | None = None,
                  image_tokens: Tensor | None = None) -> Tensor:
        """Run encoder layer ``index`` (gradient-checkpointed when enabled and training); see :class:`RobertaLayer`."""
        layer = self.encoder.layer[index]
        if self.use_checkpoint and self.training and torch.is_grad_enabled():
            return torch_checkpoint.checkpoint(layer, hidden, key_mask, image_tokens, use_reentrant=False)
        return layer(hidden, key_mask, image_tokens)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                image_tokens: Mapping[int, Tensor] | None = None) -> Tensor:
        """Text-only forward (optionally with FIXED image tokens per fused layer).

        Args:
            input_ids (LongTensor[B, L]), attention_mask (Tensor[B, L] | None; default all ones).
            image_tokens: ``{layer index: Tensor[B, N, kv_dim]}`` for fused layers (others run text-only).

        Returns:
            Tensor[B, L, D] final hidden states.
        """
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        key_mask = self.get_extended_attention_mask(attention_mask)
        hidden = self.embeddings(input_ids)
        image_tokens = image_tokens or {}
        for i in range(len(self.encoder.layer)):
            hidden = self.run_layer(i, hidden, key_mask, image_tokens.get(i))
        return hidden


class RobertaFusedEncoder(nn.Module):
    """Upstream's ``RobertaFusedEncoder``: holds ``model`` (:class:`RobertaModel`) and builds the language dict.

    Args:
        arch: architecture numbers.
        use_checkpoint: see :class:`RobertaModel`.
    """

    def __init__(self, arch: RobertaArch, use_checkpoint: bool = False):
        super().__init__()
        self.model = RobertaModel(arch, use_checkpoint)
        self.language_dim = arch.hidden_size

    @staticmethod
    def get_aggregated_output(features: Tensor, input_ids: Tensor, mask: Tensor) -> LanguageDict:
        """Language dict from final states (``input_ids`` unused; kept for upstream's call signature)."""
        del input_ids
        return aggregate_language_features(features, mask)

    def forward(self, tokenizer_input: Mapping[str, Tensor]) -> LanguageDict:
        """Text-only encoding (no image): ``{"input_ids", "attention_mask"}`` -> language dict."""
        mask = tokenizer_input["attention_mask"]
        hidden = self.model(tokenizer_input["input_ids"], mask)
        return aggregate_language_features(hidden, mask)


def roberta_arch_from_cfg(cfg, fusion_kv_dims: dict[int, int] | None = None) -> RobertaArch:
    """Read the text-encoder numbers from ``cfg.MODEL.LANGUAGE_BACKBONE`` (defaults = roberta-base)."""
    lb = cfg.MODEL.LANGUAGE_BACKBONE
    return RobertaArch(
        vocab_size=lb.VOCAB_SIZE, hidden_size=lb.LANG_DIM, num_layers=lb.NUM_LAYERS,
        num_heads=lb.NUM_ATTENTION_HEADS, intermediate_size=lb.INTERMEDIATE_SIZE,
        max_position_embeddings=lb.MAX_POSITION_EMBEDDINGS, type_vocab_size=lb.TYPE_VOCAB_SIZE,
        layer_norm_eps=lb.LAYER_NORM_EPS, hidden_dropout=lb.HIDDEN_DROPOUT_PROB,
        attention_dropout=lb.ATTENTION_DROPOUT_PROB, pad_token_id=lb.PAD_TOKEN_ID,
        fusion_kv_dims=dict(fusion_kv_dims or {}))


def fusion_kv_dims_from_cfg(cfg) -> dict[int, int]:
    """Which text layers get cross-attention and their image width, from the Swin settings.

    The last ``FUSION_BLOCKS_STAGE3 + DEPTHS[3]`` text layers are fused, in order with the fused Swin blocks:
    the first ``FUSION_BLOCKS_STAGE3`` read Swin stage 3 (width 4 * EMBED_DIM), the rest stage 4 (8 * EMBED_DIM).
    FIBER-B: layers 6-9 -> 512, layers 10-11 -> 1024.
    """
    sw = cfg.MODEL.SWINT
    n3, n4 = int(sw.FUSION_BLOCKS_STAGE3), int(sw.DEPTHS[3])
    num_layers = int(cfg.MODEL.LANGUAGE_BACKBONE.NUM_LAYERS)
    if n3 + n4 > num_layers:
        raise ValueError(f"MODEL.SWINT.FUSION_BLOCKS_STAGE3 ({n3}) + DEPTHS[3] ({n4}) fused steps need at least "
                         f"that many text layers, MODEL.LANGUAGE_BACKBONE.NUM_LAYERS is {num_layers}")
    first = num_layers - n3 - n4
    dims = {first + j: 4 * sw.EMBED_DIM for j in range(n3)}
    dims.update({first + n3 + j: 8 * sw.EMBED_DIM for j in range(n4)})
    return dims


@LANGUAGE_BACKBONES.register("roberta-fused-v2")
def build_roberta_fused_v2(cfg) -> nn.Sequential:
    """``Sequential(body=RobertaFusedEncoder)``; keys ``body.model.*`` (upstream-facts.md 1.4, 5)."""
    arch = roberta_arch_from_cfg(cfg, fusion_kv_dims_from_cfg(cfg))
    encoder = RobertaFusedEncoder(arch, use_checkpoint=cfg.MODEL.LANGUAGE_BACKBONE.USE_CHECKPOINT)
    return nn.Sequential(OrderedDict(body=encoder))
