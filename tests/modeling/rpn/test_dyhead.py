"""DyHead tower: DyReLU math, the scale-attention combination of the three convolutions, shapes and names."""

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from maskrcnn_benchmark.modeling.rpn.dyhead import DyConv, DyReLU, HSigmoid, build_dyhead_tower


def test_hsigmoid():
    x = torch.tensor([-4.0, -3.0, 0.0, 1.5, 3.0, 5.0])
    torch.testing.assert_close(HSigmoid()(x), torch.tensor([0.0, 0.0, 0.5, 0.75, 1.0, 1.0]))


def test_dyrelu_coefficients():
    relu = DyReLU(4)
    assert relu.fc[0].out_features == 1  # squeeze = C // 4
    with torch.no_grad():
        relu.fc[2].weight.zero_()
        relu.fc[2].bias.zero_()  # hsigmoid(0) = 0.5 -> a1 = 1, b1 = 0, a2 = 0, b2 = 0: a plain ReLU
    x = torch.randn(2, 4, 3, 5)
    torch.testing.assert_close(relu(x), F.relu(x))
    with torch.no_grad():
        relu.fc[2].bias[:4] = 1.5  # a1 -> hsigmoid 0.75 -> (0.75 - 0.5) * 2 + 1 = 1.5
        relu.fc[2].bias[12:] = 3.0  # b2 -> hsigmoid 1 -> 0.5
    torch.testing.assert_close(relu(x), torch.max(1.5 * x, torch.full_like(x, 0.5)))


def _levels(channels=16, batch=2):
    torch.manual_seed(0)
    sizes = [(9, 13), (5, 7), (3, 4)]  # ceil-halvings, as FPN levels
    return [torch.randn(batch, channels, h, w) for h, w in sizes]


def test_dyconv_names_shapes_and_init():
    block = DyConv(16, 16, num_groups=4)
    shapes = {k: tuple(v.shape) for k, v in block.state_dict().items()}
    assert shapes["DyConv.0.conv.weight"] == (16, 16, 3, 3) and shapes["DyConv.2.bn.weight"] == (16,)
    assert shapes["AttnConv.1.weight"] == (1, 16, 1, 1) and shapes["offset.weight"] == (27, 16, 3, 3)
    assert shapes["relu.fc.0.weight"] == (4, 16) and shapes["relu.fc.2.weight"] == (64, 4)
    assert len(shapes) == 3 * 4 + 2 + 4 + 2
    assert block.AttnConv[1].bias.abs().sum() == 0 and block.AttnConv[1].weight.std() < 0.05
    assert block.offset.weight.abs().max() > 0  # the offset conv keeps its default (non-zero) init
    assert block.DyConv[2].conv.stride in (2, (2, 2))
    for branch in block.DyConv:  # DCN keeps its own reset: U(-1/sqrt(C*9), 1/sqrt(C*9)), bias 0; GN 1 / 0
        assert 0 < branch.conv.weight.abs().max() <= 1 / math.sqrt(16 * 9)
        assert branch.conv.bias.abs().sum() == 0
        assert (branch.bn.weight == 1).all() and (branch.bn.bias == 0).all()
    outputs = block(_levels())
    assert [tuple(o.shape) for o in outputs] == [(2, 16, 9, 13), (2, 16, 5, 7), (2, 16, 3, 4)]


def _set_(param, values):
    with torch.no_grad():
        param.copy_(torch.as_tensor(values, dtype=param.dtype).view_as(param))


def _constant_branches(block, same, finer, coarser):
    """Make each deformable conv + GroupNorm output a per-channel constant: with a zero conv weight and
    bias the GroupNorm input is constant, normalises to 0, and the output is the GroupNorm bias."""
    for index, value in ((1, same), (2, finer), (0, coarser)):
        branch = block.DyConv[index]
        _set_(branch.conv.weight, torch.zeros_like(branch.conv.weight))
        _set_(branch.conv.bias, torch.zeros_like(branch.conv.bias))
        _set_(branch.bn.bias, value)


