"""The VL head: upstream key names/shapes at full size, the token dot-product math, frozen class logits,
and the train/test conversion of positive_map."""

import json
import math
from pathlib import Path

import pytest
import torch

from maskrcnn_benchmark.modeling.rpn.vl_head import VLDyHead, split_positive_map
from maskrcnn_benchmark.structures.bounding_box import BoxList

FIXTURE = Path(__file__).resolve().parents[3] / ".." / "shared" / "fixtures" / "upstream-state-dict" / \
    "coco_finetune_v2.json"


def test_full_size_head_keys_and_shapes_match_upstream():
    if not FIXTURE.is_file():
        pytest.skip(f"fixture {FIXTURE} is absent")
    fixture = json.loads(FIXTURE.read_text())
    expected = {k[len("rpn.head."):]: tuple(s) for k, s, _ in fixture["entries"] if k.startswith("rpn.head.")}
    with torch.device("meta"):
        head = VLDyHead()
    assert {k: tuple(v.shape) for k, v in head.state_dict().items()} == expected
    frozen = {f"rpn.head.{n}" for n, p in head.named_parameters() if not p.requires_grad}
    assert frozen == set(fixture["frozen_params"])


def test_init_values():
    # upstream-facts.md 1.11: bias0 and the class-logit biases = -ln((1 - 0.01) / 0.01) = -4.59512; box and
    # centerness biases 0; Scale modules 1.0; log_scale 0.0 (DYHEAD.LOG_SCALE); bias_lang zeros; class logits
    # frozen.
    torch.manual_seed(0)
    head = VLDyHead(in_channels=16, channels=16, num_convs=1, num_groups=4, num_levels=2, num_classes=5,
                    lang_dim=12)
    assert abs(head.bias0.item() + 4.59512) < 1e-5
    assert head.cls_logits.out_channels == 4  # NUM_CLASSES - 1
    assert torch.allclose(head.cls_logits.bias, torch.full((4,), -4.59512), atol=1e-5)
    assert head.bbox_pred.bias.abs().sum() == 0 and head.centerness.bias.abs().sum() == 0
    assert all(s.scale.item() == 1.0 for s in head.scales)
    assert head.log_scale.item() == 0.0 and head.bias_lang.abs().sum() == 0
    assert not any(p.requires_grad for p in head.cls_logits.parameters())
    assert 0.005 < head.bbox_pred.weight.std() < 0.02  # normal(0, 0.01)


def _set_(param, values):
    with torch.no_grad():
        param.copy_(torch.as_tensor(values, dtype=param.dtype).view_as(param))


def _hand_head():
    """C = 4 channels (only 0 and 1 used), text width D = 3, one FPN level; the DyHead tower is replaced by an
    empty one, so the anchor queries are the input features themselves."""
    head = VLDyHead(in_channels=4, channels=4, num_convs=1, num_groups=1, num_levels=1, num_classes=2, lang_dim=3)
    head.dyhead_tower = type(head.dyhead_tower)()
    _set_(head.dot_product_projection_text.weight, [[1, 0, 0], [0, 1, 1], [0, 0, 0], [0, 0, 0]])
    _set_(head.dot_product_projection_text.bias, [0.5, -0.5, 0.0, 0.0])
    _set_(head.bias_lang, [1.0, 2.0, -1.0])
    _set_(head.bias0, [-1.0])
    _set_(head.log_scale, [math.log(2.0)])
    return head.eval()


def test_dot_product_logits_hand_computed():
    """upstream-facts.md 1.11: e_hat = L2-normalised token features; token p = proj(e_hat / 2); bias
    b = e_hat . bias_lang + bias0 (e_hat, not e_hat / 2); logit(anchor, token) = q . p / exp(log_scale) + b;
    anchors in (H, W) order."""
    head = _hand_head()
    # tokens: [3, 0, 4] -> e_hat [0.6, 0, 0.8]; [0, 2, 0] -> [0, 1, 0]; padding [0, 0, 0] stays 0
    embedded = torch.tensor([[[3.0, 0.0, 4.0], [0.0, 2.0, 0.0], [0.0, 0.0, 0.0]]])
    # p (channels 0, 1): [0.3 + 0.5, 0.4 - 0.5] = [0.8, -0.1]; [0.5, 0.5 - 0.5] = [0.5, 0]; [0.5, -0.5]
    # b: 0.6 - 0.8 - 1 = -1.2; 2 - 1 = 1; 0 - 1 = -1
    # queries at (row, col): (0, 0) [1, 0]; (0, 1) [0, 2]; (1, 0) [2, 2]; (1, 1) [-1, 1]; divided by exp(ln 2)
    features = torch.zeros(1, 4, 2, 2)
    features[0, 0] = torch.tensor([[1.0, 0.0], [2.0, -1.0]])
    features[0, 1] = torch.tensor([[0.0, 2.0], [2.0, 1.0]])
    out = head([features], embedded)
    expected = torch.tensor([[[0.4 - 1.2, 0.25 + 1.0, 0.25 - 1.0],
                              [-0.1 - 1.2, 0.0 + 1.0, -0.5 - 1.0],
                              [0.7 - 1.2, 0.5 + 1.0, 0.0 - 1.0],
                              [-0.45 - 1.2, -0.25 + 1.0, -0.5 - 1.0]]])
    assert len(out.dot_product_logits) == 1
    torch.testing.assert_close(out.dot_product_logits[0], expected)


