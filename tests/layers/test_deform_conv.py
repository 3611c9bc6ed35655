"""Modulated deformable convolution (DCNv2): compiled kernel vs torchvision vs pure torch vs a slow loop
reference, gradients (gradcheck), the finer-level offset quirk (upstream-facts.md 1.10), dtypes and errors."""

import math

import pytest
import torch
import torchvision

from maskrcnn_benchmark.layers import ModulatedDeformConv, modulated_deform_conv

ALL_IMPLS = ["compiled", "torch", "native"]


@pytest.fixture(params=ALL_IMPLS)
def dcn_impl(request):
    if request.param == "compiled":
        request.getfixturevalue("require_compiled")
    return request.param


def _bilinear(plane, height, width, y, x):
    if y <= -1 or y >= height or x <= -1 or x >= width:
        return 0.0
    y0, x0 = math.floor(y), math.floor(x)
    ly, lx = y - y0, x - x0
    total = 0.0
    for yy, wy in ((y0, 1 - ly), (y0 + 1, ly)):
        for xx, wx in ((x0, 1 - lx), (x0 + 1, lx)):
            if 0 <= yy < height and 0 <= xx < width:
                total += wy * wx * plane[yy][xx]
    return total


def reference_dcn(x, offset, mask, weight, bias, stride, padding, dilation, groups, dg):
    """DCNv2 from its definition: every (image, channel, tap, output position) sampled bilinearly in Python and
    modulated, then contracted with the weight in float64. Offsets/mask are read from each image's raw buffer
    with the OUTPUT's (Ho, Wo) strides, as upstream's kernel does, so a larger (finer-level) offset tensor is
    handled the upstream way without any reshaping."""
    batch, channels, height, width = x.shape
    out_channels, cin_g, kh, kw = weight.shape
    out_h = (height + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    out_w = (width + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    taps = kh * kw
    xs = x.tolist()
    samples = [[[[[0.0] * out_w for _ in range(out_h)] for _ in range(taps)] for _ in range(channels)]
               for _ in range(batch)]
    for b in range(batch):
        off = offset[b].reshape(-1).tolist()
        msk = mask[b].reshape(-1).tolist()
        for c in range(channels):
            d = c // (channels // dg)
            for i in range(kh):
                for j in range(kw):
                    k = i * kw + j
                    for ho in range(out_h):
                        for wo in range(out_w):
                            dy = off[((d * 2 * taps + 2 * k) * out_h + ho) * out_w + wo]
                            dx = off[((d * 2 * taps + 2 * k + 1) * out_h + ho) * out_w + wo]
                            m = msk[((d * taps + k) * out_h + ho) * out_w + wo]
                            y = ho * stride[0] - padding[0] + i * dilation[0] + dy
                            xx = wo * stride[1] - padding[1] + j * dilation[1] + dx
                            samples[b][c][k][ho][wo] = m * _bilinear(xs[b][c], height, width, y, xx)
    # out[b, o] = bias[o] + sum over the group's input channels and the taps of weight * modulated sample
    cols = torch.tensor(samples, dtype=torch.float64).view(batch, groups, cin_g * taps, out_h * out_w)
    w = weight.double().reshape(groups, out_channels // groups, cin_g * taps)
    out = torch.einsum("gok,bgkp->bgop", w, cols).reshape(batch, out_channels, out_h, out_w)
    if bias is not None:
        out = out + bias.double().view(1, -1, 1, 1)
    return out


CONFIGS = {
    # name: (B, C, H, W, C_out, (kh, kw), stride, padding, dilation, groups, dg, bias)
    "basic": (2, 4, 6, 7, 3, (3, 3), (1, 1), (1, 1), (1, 1), 1, 1, True),
    "stride2": (1, 4, 7, 6, 4, (3, 3), (2, 2), (1, 1), (1, 1), 1, 1, True),
    "groups_dilation": (1, 4, 7, 7, 4, (3, 3), (1, 1), (2, 2), (2, 2), 2, 2, False),
    "deformable_groups": (2, 6, 5, 6, 3, (3, 3), (1, 1), (1, 1), (1, 1), 1, 3, True),
    "rect_kernel": (1, 2, 5, 6, 2, (1, 3), (1, 2), (0, 1), (1, 1), 1, 1, True),
}


def make_inputs(config, seed, dtype=torch.float64, offset_hw=None, offset_scale=2.0):
    batch, channels, height, width, out_ch, (kh, kw), stride, padding, dilation, groups, dg, with_bias = config
    g = torch.Generator().manual_seed(seed)
    out_h = (height + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    out_w = (width + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    oh, ow = offset_hw or (out_h, out_w)
    x = torch.randn(batch, channels, height, width, generator=g, dtype=torch.float64)
    weight = torch.randn(out_ch, channels // groups, kh, kw, generator=g, dtype=torch.float64)
    bias = torch.randn(out_ch, generator=g, dtype=torch.float64) if with_bias else None
    offset = torch.randn(batch, 2 * dg * kh * kw, oh, ow, generator=g, dtype=torch.float64) * offset_scale
    mask = torch.rand(batch, dg * kh * kw, oh, ow, generator=g, dtype=torch.float64)
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, deformable_groups=dg)
    tensors = [t if t is None else t.to(dtype) for t in (x, offset, mask, weight, bias)]
    return tensors, kwargs


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_forward_matches_loop_reference(dcn_impl, name):
    (x, offset, mask, weight, bias), kwargs = make_inputs(CONFIGS[name], seed=0)
    expected = reference_dcn(x, offset, mask, weight, bias, kwargs["stride"], kwargs["padding"],
                             kwargs["dilation"], kwargs["groups"], kwargs["deformable_groups"])
    out = modulated_deform_conv(x, offset, mask, weight, bias, impl=dcn_impl, **kwargs)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_compiled_gradients_match_torchvision(require_compiled, name):
    tensors, kwargs = make_inputs(CONFIGS[name], seed=1)
    grads = {}
    for impl in ("compiled", "torch", "native"):
        leaves = [t if t is None else t.clone().requires_grad_(True) for t in tensors]
        out = modulated_deform_conv(*leaves, impl=impl, **kwargs)
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
        grads[impl] = [None if t is None else t.grad for t in leaves]
    for impl in ("torch", "native"):
        for got, want in zip(grads["compiled"], grads[impl]):
            if want is not None:
                torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("finer", [False, True], ids=["same_level", "finer_level_offsets"])
def test_gradcheck(dcn_impl, finer):
    config = (1, 2, 4, 5, 2, (3, 3), (2, 2) if finer else (1, 1), (1, 1), (1, 1), 1, 1, True)
    tensors, kwargs = make_inputs(config, seed=2, offset_hw=(4, 5) if finer else None, offset_scale=1.0)
    leaves = [t.clone().requires_grad_(True) for t in tensors]

    def fn(x, offset, mask, weight, bias):
        return modulated_deform_conv(x, offset, mask, weight, bias, impl=dcn_impl, **kwargs)

    # fast_mode checks random projections of the Jacobian (the full one takes minutes on 2 cores)
    assert torch.autograd.gradcheck(fn, leaves, eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)


def test_full_gradcheck_compiled_tiny(require_compiled):
    """Every Jacobian entry of the compiled backward (tiny sizes keep the numerical Jacobian cheap)."""
    config = (1, 2, 3, 4, 1, (3, 3), (1, 1), (1, 1), (1, 1), 1, 2, True)
    tensors, kwargs = make_inputs(config, seed=8, offset_scale=1.0)
    leaves = [t.clone().requires_grad_(True) for t in tensors]

    def fn(x, offset, mask, weight, bias):
        return modulated_deform_conv(x, offset, mask, weight, bias, impl="compiled", **kwargs)

    assert torch.autograd.gradcheck(fn, leaves, eps=1e-6, atol=1e-5, rtol=1e-4)


def test_finer_level_offsets_hand_built(dcn_impl):
    """Input 8x8 = 0..63, stride-2 3x3 conv picking only the centre tap -> output 4x4 reads x[2h, 2w].
    The offset tensor has the input's 8x8 size (finer level). Upstream reads each image's buffer as
    (18, 4, 4): centre tap k=4 has its dy in flat elements [128, 144) and its dx in [144, 160)."""
    x = torch.arange(64, dtype=torch.float64).view(1, 1, 8, 8)
    weight = torch.zeros(1, 1, 3, 3, dtype=torch.float64)
    weight[0, 0, 1, 1] = 1.0
    offset = torch.zeros(1, 18, 8, 8, dtype=torch.float64)
    flat = offset.view(-1)
    flat[128:144] = 1.0  # dy = +1 for every output position
    flat[144:160] = 0.5  # dx = +0.5
    flat[18 * 16:] = 100.0  # beyond the 18*4*4 prefix: never read
    mask = torch.ones(1, 9, 8, 8, dtype=torch.float64)
    mask.view(-1)[4 * 16:5 * 16] = 2.0  # centre-tap mask for the 16 output positions
    out = modulated_deform_conv(x, offset, mask, weight, None, stride=2, padding=1, impl=dcn_impl)
    h = torch.arange(4, dtype=torch.float64).view(4, 1)
    w = torch.arange(4, dtype=torch.float64).view(1, 4)
    # samples at (2h + 1, 2w + 0.5), where the input is linear: 8 * (2h + 1) + 2w + 0.5, times the mask 2
    expected = 2.0 * (8 * (2 * h + 1) + 2 * w + 0.5)
    torch.testing.assert_close(out[0, 0], expected)
    # the naive alternatives (crop or subsample of the offset map) give different results
    naive = modulated_deform_conv(x, offset[:, :, ::2, ::2], mask[:, :, ::2, ::2], weight, None, stride=2,
                                  padding=1, impl="torch")
    assert not torch.allclose(naive, out)


def test_finer_level_offsets_match_reference(dcn_impl):
    config = (2, 4, 9, 11, 3, (3, 3), (2, 2), (1, 1), (1, 1), 1, 1, True)
    (x, offset, mask, weight, bias), kwargs = make_inputs(config, seed=3, offset_hw=(9, 11))
    expected = reference_dcn(x, offset, mask, weight, bias, kwargs["stride"], kwargs["padding"],
                             kwargs["dilation"], kwargs["groups"], kwargs["deformable_groups"])
    out = modulated_deform_conv(x, offset, mask, weight, bias, impl=dcn_impl, **kwargs)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)


def test_finer_level_gradient_only_reaches_prefix(dcn_impl):
    config = (1, 2, 8, 8, 2, (3, 3), (2, 2), (1, 1), (1, 1), 1, 1, True)
    (x, offset, mask, weight, bias), kwargs = make_inputs(config, seed=4, offset_hw=(8, 8))
    offset.requires_grad_(True)
    mask.requires_grad_(True)
    modulated_deform_conv(x, offset, mask, weight, bias, impl=dcn_impl, **kwargs).sum().backward()
    used_off, used_mask = 18 * 4 * 4, 9 * 4 * 4
    assert torch.count_nonzero(offset.grad.view(-1)[used_off:]) == 0
    assert torch.count_nonzero(mask.grad.view(-1)[used_mask:]) == 0
    assert torch.count_nonzero(offset.grad.view(-1)[:used_off]) > used_off // 2
    assert torch.count_nonzero(mask.grad.view(-1)[:used_mask]) > used_mask // 2


def test_shape_errors():
    x = torch.randn(1, 4, 6, 6)
    weight = torch.randn(4, 4, 3, 3)
    good_offset, good_mask = torch.randn(1, 18, 6, 6), torch.rand(1, 9, 6, 6)
    with pytest.raises(ValueError, match="smaller than the output"):
        modulated_deform_conv(x, good_offset[:, :, :5], good_mask[:, :, :5], weight, padding=1)
    with pytest.raises(ValueError, match=r"offset has shape \(1, 16, 6, 6\)"):
        modulated_deform_conv(x, good_offset[:, :16], good_mask, weight, padding=1)
    with pytest.raises(ValueError, match="mask"):
        modulated_deform_conv(x, good_offset, good_mask[:, :8], weight, padding=1)
    with pytest.raises(ValueError, match="same spatial size"):
        modulated_deform_conv(x, torch.randn(1, 18, 8, 8), good_mask, weight, padding=1)
    with pytest.raises(ValueError, match="groups"):
        modulated_deform_conv(x, good_offset, good_mask, torch.randn(4, 3, 3, 3), padding=1)
    with pytest.raises(ValueError, match="impl"):
        modulated_deform_conv(x, good_offset, good_mask, weight, padding=1, impl="cuda")


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_low_precision_dtypes(dcn_impl, dtype):
    (x, offset, mask, weight, bias), kwargs = make_inputs(CONFIGS["basic"], seed=5)
    expected = modulated_deform_conv(x, offset, mask, weight, bias, impl="torch", **kwargs)
    cast = [t.to(dtype) for t in (x, offset, mask, weight, bias)]
    out = modulated_deform_conv(*cast, impl=dcn_impl, **kwargs)
    assert out.dtype == dtype
    tol = 2e-2 if dtype == torch.float16 else 1e-4
    torch.testing.assert_close(out.double(), expected, rtol=tol, atol=tol)


def test_autocast_runs_in_float32(dcn_impl):
    (x, offset, mask, weight, bias), kwargs = make_inputs(CONFIGS["basic"], seed=6, dtype=torch.float32)
    expected = modulated_deform_conv(x, offset, mask, weight, bias, impl=dcn_impl, **kwargs)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = modulated_deform_conv(x.bfloat16(), offset, mask, weight, bias, impl=dcn_impl, **kwargs)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, expected, rtol=2e-2, atol=5e-2)


def test_module_parameters_init_and_forward():
    torch.manual_seed(0)
    layer = ModulatedDeformConv(8, 6, 3, stride=1, padding=1)
    assert sorted(layer.state_dict()) == ["bias", "weight"]
    assert layer.weight.shape == (6, 8, 3, 3) and layer.bias.shape == (6,)
    bound = 1 / math.sqrt(8 * 9)
    largest = float(layer.weight.detach().abs().max())
    assert 0.8 * bound < largest <= bound
    assert torch.count_nonzero(layer.bias) == 0
    x = torch.randn(2, 8, 5, 5)
    offset, mask = torch.randn(2, 18, 5, 5), torch.rand(2, 9, 5, 5)
    out = layer(x, offset, mask)
    torch.testing.assert_close(out, torchvision.ops.deform_conv2d(x, offset, layer.weight, layer.bias, padding=1,
                                                                  mask=mask), rtol=1e-5, atol=1e-5)
    no_bias = ModulatedDeformConv(8, 6, 3, padding=1, bias=False)
    assert sorted(no_bias.state_dict()) == ["weight"]
    assert no_bias(x, offset, mask).shape == (2, 6, 5, 5)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible")
@pytest.mark.parametrize("finer", [False, True], ids=["same_level", "finer_level_offsets"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_kernels_match_cpu(require_compiled_cuda, finer, dtype):
    config = (2, 16, 13, 17, 8, (3, 3), (2, 2) if finer else (1, 1), (1, 1), (1, 1), 1, 1, True)
    tensors, kwargs = make_inputs(config, seed=7, dtype=dtype, offset_hw=(13, 17) if finer else None)
    results = {}
    for device, impl in (("cpu", "compiled"), ("cuda", "compiled"), ("cuda", "torch")):
        leaves = [t.to(device).clone().requires_grad_(True) for t in tensors]
        out = modulated_deform_conv(*leaves, impl=impl, **kwargs)
        (out * out.detach().cos()).sum().backward()
        results[(device, impl)] = [out.detach().cpu()] + [t.grad.cpu() for t in leaves]
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == torch.float32 else dict(rtol=1e-9, atol=1e-9)
    for key in (("cuda", "compiled"), ("cuda", "torch")):
        for got, want in zip(results[key], results[("cpu", "compiled")]):
            torch.testing.assert_close(got, want, **tol)


def test_compiled_forward_on_dyhead_shapes_equals_the_per_channel_loop(require_compiled):
    """The compiled CPU forward samples channels-last, each point once for all channels, in blocks of 256 output
    positions (13x21 = 273 positions: two blocks, the second partial); results equal torchvision's per-channel
    sampling in float32 and the slow reference in float64, with finer-level offsets too."""
    for stride, offset_hw in ((1, None), (2, None), (1, (13, 21))):
        config = (3, 64, 13 if offset_hw is None else 7, 21 if offset_hw is None else 11, 32, (3, 3),
                  (stride, stride), (1, 1), (1, 1), 1, 1, True)
        (x, offset, mask, weight, bias), kwargs = make_inputs(config, seed=11, dtype=torch.float32,
                                                              offset_hw=offset_hw, offset_scale=4.0)
        compiled = modulated_deform_conv(x, offset, mask, weight, bias, impl="compiled", **kwargs)
        torch_path = modulated_deform_conv(x, offset, mask, weight, bias, impl="torch", **kwargs)
        torch.testing.assert_close(compiled, torch_path, rtol=1e-5, atol=1e-4)
        doubles = [t.double() for t in (x, offset, mask, weight, bias)]
        expected = reference_dcn(*doubles, kwargs["stride"], kwargs["padding"], kwargs["dilation"], 1, 1) \
            if offset_hw is None else modulated_deform_conv(*doubles, impl="native", **kwargs)
        torch.testing.assert_close(modulated_deform_conv(*doubles, impl="compiled", **kwargs), expected,
                                   rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("offsets", ["random", "zero", "finer_level"])
@pytest.mark.parametrize("dg", [1, 2])
def test_compiled_gradients_over_position_blocks(require_compiled, offsets, dg):
    """The CPU backward runs in blocks of 256 output positions (13x21 = 273: two blocks, the second partial), as
    the forward pass does. Its gradients equal torchvision's and the pure-torch ones in float64, with zero
    offsets too (the demo's initialisation: every sample on a pixel, where the offset gradient still reads the
    neighbours of weight 0) and with finer-level offsets."""
    height, width = (26, 42) if offsets == "finer_level" else (13, 21)
    stride = 2 if offsets == "finer_level" else 1
    config = (2, 8, height, width, 6, (3, 3), (stride, stride), (1, 1), (1, 1), 1, dg, True)
    tensors, kwargs = make_inputs(config, seed=12, offset_hw=(26, 42) if offsets == "finer_level" else None)
    if offsets == "zero":
        tensors[1] = torch.zeros_like(tensors[1])
    grads = {}
    for impl in ("compiled", "torch", "native"):
        leaves = [t.clone().requires_grad_(True) for t in tensors]
        out = modulated_deform_conv(*leaves, impl=impl, **kwargs)
        assert out.shape[-2:] == (13, 21)
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
        grads[impl] = [t.grad for t in leaves]
    names = ("input", "offset", "mask", "weight", "bias")
    for impl in ("torch", "native"):
        for name, got, want in zip(names, grads["compiled"], grads[impl]):
            if (impl, name, offsets) == ("torch", "offset", "zero"):
                # Samples exactly on row -1 / H or column -1 / W: out of range for upstream's kernel (gradient 0),
                # torchvision differentiates them one-sided. The old planar kernel gave the same zeros.
                continue
            torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9, msg=lambda m, n=name, i=impl: f"{n}, {i}: {m}")


def test_reduced_precision_switch_keeps_float32_on_cpu(dcn_impl):
    from maskrcnn_benchmark.layers.deform_conv import reduced_precision_dcn

    (x, offset, mask, weight, bias), kwargs = make_inputs(CONFIGS["basic"], seed=6, dtype=torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16), reduced_precision_dcn():
        out = modulated_deform_conv(x, offset, mask, weight, bias, impl=dcn_impl, **kwargs)
    assert out.dtype == torch.float32  # the 16-bit kernel is CUDA only; a CPU keeps upstream's float32


def test_measured_impl_picks_the_fastest_once(monkeypatch):
    from maskrcnn_benchmark.layers import deform_conv

    monkeypatch.setattr(deform_conv, "_MEASURED", {})
    timed, ran = [], []

    def timer(call, device):
        call()
        timed.append(ran[-1])
        return {"compiled": 2.0, "torch": 1.0}[ran[-1]]

    def run(name):
        ran.append(name)

    device = torch.device("cpu")
    assert deform_conv.measured_impl(device, torch.float32, ["compiled", "torch"], run, timer) == "torch"
    assert deform_conv.measured_impl(device, torch.float32, ["compiled", "torch"], run, timer) == "torch"
    assert timed == ["compiled", "torch"]  # measured once per (device, dtype)
    assert deform_conv.measured_impl(device, torch.float16, ["compiled"], run, timer) == "compiled"
    assert timed == ["compiled", "torch"]  # a single candidate needs no timing


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_reduced_precision_kernel(require_compiled_cuda, dtype):
    """Inside reduced_precision_dcn the compiled CUDA forward runs in the autocast dtype (coordinates in
    float32), batched over images; it stays close to float32 and keeps the finer-level offset quirk."""
    from maskrcnn_benchmark.layers.deform_conv import reduced_precision_dcn

    for offset_hw, stride in ((None, 1), ((26, 42), 1), (None, 2)):
        config = (5, 64, 13 if offset_hw else 26, 21 if offset_hw else 42, 64, (3, 3), (stride, stride), (1, 1),
                  (1, 1), 1, 1, True)
        tensors, kwargs = make_inputs(config, seed=3, dtype=torch.float32, offset_hw=offset_hw, offset_scale=3.0)
        cuda = [t.cuda() for t in tensors]
        reference = modulated_deform_conv(*cuda, impl="compiled", **kwargs)
        with torch.no_grad(), torch.autocast("cuda", dtype=dtype), reduced_precision_dcn():
            low = modulated_deform_conv(*cuda, impl="compiled", **kwargs)
        assert low.dtype == dtype
        scale = reference.abs().max()
        assert (low.float() - reference).abs().max() <= (2e-2 if dtype == torch.bfloat16 else 4e-3) * scale
        with torch.no_grad(), torch.autocast("cuda", dtype=dtype):  # outside the switch: upstream's float32
            assert modulated_deform_conv(*cuda, impl="compiled", **kwargs).dtype == torch.float32


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible")
def test_cuda_batched_forward_equals_one_image_at_a_time(require_compiled_cuda):
    config = (7, 32, 20, 30, 16, (3, 3), (1, 1), (1, 1), (1, 1), 1, 1, True)
    tensors, kwargs = make_inputs(config, seed=4, dtype=torch.float32, offset_scale=3.0)
    cuda = [t.cuda() for t in tensors]
    batched = modulated_deform_conv(*cuda, impl="compiled", **kwargs)
    x, offset, mask, weight, bias = cuda
    singles = torch.cat([modulated_deform_conv(x[i:i + 1], offset[i:i + 1], mask[i:i + 1], weight, bias,
                                               impl="compiled", **kwargs) for i in range(7)])
    torch.testing.assert_close(batched, singles, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(batched.cpu(), modulated_deform_conv(*tensors, impl="compiled", **kwargs),
                               rtol=1e-4, atol=1e-4)
