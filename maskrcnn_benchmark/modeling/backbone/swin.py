"""Swin Transformer image body with optional image-to-text cross-attention (FIBER's fused Swin).

Paper: Liu et al., "Swin Transformer: Hierarchical Vision Transformer using Shifted Windows" (2021); FIBER:
Dou et al., "Coarse-to-Fine Vision-Language Pre-training with Fusion in the Backbone" (2022). Upstream files:
``fine_grained/maskrcnn_benchmark/modeling/backbone/fusion_swin_transformer_v2.py`` / ``_v3.py`` (MIT).
Our own implementation; parameter and buffer names match upstream's state-dict keys
(upstream-facts.md 1.3, 1.6, 1.7, 5).

Token layout: images travel as ``(B, H*W, C)`` token sequences (row-major) with their grid size ``(H, W)``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
import torch.nn.functional as F
import torch.utils.checkpoint as torch_checkpoint
from timm.layers import DropPath, Mlp, to_2tuple, trunc_normal_
from torch import Tensor, nn

__all__ = [
    "window_partition",
    "window_reverse",
    "relative_position_index",
    "shifted_window_mask",
    "PatchEmbed",
    "WindowAttention",
    "SwinTransformerBlock",
    "PatchMerging",
    "BasicLayer",
    "SwinTransformer",
]

logger = logging.getLogger(__name__)

# Additive logit for token pairs that belong to different regions of a shifted window.
_SHIFT_MASK_VALUE = -100.0


def window_partition(x: Tensor, window: int) -> Tensor:
    """Cut a padded map into non-overlapping windows.

    Args:
        x (Tensor[B, H, W, C]): H and W multiples of ``window``.
        window: window side.

    Returns:
        Tensor[B * nW, window * window, C], windows in image-major, then row-major order.
    """
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, c)


def window_reverse(windows: Tensor, window: int, height: int, width: int) -> Tensor:
    """Inverse of :func:`window_partition`.

    Args:
        windows (Tensor[B * nW, window * window, C]).
        window, height, width: window side and padded map size.

    Returns:
        Tensor[B, height, width, C].
    """
    c = windows.shape[-1]
    x = windows.view(-1, height // window, width // window, window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, height, width, c)


def relative_position_index(window: int) -> Tensor:
    """Index into the ``(2w-1)^2`` relative-position bias table for every token pair of a window.

    Returns:
        LongTensor[w*w, w*w]: for tokens i=(ri, ci), j=(rj, cj): (ri-rj+w-1)*(2w-1) + (ci-cj+w-1).
    """
    rows, cols = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    coords = torch.stack([rows.flatten(), cols.flatten()])  # [2, w*w]
    rel = coords[:, :, None] - coords[:, None, :] + (window - 1)  # [2, w*w, w*w]
    return (rel[0] * (2 * window - 1) + rel[1]).to(torch.int64)


def shifted_window_mask(height: int, width: int, window: int, shift: int, device=None) -> Tensor:
    """Additive attention mask for shifted windows (0 inside a region, -100 across regions).

    The padded map (multiples of ``window``) is labelled with a 3x3 grid of regions split at ``-window`` and
    ``-shift`` along each axis; after the cyclic shift, tokens of one window may only attend to tokens of the
    same region.

    Args:
        height, width: unpadded token grid size.
        window, shift: window side and shift (0 < shift < window).

    Returns:
        Tensor[nW, window*window, window*window] (float32).
    """
    hp = -(-height // window) * window
    wp = -(-width // window) * window
    labels = torch.zeros((1, hp, wp, 1), device=device)
    bounds = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    region = 0
    for rows in bounds:
        for cols in bounds:
            labels[:, rows, cols, :] = region
            region += 1
    windows = window_partition(labels, window).squeeze(-1)  # [nW, w*w]
    diff = windows[:, None, :] - windows[:, :, None]
    return torch.zeros_like(diff).masked_fill(diff != 0, _SHIFT_MASK_VALUE)


class PatchEmbed(nn.Module):
    """Non-overlapping patch embedding: zero-pad to a multiple of the patch, Conv2d(stride=patch), LayerNorm.

    Args:
        patch_size: patch side (4 in Swin).
        in_chans: input channels.
        embed_dim: output channels C.
        patch_norm: apply LayerNorm(C) over the tokens.
    """

    def __init__(self, patch_size: int = 4, in_chans: int = 3, embed_dim: int = 96, patch_norm: bool = True):
        super().__init__()
        self.patch_size = to_2tuple(patch_size)
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=self.patch_size, stride=self.patch_size)
        self.norm = nn.LayerNorm(embed_dim) if patch_norm else None

    def forward(self, images: Tensor) -> tuple[Tensor, int, int]:
        """
        Args:
            images (Tensor[B, in_chans, H, W]).

        Returns:
            (tokens Tensor[B, Hp*Wp, C], Hp, Wp) with Hp = ceil(H / patch), Wp = ceil(W / patch).
        """
        ph, pw = self.patch_size
        h, w = images.shape[-2:]
        images = F.pad(images, (0, (pw - w % pw) % pw, 0, (ph - h % ph) % ph))
        x = self.proj(images)
        hp, wp = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2)
        if self.norm is not None:
            x = self.norm(x)
        return x, hp, wp


class WindowAttention(nn.Module):
    """Window multi-head self-attention with relative position bias, plus optional image-to-text attention.

    With ``dim_text`` set (fused blocks, upstream-facts.md 1.6), after the window self-attention output ``x`` is
    formed, every image token also attends to the text tokens: ``q = qkv_i2t(x)`` (``qkv_i2t(norm_i2t_i(x))``
    in v3), keys/values ``qkv_text_i2t(text)`` projected into the image width C, same heads as the stage,
    softmax over text tokens with the additive text mask; ``x = x + alpha_i2t * proj_i2t(attn @ v)``.

    Args:
        dim: channels C.
        window: window side.
        num_heads: attention heads (C must be divisible).
        qkv_bias: bias in the qkv projections.
        qk_scale: logit scale override (default head_dim ** -0.5).
        attn_drop, proj_drop: dropout probabilities.
        dim_text: text hidden size; ``None`` disables the image-to-text attention.
        i2t_query_norm: v3 only; LayerNorm(C) ``norm_i2t_i`` on the cross-attention query input.
    """

    def __init__(self, dim: int, window: int, num_heads: int, qkv_bias: bool = True,
                 qk_scale: float | None = None, attn_drop: float = 0.0, proj_drop: float = 0.0,
                 dim_text: int | None = None, i2t_query_norm: bool = False):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim, self.window, self.num_heads = dim, window, num_heads
        self.head_dim = dim // num_heads
        self.scale = qk_scale or self.head_dim ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(window), persistent=True)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        trunc_normal_(self.relative_position_bias_table, std=0.02)

        self.fused = dim_text is not None
        if self.fused:
            if i2t_query_norm:
                self.norm_i2t_i = nn.LayerNorm(dim)
            self.qkv_text_i2t = nn.Linear(dim_text, dim * 2, bias=qkv_bias)
            self.qkv_i2t = nn.Linear(dim, dim, bias=qkv_bias)
            self.attn_drop_i2t = nn.Dropout(attn_drop)
            self.proj_i2t = nn.Linear(dim, dim)
            self.proj_drop_i2t = nn.Dropout(proj_drop)
            self.alpha_i2t = nn.Parameter(torch.zeros(1))

    def _dropout_p(self, dropout: nn.Dropout) -> float:
        return dropout.p if self.training else 0.0

    def _relative_bias(self) -> Tensor:
        n = self.window * self.window
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(n, n, self.num_heads).permute(2, 0, 1)  # [heads, N, N]

    def _split_heads(self, x: Tensor) -> Tensor:
        """[..., T, C] -> [..., heads, T, head_dim]."""
        return x.unflatten(-1, (self.num_heads, self.head_dim)).transpose(-3, -2)

    def _self_attention(self, x: Tensor, mask: Tensor | None) -> Tensor:
        # softmax(scale * q k^T + relative bias [+ shift mask]) v through the fused SDPA kernel. Windows are
        # folded into the head axis, [B, nW * heads, N, hd], so the per-window bias/mask [nW * heads, N, N]
        # broadcasts over the image batch without being copied per image.
        bw, n, c = x.shape
        nw = 1 if mask is None else mask.shape[0]
        if bw % nw:
            raise ValueError(f"{bw} windows are not a multiple of the {nw} windows of the shift mask")
        qkv = self.qkv(x).reshape(bw // nw, nw, n, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(3, 0, 1, 4, 2, 5).flatten(2, 3)  # each [B, nW * heads, N, hd]
        bias = self._relative_bias().unsqueeze(0)  # [1, heads, N, N]
        if mask is not None:
            bias = bias + mask.unsqueeze(1).to(bias.dtype)  # [nW, heads, N, N]
        bias = bias.reshape(1, nw * self.num_heads, n, n).to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=self._dropout_p(self.attn_drop),
                                             scale=self.scale)
        out = out.unflatten(1, (nw, self.num_heads)).permute(0, 1, 3, 2, 4).reshape(bw, n, c)
        return self.proj_drop(self.proj(out))

    def _image_to_text(self, x: Tensor, text: Tensor, text_mask: Tensor | None) -> Tensor:
        # All windows of one image attend to the same text; instead of repeating text keys per window
        # (upstream), queries of all windows of an image are stacked: same result, no copies.
        b, lt, _ = text.shape
        bw, n, c = x.shape
        if bw % b:
            raise ValueError(f"{bw} windows are not a multiple of the text batch {b}")
        query_in = self.norm_i2t_i(x) if hasattr(self, "norm_i2t_i") else x
        q = self._split_heads(self.qkv_i2t(query_in).reshape(b, bw // b * n, c))
        k, v = self.qkv_text_i2t(text).chunk(2, dim=-1)
        key_mask = None if text_mask is None else text_mask.reshape(b, 1, 1, lt).to(q.dtype)
        out = F.scaled_dot_product_attention(q, self._split_heads(k), self._split_heads(v), attn_mask=key_mask,
                                             dropout_p=self._dropout_p(self.attn_drop_i2t),
                                             scale=self.head_dim ** -0.5)  # [B, heads, nW*N, hd]
        out = out.transpose(1, 2).reshape(bw, n, c)
        return self.proj_drop_i2t(self.proj_i2t(out))

    def forward(self, x: Tensor, mask: Tensor | None = None, text: Tensor | None = None,
                text_mask: Tensor | None = None) -> Tensor:
        """
        Args:
            x (Tensor[B*nW, N, C]): window tokens, N = window**2, windows image-major.
            mask (Tensor[nW, N, N] | None): additive shifted-window mask.
            text (Tensor[B, Lt, dim_text] | None): text states; used only when the module is fused.
            text_mask (Tensor[B, 1, 1, Lt] | None): additive text mask (0 keep, very negative for padding).

        Returns:
            Tensor[B*nW, N, C].
        """
        x = self._self_attention(x, mask)
        if text is not None and self.fused:
            x = x + self.alpha_i2t * self._image_to_text(x, text, text_mask)
        return x


class SwinTransformerBlock(nn.Module):
    """Pre-norm Swin block: (shifted) window attention [+ image-to-text attention] and an MLP, both residual.

    Args:
        dim, num_heads, window: channels, heads, window side.
        shift: cyclic shift (0 for even blocks, window // 2 for odd ones).
        mlp_ratio: MLP hidden width / dim.
        qkv_bias, qk_scale, drop, attn_drop: as in :class:`WindowAttention`.
        drop_path: stochastic depth probability.
        dim_text, i2t_query_norm: see :class:`WindowAttention`.
    """

    def __init__(self, dim: int, num_heads: int, window: int = 7, shift: int = 0, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, qk_scale: float | None = None, drop: float = 0.0,
                 attn_drop: float = 0.0, drop_path: float = 0.0, dim_text: int | None = None,
                 i2t_query_norm: bool = False):
        super().__init__()
        if not 0 <= shift < window:
            raise ValueError(f"shift {shift} must be in [0, window={window})")
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, num_heads, qkv_bias, qk_scale, attn_drop, drop, dim_text,
                                    i2t_query_norm)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(in_features=dim, hidden_features=int(dim * mlp_ratio), act_layer=nn.GELU, drop=drop)

    @property
    def fused(self) -> bool:
        """Whether this block owns image-to-text cross-attention parameters."""
        return self.attn.fused

    def forward(self, x: Tensor, height: int, width: int, shift_mask: Tensor | None = None,
                text: Tensor | None = None, text_mask: Tensor | None = None) -> Tensor:
        """
        Args:
            x (Tensor[B, H*W, C]): tokens of an H x W grid.
            height, width: grid size.
            shift_mask (Tensor[nW, N, N] | None): from :func:`shifted_window_mask`; used by shifted blocks.
            text (Tensor[B, Lt, Dt] | None), text_mask (Tensor[B, 1, 1, Lt] | None): for fused blocks.

        Returns:
            Tensor[B, H*W, C].
        """
        b, length, c = x.shape
        if length != height * width:
            raise ValueError(f"got {length} tokens for a {height}x{width} grid")
        w = self.window
        y = self.norm1(x).view(b, height, width, c)
        pad_b, pad_r = (w - height % w) % w, (w - width % w) % w
        y = F.pad(y, (0, 0, 0, pad_r, 0, pad_b))
        hp, wp = height + pad_b, width + pad_r
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(1, 2))
        y = self.attn(window_partition(y, w), shift_mask if self.shift else None, text, text_mask)
        y = window_reverse(y, w, hp, wp)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        y = y[:, :height, :width, :].reshape(b, length, c)
        x = x + self.drop_path(y)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """2x2 patch merging: concatenate the four sub-grids (4C), LayerNorm, Linear to 2C (no bias).

    Sub-grid order (upstream-facts.md 1.3): (even row, even col), (odd row, even col), (even row, odd col),
    (odd row, odd col). Upstream asserts an even grid (SIZE_DIVISIBILITY 32); we zero-pad an odd grid at the
    bottom/right instead, which gives the same result on even grids and ((H+1)//2, (W+1)//2) in general.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: Tensor, height: int, width: int) -> tuple[Tensor, int, int]:
        """
        Args:
            x (Tensor[B, H*W, C]).

        Returns:
            (Tensor[B, H2*W2, 2C], H2, W2) with H2 = (H+1)//2, W2 = (W+1)//2.
        """
        b, length, c = x.shape
        if length != height * width:
            raise ValueError(f"got {length} tokens for a {height}x{width} grid")
        x = F.pad(x.view(b, height, width, c), (0, 0, 0, width % 2, 0, height % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        h2, w2 = x.shape[1:3]
        return self.reduction(self.norm(x.reshape(b, h2 * w2, 4 * c))), h2, w2


class BasicLayer(nn.Module):
    """One Swin stage: ``depth`` blocks (alternating shift) and an optional trailing PatchMerging.

    Args:
        dim, depth, num_heads, window, mlp_ratio, qkv_bias, qk_scale, drop, attn_drop: block settings.
        drop_path (Sequence[float]): per-block stochastic depth.
        downsample: add a PatchMerging at the end.
        use_checkpoint: gradient-checkpoint every block in training.
        dim_text: text width for fused blocks.
        num_fused: how many of the LAST blocks are fused (own image-to-text attention).
        i2t_query_norm: v3 query LayerNorm in fused blocks.
    """

    def __init__(self, dim: int, depth: int, num_heads: int, window: int, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, qk_scale: float | None = None, drop: float = 0.0,
                 attn_drop: float = 0.0, drop_path: Sequence[float] = (), downsample: bool = False,
                 use_checkpoint: bool = False, dim_text: int | None = None, num_fused: int = 0,
                 i2t_query_norm: bool = False):
        super().__init__()
        if not 0 <= num_fused <= depth:
            raise ValueError(f"num_fused {num_fused} must be in [0, depth={depth}]")
        if num_fused and dim_text is None:
            raise ValueError("fused blocks need dim_text")
        drop_path = list(drop_path) or [0.0] * depth
        self.window, self.shift = window, window // 2
        self.use_checkpoint = use_checkpoint
        self.first_fused = depth - num_fused
        self.blocks = nn.ModuleList([
            SwinTransformerBlock(dim, num_heads, window, 0 if i % 2 == 0 else window // 2, mlp_ratio, qkv_bias,
                                 qk_scale, drop, attn_drop, drop_path[i],
                                 dim_text if i >= self.first_fused else None, i2t_query_norm)
            for i in range(depth)])
        self.downsample = PatchMerging(dim) if downsample else None

    def shift_mask(self, height: int, width: int, device=None) -> Tensor:
        """The stage's shifted-window mask for an H x W grid (Tensor[nW, N, N])."""
        return shifted_window_mask(height, width, self.window, self.shift, device)

    def run_block(self, index: int, x: Tensor, height: int, width: int, shift_mask: Tensor,
                  text: Tensor | None = None, text_mask: Tensor | None = None) -> Tensor:
        """Run block ``index`` (gradient-checkpointed when enabled and training)."""
        block = self.blocks[index]
        if self.use_checkpoint and self.training and torch.is_grad_enabled():
            return torch_checkpoint.checkpoint(block, x, height, width, shift_mask, text, text_mask,
                                               use_reentrant=False)
        return block(x, height, width, shift_mask, text, text_mask)

    def forward(self, x: Tensor, height: int, width: int, text: Tensor | None = None,
                text_mask: Tensor | None = None) -> tuple[Tensor, Tensor, int, int]:
        """Run all blocks with a FIXED text (no text update; the fusion wrapper interleaves updates itself).

        Returns:
            (stage output Tensor[B, H*W, C], next-stage input Tensor[B, H2*W2, C2], H2, W2); without
            downsampling the next-stage input is the stage output and (H2, W2) = (H, W).
        """
        mask = self.shift_mask(height, width, x.device)
        for i in range(len(self.blocks)):
            x = self.run_block(i, x, height, width, mask, text, text_mask)
        return (x,) + self.downsample_tokens(x, height, width)

    def downsample_tokens(self, x: Tensor, height: int, width: int) -> tuple[Tensor, int, int]:
        """Apply the trailing PatchMerging if any."""
        if self.downsample is None:
            return x, height, width
        return self.downsample(x, height, width)


class SwinTransformer(nn.Module):
    """Swin body returning the normalised outputs of stages 2..4 (the FPN's C3..C5) plus stage 1.

    Fused blocks: the last ``fusion_blocks_stage3`` blocks of stage 3 (index 2) and all blocks of stage 4
    (index 3) when ``dim_text`` is set (upstream-facts.md 1.5). Output norms: ``norm0`` is Identity (the
    RETINANET arch skips stage 1 in the FPN), ``norm1..norm3`` LayerNorms.

    Args:
        patch_size, in_chans, embed_dim, depths, num_heads, window, mlp_ratio, qkv_bias, qk_scale: architecture.
        drop_rate, attn_drop_rate, drop_path_rate: regularisation (drop path linear over all blocks).
        patch_norm: LayerNorm after the patch embedding.
        frozen_stages: -1 none; 0 patch embed; k >= 2 also stages 0..k-2 (upstream's FREEZE_CONV_BODY_AT).
        use_checkpoint: gradient checkpointing for stages with index >= frozen_stages.
        dim_text: text hidden size for fused blocks (None: no fusion parameters at all).
        fusion_blocks_stage3: number of fused blocks at the end of stage 3.
        i2t_query_norm: v3 (True) or v2 (False) fused blocks.
        first_norm_identity: ``norm0`` is Identity (True for "*-RETINANET" archs).
    """

    def __init__(self, patch_size: int = 4, in_chans: int = 3, embed_dim: int = 96,
                 depths: Sequence[int] = (2, 2, 6, 2), num_heads: Sequence[int] = (3, 6, 12, 24),
                 window: int = 7, mlp_ratio: float = 4.0, qkv_bias: bool = True, qk_scale: float | None = None,
                 drop_rate: float = 0.0, attn_drop_rate: float = 0.0, drop_path_rate: float = 0.2,
                 patch_norm: bool = True, frozen_stages: int = -1, use_checkpoint: bool = False,
                 dim_text: int | None = None, fusion_blocks_stage3: int = 4, i2t_query_norm: bool = False,
                 first_norm_identity: bool = True):
        super().__init__()
        if len(depths) != 4 or len(num_heads) != 4:
            raise ValueError(f"need 4 stages, got depths={tuple(depths)} num_heads={tuple(num_heads)}")
        if dim_text is not None and not 0 <= fusion_blocks_stage3 <= depths[2]:
            raise ValueError(f"fusion_blocks_stage3 (MODEL.SWINT.FUSION_BLOCKS_STAGE3) = {fusion_blocks_stage3} "
                             f"must be in [0, stage-3 depth {depths[2]}]")
        self.frozen_stages = frozen_stages
        self.num_features = [int(embed_dim * 2 ** i) for i in range(4)]
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim, patch_norm)
        self.pos_drop = nn.Dropout(p=drop_rate)
        rates = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()
        fused_per_stage = [0, 0, fusion_blocks_stage3, depths[3]] if dim_text is not None else [0] * 4
        self.layers = nn.ModuleList()
        for i in range(4):
            start = sum(depths[:i])
            self.layers.append(BasicLayer(
                self.num_features[i], depths[i], num_heads[i], window, mlp_ratio, qkv_bias, qk_scale, drop_rate,
                attn_drop_rate, rates[start:start + depths[i]], downsample=i < 3,
                use_checkpoint=use_checkpoint and i > frozen_stages - 1, dim_text=dim_text,
                num_fused=fused_per_stage[i], i2t_query_norm=i2t_query_norm))
        # UPSTREAM-QUIRK: upstream-facts.md 1.3 (norm0 is Identity for "*-RETINANET" archs: no keys)
        self.norm0 = nn.Identity() if first_norm_identity else nn.LayerNorm(self.num_features[0])
        self.norm1 = nn.LayerNorm(self.num_features[1])
        self.norm2 = nn.LayerNorm(self.num_features[2])
        self.norm3 = nn.LayerNorm(self.num_features[3])
        self._freeze_stages()

    def _freeze_stages(self) -> None:
        frozen = []
        if self.frozen_stages >= 0:
            frozen.append(self.patch_embed)
        if self.frozen_stages >= 2:
            frozen.append(self.pos_drop)
            frozen.extend(self.layers[i] for i in range(self.frozen_stages - 1))
        for module in frozen:
            module.eval()
            for p in module.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True):
        """Switch mode but keep frozen stages in eval mode without gradients."""
        super().train(mode)
        self._freeze_stages()
        return self

    def stage_output(self, index: int, x: Tensor, height: int, width: int) -> Tensor:
        """Apply ``norm{index}`` and reshape tokens to a map: Tensor[B, C, H, W]."""
        x = getattr(self, f"norm{index}")(x)
        return x.transpose(1, 2).reshape(x.shape[0], self.num_features[index], height, width)

    def embed(self, images: Tensor) -> tuple[Tensor, int, int]:
        """Patch embedding + position dropout: (Tensor[B, H/4*W/4, C], H/4, W/4)."""
        x, h, w = self.patch_embed(images)
        return self.pos_drop(x), h, w

    def forward(self, images: Tensor, text: Tensor | None = None,
                text_mask: Tensor | None = None) -> list[Tensor]:
        """Image-only (or fixed-text) forward.

        Args:
            images (Tensor[B, 3, H, W]).
            text (Tensor[B, Lt, Dt] | None), text_mask (Tensor[B, 1, 1, Lt] | None): a FIXED text fed to all
                fused blocks (the text is not updated here; :class:`FusionBackbone` does the two-way fusion).

        Returns:
            [stage1 Tensor[B, C, H/4, W/4], stage2 [B, 2C, H/8, W/8], stage3 [B, 4C, H/16, W/16],
            stage4 [B, 8C, H/32, W/32]] (stage sizes rounded up).
        """
        x, h, w = self.embed(images)
        outs = []
        for i, layer in enumerate(self.layers):
            out, x_next, h2, w2 = layer(x, h, w, text, text_mask)
            outs.append(self.stage_output(i, out, h, w))
            x, h, w = x_next, h2, w2
        return outs