def test_dyconv_scale_attention_hand_computed():
    """upstream-facts.md 1.10: level l mixes DyConv[1](F_l), DyConv[2](F_{l-1}) (finer, stride 2) and the
    upsampled DyConv[0](F_{l+1}) (coarser); each term t is weighted by hsigmoid(relu(conv1x1(avgpool(t))))
    with hsigmoid(x) = relu6(x + 3) / 6, the weighted terms are averaged, then DyReLU."""
    block = DyConv(4, 4, num_groups=1).eval()
    # per-channel constants: same-level term s, finer-level term f, coarser-level term c
    _constant_branches(block, same=[1.0, -2.0, 2.0, 0.0], finer=[3.0, 0.5, 0.0, -4.0], coarser=[-1.0, 4.0, 1.0, 1.0])
    _set_(block.AttnConv[1].weight, [0.5, -0.25, 0.0, 0.0])
    _set_(block.AttnConv[1].bias, [0.5])
    # attention logits: s -> 0.5 + 0.5 + 0.5 = 1.5 -> hsigmoid 0.75;
    #                   f -> 1.5 - 0.125 + 0.5 = 1.875 -> 0.8125;
    #                   c -> -0.5 - 1 + 0.5 = -1 -> relu 0 -> hsigmoid 0.5.
    # weighted: s' = [0.75, -1.5, 1.5, 0], f' = [2.4375, 0.40625, 0, -3.25], c' = [-0.5, 2.0, 0.5, 0.5]
    # DyReLU with a zero last layer: coefficients hsigmoid(bias), in the order a1, b1, a2, b2:
    # a1 = (0.5 - 0.5) * 2 + 1 = 1, b1 = 0.5 - 0.5 = 0, a2 = (0.75 - 0.5) * 2 = 0.5, b2 = 0.25 - 0.5 = -0.25
    _set_(block.relu.fc[2].weight, torch.zeros(16, 1))
    _set_(block.relu.fc[2].bias, [0.0] * 8 + [1.5] * 4 + [-1.5] * 4)
    features = [torch.randn(1, 4, 8, 8), torch.randn(1, 4, 4, 4), torch.randn(1, 4, 2, 2)]
    outputs = block(features)
    # then DyReLU max(x, 0.5 x - 0.25), which changes x < -0.5 only:
    # level 0 (finest): mean(s', c') = [0.125, 0.25, 1.0, 0.25]
    # level 1: mean(s', f', c') = [2.6875 / 3, 0.90625 / 3, 2 / 3, -2.75 / 3]; max(-2.75 / 3, -2.75 / 6 - 0.25)
    # level 2 (coarsest): mean(s', f') = [1.59375, -0.546875, 0.75, -1.625]; max(-0.546875, -0.5234375) and
    # max(-1.625, -1.0625)
    expected = [[0.125, 0.25, 1.0, 0.25], [2.6875 / 3, 0.90625 / 3, 2 / 3, -2.75 / 6 - 0.25],
                [1.59375, -0.5234375, 0.75, -1.0625]]
    for output, feature, values in zip(outputs, features, expected):
        assert output.shape == feature.shape
        torch.testing.assert_close(output, torch.tensor(values).view(1, 4, 1, 1).expand_as(feature))


def _identity_tail(block):
    """Attention weights 1 (hsigmoid(3)) and an identity DyReLU (a1 = a2 = 1, b1 = b2 = 0)."""
    _set_(block.AttnConv[1].weight, torch.zeros(1, 4, 1, 1))
    _set_(block.AttnConv[1].bias, [3.0])
    _set_(block.relu.fc[2].weight, torch.zeros(16, 1))
    _set_(block.relu.fc[2].bias, [0.0] * 8 + [3.0] * 4 + [0.0] * 4)


def _only_coarser_branch(block, offset_bias):
    """Zero the same- and finer-level terms; the coarser branch copies channel 0 through the centre tap
    (other channels 0); the offset conv predicts the constant ``offset_bias`` (27 channels: 18 offsets as
    (dy, dx) per tap, then 9 mask logits). GroupNorm has one channel per group."""
    for index in (1, 2):
        _set_(block.DyConv[index].bn.weight, torch.zeros(4))
        _set_(block.DyConv[index].bn.bias, torch.zeros(4))
    centre = torch.zeros(4, 4, 3, 3)
    centre[0, 0, 1, 1] = 1.0
    _set_(block.DyConv[0].conv.weight, centre)
    _set_(block.DyConv[0].conv.bias, torch.zeros(4))
    _set_(block.offset.weight, torch.zeros(27, 4, 3, 3))
    _set_(block.offset.bias, offset_bias)


def test_coarser_level_is_upsampled_bilinearly_with_aligned_corners():
    """upstream-facts.md 1.10: the coarser term is resized with F.upsample_bilinear (align_corners=True)."""
    block = DyConv(4, 4, num_groups=4).eval()
    _identity_tail(block)
    _only_coarser_branch(block, [0.0] * 18 + [30.0] * 9)  # no offsets, masks sigmoid(30) = 1
    coarse = torch.zeros(1, 4, 2, 2)
    coarse[0, 0] = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    outputs = block([torch.zeros(1, 4, 3, 3), coarse])
    # GroupNorm of [0, 1, 2, 3]: mean 1.5, biased variance 1.25; aligned corners put the 2x2 values on the
    # corners of the 3x3 grid and their averages in between; the level averages this term with the zero
    # same-level term.
    upsampled = torch.tensor([[0.0, 0.5, 1.0], [1.0, 1.5, 2.0], [2.0, 2.5, 3.0]])
    expected = 0.5 * (upsampled - 1.5) / math.sqrt(1.25 + 1e-5)
    torch.testing.assert_close(outputs[0][0, 0], expected)
    torch.testing.assert_close(outputs[0][0, 1:], torch.zeros(3, 3, 3))
    torch.testing.assert_close(outputs[1], torch.zeros(1, 4, 2, 2))  # same + finer terms, both zeroed


