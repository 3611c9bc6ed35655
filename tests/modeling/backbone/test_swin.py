import itertools

import pytest
import torch

from maskrcnn_benchmark.modeling.backbone.swin import (
    BasicLayer,
    PatchMerging,
    SwinTransformer,
    SwinTransformerBlock,
    WindowAttention,
    relative_position_index,
    shifted_window_mask,
    window_partition,
    window_reverse,
)

TINY = dict(embed_dim=16, depths=(1, 1, 2, 2), num_heads=(1, 2, 2, 4), window=4, drop_path_rate=0.0)


def tiny_swin(**overrides):
    kwargs = dict(TINY, dim_text=32, fusion_blocks_stage3=1)
    kwargs.update(overrides)
    torch.manual_seed(0)
    return SwinTransformer(**kwargs).eval()


def test_window_partition_roundtrip_and_order():
    x = torch.arange(2 * 8 * 12).float().view(2, 8, 12, 1)
    windows = window_partition(x, 4)
    assert windows.shape == (2 * 2 * 3, 16, 1)
    # second window of the first image = rows 0..3, cols 4..7
    assert windows[1, :, 0].tolist() == x[0, 0:4, 4:8, 0].flatten().tolist()
    # first window of the second image comes after all windows of the first (image-major)
    assert windows[6, :, 0].tolist() == x[1, 0:4, 0:4, 0].flatten().tolist()
    assert torch.equal(window_reverse(windows, 4, 8, 12), x)


def test_relative_position_index_matches_definition():
    w = 3
    idx = relative_position_index(w)
    assert idx.dtype == torch.int64 and idx.shape == (9, 9)
    for i, j in itertools.product(range(9), range(9)):
        (ri, ci), (rj, cj) = divmod(i, w), divmod(j, w)
        assert idx[i, j] == (ri - rj + w - 1) * (2 * w - 1) + (ci - cj + w - 1)
    assert idx.max() == (2 * w - 1) ** 2 - 1


