"""DyHead tower: DyReLU math, the scale-attention combination of the three convolutions, shapes and names."""

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
    outputs = block(_levels())
    assert [tuple(o.shape) for o in outputs] == [(2, 16, 9, 13), (2, 16, 5, 7), (2, 16, 3, 4)]


def test_dyconv_combines_levels_with_scale_attention():
    block = DyConv(16, 16, num_groups=4).eval()
    with torch.no_grad():
        block.AttnConv[1].weight.normal_(0, 0.5)
        block.AttnConv[1].bias.fill_(0.3)
    features = _levels()
    outputs = block(features)

    def attended(t):
        return t * F.relu6(F.relu(block.AttnConv[1](t.mean(dim=(2, 3), keepdim=True))) + 3) / 6

    for level in (0, 1, 2):
        om = block.offset(features[level])
        offset, mask = om[:, :18], om[:, 18:].sigmoid()
        terms = [block.DyConv[1](features[level], offset, mask)]
        if level > 0:
            terms.append(block.DyConv[2](features[level - 1], offset, mask))
        if level < 2:
            coarse = block.DyConv[0](features[level + 1], offset, mask)
            terms.append(F.interpolate(coarse, size=features[level].shape[-2:], mode="bilinear",
                                       align_corners=True))
        expected = block.relu(sum(attended(t) for t in terms) / len(terms))
        torch.testing.assert_close(outputs[level], expected, rtol=1e-5, atol=1e-6)


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