def test_coarser_level_reads_the_finer_offsets_as_upstreams_kernel_does():
    """upstream-facts.md 1.10 quirk: level 0's offsets (18, 4, 4) drive the conv on level 1, whose output is
    2x2; the kernel reads the first 18*2*2 values of the per-image buffer as (18, 2, 2), so output channel k
    is taken from flat elements [4k, 4k + 4), i.e. from level-0 channel k // 4 (16 values per channel)."""
    block = DyConv(4, 4, num_groups=4).eval()
    _identity_tail(block)
    offsets = [0.0] * 18
    offsets[2] = 1.0  # level-0 channel 2 (dy of tap 1) -> reinterpreted as channels 8, 9 = (dy, dx) of tap 4
    masks = [-30.0] * 9
    masks[1] = 30.0  # level-0 mask channel 1 -> reinterpreted as mask channel 4, the centre tap
    _only_coarser_branch(block, offsets + masks)
    coarse = torch.zeros(1, 4, 2, 2)
    coarse[0, 0] = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    outputs = block([torch.zeros(1, 4, 4, 4), coarse])
    # the centre tap samples (y + 1, x + 1) with mask 1: conv output [[3, 0], [0, 0]]; GroupNorm: mean 0.75,
    # biased variance 1.6875. (Read as laid out, the centre tap would have no offset and mask ~0.)
    normalized = (torch.tensor([[3.0, 0.0], [0.0, 0.0]]) - 0.75) / math.sqrt(1.6875 + 1e-5)
    expected = 0.5 * F.interpolate(normalized.view(1, 1, 2, 2), size=(4, 4), mode="bilinear", align_corners=True)
    torch.testing.assert_close(outputs[0][:, :1], expected)


def test_tower_backward_reaches_every_parameter():
    tower = build_dyhead_tower(16, 16, num_convs=2, num_groups=4)
    assert [type(m).__name__ for m in tower] == ["DyConv", "DyConv"]
    outputs = tower(_levels())
    sum(o.square().mean() for o in outputs).backward()
    missing = [n for n, p in tower.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert missing == []


def test_tower_rejects_unsupported_widths():
    with pytest.raises(ValueError, match="OUT_CHANNELS"):
        build_dyhead_tower(32, 16, num_convs=1, num_groups=4)
    with pytest.raises(ValueError, match="NUM_CONVS"):
        build_dyhead_tower(16, 16, num_convs=0, num_groups=4)


def test_zero_init_offsets_start_as_a_plain_convolution():
    """MODEL.DYHEAD.ZERO_INIT_OFFSETS: offsets 0 and masks sigmoid(0) = 0.5, so each deformable conv starts as
    a plain 3x3 convolution with half its weights; the upstream default starts with random offsets."""
    features = _levels()
    upstream = DyConv(16, 16, num_groups=4)
    upstream_offsets = upstream.offset(features[0])[:, :18]
    assert upstream_offsets.abs().mean() > 0.05  # random sampling offsets from the first iteration on
    torch.manual_seed(0)
    block = DyConv(16, 16, num_groups=4, zero_init_offsets=True)
    assert block.offset.weight.abs().sum() == 0 and block.offset.bias.abs().sum() == 0
    offset_mask = block.offset(features[0])
    assert offset_mask[:, :18].abs().max() == 0
    torch.testing.assert_close(offset_mask[:, 18:].sigmoid(), torch.full_like(offset_mask[:, 18:], 0.5))
    dcn = block.DyConv[1].conv
    plain = F.conv2d(features[0], 0.5 * dcn.weight, dcn.bias, padding=1)
    torch.testing.assert_close(dcn(features[0], offset_mask[:, :18], offset_mask[:, 18:].sigmoid()), plain,
                               rtol=1e-5, atol=1e-5)
    # the offsets still learn: their gradient is not zero at the zero start
    sum(o.square().mean() for o in block(features)).backward()
    assert block.offset.weight.grad.abs().sum() > 0


def test_zero_init_offsets_from_the_config():
    from maskrcnn_benchmark.config import load_config
    from maskrcnn_benchmark.modeling.rpn.vl_head import VLDyHeadModule

    tiny = Path(__file__).resolve().parents[3] / "configs" / "tiny" / "fiber_tiny.yaml"
    for zero in (False, True):
        cfg = load_config(tiny, ["MODEL.DYHEAD.ZERO_INIT_OFFSETS", str(zero)])
        head = VLDyHeadModule.from_config(cfg).head
        weights = [block.offset.weight for block in head.dyhead_tower]
        assert len(weights) == cfg.MODEL.DYHEAD.NUM_CONVS
        assert all(bool(w.abs().sum() == 0) == zero for w in weights)
