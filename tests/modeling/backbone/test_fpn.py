import pytest
import torch
import torch.nn.functional as F

from maskrcnn_benchmark.modeling.backbone.fpn import FPN, DropBlock2D, LastLevelP6P7


def make_fpn(drop_block=None):
    torch.manual_seed(0)
    return FPN([0, 8, 16, 32], 12, top_blocks=LastLevelP6P7(12, 12), drop_block=drop_block)


def features(h=25, w=38):
    torch.manual_seed(1)
    sizes = [(h * 4, w * 4), (h * 2, w * 2), (h, w), ((h + 1) // 2, (w + 1) // 2)]
    return [torch.randn(2, c, *s) for c, s in zip([4, 8, 16, 32], sizes)]


def test_names_and_init():
    fpn = make_fpn()
    names = {k for k in fpn.state_dict()}
    expected = {f"{m}{i}.{p}" for m in ("fpn_inner", "fpn_layer") for i in (2, 3, 4) for p in ("weight", "bias")}
    expected |= {f"top_blocks.{m}.{p}" for m in ("p6", "p7") for p in ("weight", "bias")}
    assert names == expected
    assert fpn.fpn_inner2.weight.shape == (12, 8, 1, 1) and fpn.fpn_layer4.weight.shape == (12, 12, 3, 3)
    assert all((m.bias == 0).all() for m in fpn.modules() if isinstance(m, torch.nn.Conv2d))
    # kaiming_uniform(a=1): bound = sqrt(6 / ((1 + a^2) fan_in)) = sqrt(3 / fan_in)
    bound = (3.0 / (12 * 9)) ** 0.5
    assert fpn.fpn_layer2.weight.abs().max() <= bound and fpn.fpn_layer2.weight.abs().max() > 0.8 * bound


def test_forward_matches_reference_computation():
    fpn = make_fpn().eval()
    feats = features()
    out = fpn(feats)
    assert [tuple(o.shape[-2:]) for o in out] == [(50, 76), (25, 38), (13, 19), (7, 10), (4, 5)]
    p5_inner = fpn.fpn_inner4(feats[3])
    p4_inner = fpn.fpn_inner3(feats[2]) + F.interpolate(p5_inner, size=(25, 38), mode="nearest")
    p3_inner = fpn.fpn_inner2(feats[1]) + F.interpolate(p4_inner, size=(50, 76), mode="nearest")
    p5 = fpn.fpn_layer4(p5_inner)
    p6 = fpn.top_blocks.p6(p5)  # from P5, not C5 (in == out channels)
    p7 = fpn.top_blocks.p7(F.relu(p6))
    for got, want in zip(out, [fpn.fpn_layer2(p3_inner), fpn.fpn_layer3(p4_inner), p5, p6, p7]):
        torch.testing.assert_close(got, want)


def test_drop_block_only_in_training():
    fpn = make_fpn(DropBlock2D(0.3, 3))
    feats = features()
    fpn.eval()
    reference = make_fpn().eval()(feats)
    for a, b in zip(fpn(feats), reference):
        torch.testing.assert_close(a, b)
    fpn.train()
    torch.manual_seed(5)
    trained = fpn(feats)
    assert not torch.allclose(trained[0], reference[0]) and not torch.allclose(trained[1], reference[1])
    # P5 and above never see DropBlock
    for a, b in zip(trained[2:], reference[2:]):
        torch.testing.assert_close(a, b)


def test_drop_block_statistics():
    block = DropBlock2D(0.3, 3).train()
    torch.manual_seed(0)
    x = torch.ones(8, 4, 64, 64)
    y = block(x)
    kept = y[:, 0] != 0
    # the mask is shared across channels
    assert torch.equal(kept, (y[:, 3] != 0))
    # kept values rescaled so that the mean is preserved
    assert y.mean().item() == pytest.approx(1.0, rel=1e-4)
    # seeds with p = 0.3 / 9 grown to 3x3 blocks drop roughly 1 - (1 - p)^9 ~ 26% of positions
    assert 0.2 < 1 - kept.float().mean().item() < 0.32
    # dropped regions are made of 3x3 squares: every dropped pixel lies in a fully dropped 3x3 window
    dropped = (~kept).float()[:, None]
    full = F.max_pool2d(-F.max_pool2d(-dropped, 3, 1, 1), 3, 1, 1)  # morphological opening
    assert (full <= dropped).all()
    assert torch.equal(full[..., 2:-2, 2:-2], dropped[..., 2:-2, 2:-2])  # away from the border blocks are whole
    block.eval()
    assert block(x) is x
    assert DropBlock2D(0.0, 3).train()(x) is x
    with pytest.raises(ValueError):
        DropBlock2D(1.5, 3)