def test_box_and_centerness_predictions_hand_computed():
    """upstream-facts.md 1.11: bbox_pred (1x1 conv, 4 deltas) times the level's Scale, no exp or ReLU;
    centerness a 1x1 conv."""
    head = _hand_head()
    _set_(head.bbox_pred.weight, [[1, 0, 0, 0], [0, 1, 0, 0], [1, 1, 0, 0], [1, -1, 0, 0]])
    _set_(head.bbox_pred.bias, [0.0, 0.0, 0.0, 0.5])
    _set_(head.scales[0].scale, [2.0])
    _set_(head.centerness.weight, [[0.5, -1.0, 0.0, 0.0]])
    _set_(head.centerness.bias, [0.25])
    features = torch.zeros(1, 4, 1, 2)
    features[0, :2, 0, 0] = torch.tensor([1.0, 0.0])
    features[0, :2, 0, 1] = torch.tensor([-2.0, 3.0])
    out = head([features], torch.ones(1, 2, 3))
    # position 0: [1, 0, 1, 1.5] * 2; position 1: [-2, 3, 1, -4.5] * 2
    torch.testing.assert_close(out.box_regression[0][0, :, 0], torch.tensor([[2.0, -4.0], [0.0, 6.0],
                                                                              [2.0, 2.0], [3.0, -9.0]]))
    torch.testing.assert_close(out.centerness[0][0, 0, 0], torch.tensor([0.75, -3.75]))


def test_clamp_dot_product():
    # FUSE_CONFIG.CLAMP_DOT_PRODUCT: logits clamped to [-50000, 50000]
    head = _hand_head()
    _set_(head.log_scale, [-30.0])  # divides by exp(-30) ~ 9.4e-14
    features = torch.zeros(1, 4, 1, 2)
    features[0, 0] = torch.tensor([[1.0, -1.0]])
    out = head([features], torch.tensor([[[3.0, 0.0, 4.0], [0.0, 0.0, 0.0]]]))
    # token 0: q . p = +-0.8 -> +-8.5e12 -> clamped; padding token: q . p = +-0.5, clamped too; the bias is lost
    torch.testing.assert_close(out.dot_product_logits[0], torch.tensor([[[50000.0, 50000.0], [-50000.0, -50000.0]]]))


def test_split_positive_map():
    targets = [BoxList(torch.tensor([[0.0, 0, 5, 5], [1, 1, 4, 4]]), (10, 10)),
               BoxList(torch.tensor([[2.0, 2, 8, 8]]), (10, 10))]
    dense = torch.tensor([[0.5, 0.5, 0], [0, 0, 1.0], [0, 1.0, 0]])
    token_maps, label_map = split_positive_map(dense, targets, training=True)
    assert label_map is None
    assert [m.tolist() for m in token_maps] == [[[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]], [[0.0, 1.0, 0.0]]]
    with pytest.raises(ValueError, match="3 rows for 2"):
        split_positive_map(dense, targets[:1], training=True)
    with pytest.raises(TypeError):
        split_positive_map({1: [0]}, targets, training=True)
    for target, rows in zip(targets, (dense[:2], dense[2:])):
        target.add_field("positive_map", rows)
    from_fields, _ = split_positive_map(None, targets, training=True)
    assert [m.tolist() for m in from_fields] == [m.tolist() for m in token_maps]

    assert split_positive_map({3: [1, 2]}, None, training=False) == (None, {3: [1, 2]})
    assert split_positive_map(dense, None, training=False) == (None, {1: [0, 1], 2: [2], 3: [1]})
    with pytest.raises(ValueError, match="evaluation needs positive_map"):
        split_positive_map(None, None, training=False)


@pytest.mark.parametrize("key,value,match", [
    ("MODEL.DYHEAD.USE_DFCONV", False, "USE_DFCONV"),
    ("MODEL.DYHEAD.FUSE_CONFIG.USE_DOT_PRODUCT_TOKEN_LOSS", False, "USE_DOT_PRODUCT_TOKEN_LOSS"),
    ("MODEL.DYHEAD.FUSE_CONFIG.USE_CLASSIFICATION_LOSS", True, "USE_CLASSIFICATION_LOSS"),
    ("MODEL.RPN.ASPECT_RATIOS", (0.5, 1.0, 2.0), "one anchor per location"),
])
def test_module_rejects_options_it_does_not_build(key, value, match):
    from maskrcnn_benchmark.config import cfg as default_cfg
    from maskrcnn_benchmark.modeling.rpn import build_rpn

    cfg = default_cfg.clone()
    cfg.merge_from_file(str(Path(__file__).resolve().parents[3] / "configs" / "tiny" / "fiber_tiny.yaml"))
    module = build_rpn(cfg)
    assert type(module).__name__ == "VLDyHeadModule"
    cfg.merge_from_list([key, value])
    with pytest.raises(ValueError, match=match):
        build_rpn(cfg)
