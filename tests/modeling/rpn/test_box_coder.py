"""Box coder of the VL head: known values, the +1 convention, clamping and the encode/decode round trip."""

import math

import pytest
import torch

from maskrcnn_benchmark.modeling.rpn.box_coder import BoxCoder


def test_encode_known_values():
    coder = BoxCoder()
    anchors = torch.tensor([[0.0, 0.0, 9.0, 9.0]])  # width 10 (+1 convention), centre (4.5, 4.5)
    gt = torch.tensor([[2.0, 0.0, 21.0, 4.0]])  # width 20, height 5, centre (11.5, 2.0)
    deltas = coder.encode(gt, anchors)
    expected = torch.tensor([[10 * 7.0 / 10, 10 * -2.5 / 10, 5 * math.log(2.0), 5 * math.log(0.5)]])
    torch.testing.assert_close(deltas, expected)


def test_decode_known_values_and_identity():
    coder = BoxCoder()
    anchors = torch.tensor([[-28.0, -28.0, 35.0, 35.0]])
    torch.testing.assert_close(coder.decode(torch.zeros(1, 4), anchors), anchors)
    # dx = 1 (weight 10 -> 0.1 of the 64-px width), dw = 5*ln 2 doubles the width around the shifted centre.
    boxes = coder.decode(torch.tensor([[1.0, 0.0, 5 * math.log(2.0), 0.0]]), anchors)
    centre_x = 3.5 + 6.4
    torch.testing.assert_close(boxes, torch.tensor([[centre_x - 63.5, -28.0, centre_x + 63.5, 35.0]]))


def test_round_trip_random_boxes():
    gen = torch.Generator().manual_seed(0)
    xy = torch.rand(200, 2, generator=gen) * 500
    wh = torch.rand(200, 2, generator=gen) * 300 + 1
    boxes = torch.cat([xy, xy + wh], dim=1)
    anchor_xy = torch.rand(200, 2, generator=gen) * 500
    anchors = torch.cat([anchor_xy, anchor_xy + 63], dim=1)
    coder = BoxCoder()
    torch.testing.assert_close(coder.decode(coder.encode(boxes, anchors), anchors), boxes, rtol=1e-5, atol=1e-3)


def test_decode_clamps_huge_scale():
    coder = BoxCoder()
    anchors = torch.tensor([[0.0, 0.0, 15.0, 15.0]])
    boxes = coder.decode(torch.tensor([[0.0, 0.0, 1000.0, 1000.0]]), anchors)
    width = boxes[0, 2] - boxes[0, 0] + 1
    torch.testing.assert_close(width, torch.tensor(1000.0), rtol=1e-5, atol=1e-3)  # 16 px * 1000/16


def test_empty_and_bad_shapes():
    coder = BoxCoder()
    assert coder.encode(torch.zeros(0, 4), torch.zeros(0, 4)).shape == (0, 4)
    with pytest.raises(ValueError, match="differ"):
        coder.encode(torch.zeros(2, 4), torch.zeros(3, 4))
    with pytest.raises(ValueError, match="4 weights"):
        BoxCoder(weights=(1.0, 1.0))


def test_upstream_import_path_and_call_form():
    # maskrcnn-benchmark's scripts and tests do `from maskrcnn_benchmark.modeling.box_coder import BoxCoder`
    # and build it with explicit weights (DESIGN.md "Names that users' scripts import").
    from maskrcnn_benchmark.modeling import box_coder as upstream_path

    assert upstream_path.BoxCoder is BoxCoder
    coder = upstream_path.BoxCoder(weights=(1.0, 1.0, 1.0, 1.0))
    # anchor [0, 0, 9, 19]: width 10, height 20, centre (4.5, 9.5) (+1 convention, upstream-facts.md 1.13).
    # dx = 0.5 -> centre x 4.5 + 5 = 9.5; dy = -0.25 -> centre y 9.5 - 5 = 4.5; dw = ln 2 -> width 20;
    # dh = 0 -> height 20. Box = centre -+ (size - 1) / 2.
    deltas = torch.tensor([[0.5, -0.25, math.log(2.0), 0.0]])
    boxes = coder.decode(deltas, torch.tensor([[0.0, 0.0, 9.0, 19.0]]))
    torch.testing.assert_close(boxes, torch.tensor([[0.0, -5.0, 19.0, 14.0]]))


def test_decode_several_box_groups_per_anchor():
    # upstream's class-specific form: deltas [N, 4K] decode to boxes [N, 4K], group k from columns 4k..4k+3.
    coder = BoxCoder(weights=(1.0, 1.0, 1.0, 1.0))
    anchors = torch.tensor([[0.0, 0.0, 9.0, 9.0], [10.0, 10.0, 13.0, 13.0]])  # widths 10 and 4
    deltas = torch.tensor([[0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
                           [0.0, 0.5, 0.0, 0.0, 0.0, 0.0, math.log(0.5), math.log(0.5)]])
    expected = torch.tensor([[0.0, 0.0, 9.0, 9.0, 10.0, 0.0, 19.0, 9.0],
                             [10.0, 12.0, 13.0, 15.0, 11.0, 11.0, 12.0, 12.0]])
    torch.testing.assert_close(coder.decode(deltas, anchors), expected)
    with pytest.raises(ValueError, match=r"expected \[N, 4K\]"):
        coder.decode(torch.zeros(2, 6), anchors)
    assert coder.decode(torch.zeros(0, 8), torch.zeros(0, 4)).shape == (0, 8)