@pytest.mark.parametrize("height,width", [(8, 8), (5, 11)])
def test_shifted_window_mask_matches_wraparound_rule(height, width):
    window, shift = 4, 2
    mask = shifted_window_mask(height, width, window, shift)
    hp, wp = -(-height // window) * window, -(-width // window) * window
    assert mask.shape == ((hp // window) * (wp // window), 16, 16)
    # Independent rule: in the rolled map, two tokens of a window may attend iff the cyclic shift wrapped
    # both or neither of them, separately along rows and columns.
    n_cols = wp // window
    for win in range(mask.shape[0]):
        r0, c0 = divmod(win, n_cols)
        for i, j in itertools.product(range(16), range(16)):
            ri, ci = r0 * window + i // window, c0 * window + i % window
            rj, cj = r0 * window + j // window, c0 * window + j % window
            same = ((ri >= hp - shift) == (rj >= hp - shift)) and ((ci >= wp - shift) == (cj >= wp - shift))
            assert mask[win, i, j].item() == (0.0 if same else -100.0)


def test_patch_merging_gather_order():
    merge = PatchMerging(1)
    captured = {}
    merge.norm.register_forward_hook(lambda m, inp, out: captured.setdefault("x", inp[0]))
    grid = torch.tensor([[0., 1., 2., 3.], [10., 11., 12., 13.]])  # value = 10*row + col
    out, h2, w2 = merge(grid.view(1, 8, 1), 2, 4)
    assert (h2, w2) == (1, 2) and out.shape == (1, 2, 2)
    # (even row, even col), (odd row, even col), (even row, odd col), (odd row, odd col)
    assert captured["x"][0].tolist() == [[0., 10., 1., 11.], [2., 12., 3., 13.]]


def test_patch_merging_pads_odd_grid():
    merge = PatchMerging(2)
    captured = {}
    merge.norm.register_forward_hook(lambda m, inp, out: captured.setdefault("x", inp[0]))
    x = torch.arange(1, 1 + 3 * 3 * 2).float().view(1, 9, 2)
    out, h2, w2 = merge(x, 3, 3)
    assert (h2, w2) == (2, 2) and out.shape == (1, 4, 4)
    # last merged cell sees the (2,2) token and three zero pads
    assert captured["x"][0, 3].tolist() == x[0, 8].tolist() + [0.0] * 6


@pytest.mark.parametrize("size", [(64, 64), (70, 101), (33, 47)])
def test_swin_stage_shapes_for_odd_sizes(size):
    model = tiny_swin()
    h, w = size
    outs = model(torch.randn(2, 3, h, w))
    sizes = [(-(-h // 4), -(-w // 4))]
    for _ in range(3):
        sizes.append(((sizes[-1][0] + 1) // 2, (sizes[-1][1] + 1) // 2))
    assert [tuple(o.shape) for o in outs] == [(2, 16 * 2 ** i, *sizes[i]) for i in range(4)]
    assert all(torch.isfinite(o).all() for o in outs)


def test_output_norms_and_fused_blocks_layout():
    model = tiny_swin()
    assert isinstance(model.norm0, torch.nn.Identity)
    assert [model.norm1.normalized_shape, model.norm2.normalized_shape, model.norm3.normalized_shape] == \
        [(32,), (64,), (128,)]
    fused = [(s, b) for s in range(4) for b, blk in enumerate(model.layers[s].blocks) if blk.fused]
    assert fused == [(2, 1), (3, 0), (3, 1)]
    assert [blk.shift for blk in model.layers[2].blocks] == [0, 2]
    keys = set(model.state_dict())
    assert "layers.3.blocks.0.attn.qkv_text_i2t.weight" in keys
    assert "layers.2.blocks.0.attn.qkv_text_i2t.weight" not in keys
    assert not any("norm_i2t_i" in k for k in keys)
    assert any("norm_i2t_i" in k for k in tiny_swin(i2t_query_norm=True).state_dict())


def _window_attention_reference(attn, x, mask, text, text_mask):
    """Upstream's formulation: text keys/values repeated for every window of the image."""
    bw, n, c = x.shape
    heads, hd = attn.num_heads, c // attn.num_heads
    q, k, v = attn.qkv(x).reshape(bw, n, 3, heads, hd).permute(2, 0, 3, 1, 4)
    bias = attn.relative_position_bias_table[attn.relative_position_index.view(-1)].view(n, n, heads)
    logits = q * hd ** -0.5 @ k.transpose(-2, -1) + bias.permute(2, 0, 1)[None]
    if mask is not None:
        nw = mask.shape[0]
        logits = (logits.view(bw // nw, nw, heads, n, n) + mask[None, :, None]).view(bw, heads, n, n)
    y = attn.proj((logits.softmax(-1) @ v).transpose(1, 2).reshape(bw, n, c))
    b, lt, _ = text.shape
    nw = bw // b
    kt, vt = attn.qkv_text_i2t(text).reshape(b, lt, 2, heads, hd).permute(2, 0, 3, 1, 4)
    kt, vt = kt.repeat_interleave(nw, 0), vt.repeat_interleave(nw, 0)
    query_in = attn.norm_i2t_i(y) if hasattr(attn, "norm_i2t_i") else y
    qi = attn.qkv_i2t(query_in).reshape(bw, n, heads, hd).transpose(1, 2) * hd ** -0.5
    li = qi @ kt.transpose(-2, -1) + text_mask.view(b, 1, 1, lt).repeat_interleave(nw, 0)
    yi = attn.proj_i2t((li.softmax(-1) @ vt).transpose(1, 2).reshape(bw, n, c))
    return y + attn.alpha_i2t * yi


@pytest.mark.parametrize("v3", [False, True])
def test_window_attention_image_to_text_matches_reference(v3):
    torch.manual_seed(1)
    attn = WindowAttention(8, 2, 2, dim_text=6, i2t_query_norm=v3)
    with torch.no_grad():
        attn.alpha_i2t.fill_(0.7)
        if v3:
            attn.norm_i2t_i.weight.uniform_(0.5, 1.5)
    b, nw = 2, 3
    x = torch.randn(b * nw, 4, 8)
    mask = torch.zeros(nw, 4, 4)
    mask[1, 0, 3] = mask[1, 3, 0] = -100.0
    text = torch.randn(b, 5, 6)
    text_mask = torch.zeros(b, 1, 1, 5)
    text_mask[1, ..., 3:] = torch.finfo(torch.float32).min
    out = attn(x, mask, text, text_mask)
    torch.testing.assert_close(out, _window_attention_reference(attn, x, mask, text, text_mask),
                               rtol=1e-5, atol=1e-6)


def test_text_changes_fused_blocks_only_through_alpha():
    model = tiny_swin()
    images = torch.randn(1, 3, 64, 64)
    text = torch.randn(1, 5, 32)
    text_mask = torch.zeros(1, 1, 1, 5)
    plain = model(images)
    with_text = model(images, text, text_mask)
    for a, b in zip(plain, with_text):
        assert torch.equal(a, b)  # alpha_i2t = 0 at init
    with torch.no_grad():
        model.layers[3].blocks[1].attn.alpha_i2t.fill_(1.0)
    changed = model(images, text, text_mask)
    assert all(torch.equal(a, b) for a, b in zip(plain[:3], changed[:3]))
    assert not torch.allclose(plain[3], changed[3])


def test_frozen_stages_stay_frozen_in_train_mode():
    model = tiny_swin(frozen_stages=2)
    model.train()
    assert not model.patch_embed.training and not model.layers[0].training
    assert model.layers[1].training
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {n for n, _ in model.named_parameters() if n.startswith(("patch_embed.", "layers.0."))}
    assert all(p.requires_grad for p in tiny_swin(frozen_stages=-1).parameters())


def test_gradient_checkpointing_matches_plain():
    images = torch.randn(1, 3, 64, 64)
    grads = []
    for use_checkpoint in (False, True):
        model = tiny_swin(use_checkpoint=use_checkpoint).train()
        assert all(layer.use_checkpoint == use_checkpoint for layer in model.layers)
        outs = model(images)
        loss = sum(o.square().mean() for o in outs)
        loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-5, atol=1e-6)


def test_block_rejects_bad_grid():
    block = SwinTransformerBlock(8, 2, window=2)
    with pytest.raises(ValueError, match="tokens for a"):
        block(torch.randn(1, 10, 8), 3, 3)
    with pytest.raises(ValueError, match="shift"):
        SwinTransformerBlock(8, 2, window=2, shift=2)
    with pytest.raises(ValueError, match="dim_text"):
        BasicLayer(8, 2, 2, 2, num_fused=1)


@pytest.mark.parametrize("shift", [0, 2])
@pytest.mark.parametrize("grid", [(8, 8), (6, 10)])
def test_block_matches_timm_swin_block(shift, grid):
    """Independent reference: timm's Swin block (same parameter names) on the same weights."""
    timm_swin = pytest.importorskip("timm.models.swin_transformer")
    torch.manual_seed(0)
    ours = SwinTransformerBlock(16, 2, window=4, shift=shift).eval()
    with torch.no_grad():
        for name, p in ours.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5) if name.endswith("weight") else p.uniform_(-0.3, 0.3)
            elif "relative_position_bias_table" in name:
                p.normal_(0, 1.0)  # large enough that a wrong bias index changes the result
    reference = timm_swin.SwinTransformerBlock(16, grid, num_heads=2, window_size=4, shift_size=shift,
                                               always_partition=True, dynamic_mask=True).eval()
    missing, unexpected = reference.load_state_dict(ours.state_dict(), strict=False)
    assert not missing and set(unexpected) <= {"attn.relative_position_index"}
    h, w = grid
    x = torch.randn(2, h * w, 16)
    with torch.no_grad():
        out = ours(x, h, w, shifted_window_mask(h, w, 4, 2))
        ref = reference(x.view(2, h, w, 16)).reshape(2, h * w, 16)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
