"""The VL head: upstream key names/shapes at full size, the token dot-product math, frozen class logits,
and the train/test conversion of positive_map."""

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

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


def _small_head():
    torch.manual_seed(0)
    head = VLDyHead(in_channels=16, channels=16, num_convs=1, num_groups=4, num_levels=2, num_classes=5,
                    lang_dim=12)
    with torch.no_grad():
        head.bias_lang.normal_()
        head.log_scale.fill_(0.7)
    return head


def test_init_values():
    head = _small_head()
    torch.testing.assert_close(head.bias0, torch.tensor([-math.log(99.0)]))
    torch.testing.assert_close(head.cls_logits.bias, torch.full((4,), -math.log(99.0)))
    assert head.bbox_pred.bias.abs().sum() == 0 and head.centerness.bias.abs().sum() == 0
    assert all(s.scale.item() == 1.0 for s in head.scales)
    assert not any(p.requires_grad for p in head.cls_logits.parameters())


def test_dot_product_logits_math():
    head = _small_head().eval()
    features = [torch.randn(2, 16, 4, 6), torch.randn(2, 16, 2, 3)]
    embedded = torch.randn(2, 5, 12)
    embedded[1, 3:] = 0  # padded tokens are zero rows
    out = head(features, embedded)
    assert [tuple(t.shape) for t in out.dot_product_logits] == [(2, 24, 5), (2, 6, 5)]
    assert [tuple(t.shape) for t in out.box_regression] == [(2, 4, 4, 6), (2, 4, 2, 3)]
    assert [tuple(t.shape) for t in out.centerness] == [(2, 1, 4, 6), (2, 1, 2, 3)]

    normalized = embedded / embedded.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    tokens = F.linear(normalized / 2.0, head.dot_product_projection_text.weight, head.dot_product_projection_text.bias)
    bias = normalized @ head.bias_lang + head.bias0
    tower = out.tower_features[1]
    query = tower.permute(0, 2, 3, 1).reshape(2, 6, 16)
    expected = query @ tokens.transpose(1, 2) / math.exp(0.7) + bias[:, None, :]
    torch.testing.assert_close(out.dot_product_logits[1], expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.box_regression[1], head.bbox_pred(tower) * head.scales[1].scale)


def test_clamp_dot_product():
    head = _small_head().eval()
    with torch.no_grad():
        head.log_scale.fill_(-30.0)  # divides by exp(-30): huge logits
    out = head([torch.randn(1, 16, 4, 6), torch.randn(1, 16, 2, 3)], torch.randn(1, 5, 12))
    assert out.dot_product_logits[0].abs().max() == 50000.0


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
