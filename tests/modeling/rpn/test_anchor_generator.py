"""Anchors: legacy +1 generation, the FIBER cell anchors (fixture values) and grid ordering."""

import json
from pathlib import Path

import pytest
import torch

from maskrcnn_benchmark.modeling.rpn.anchor_generator import (
    AnchorGenerator,
    anchor_sizes_per_level,
    generate_cell_anchors,
)

FIXTURES = Path(__file__).resolve().parents[3] / ".." / "shared" / "fixtures" / "upstream-state-dict"
FIBER_SIZES = (64, 128, 256, 512, 1024)
FIBER_STRIDES = (8, 16, 32, 64, 128)


def fiber_generator():
    return AnchorGenerator(anchor_sizes_per_level(FIBER_SIZES, 2.0, 1), (1.0,), FIBER_STRIDES)


def test_stride8_anchor_at_origin():
    torch.testing.assert_close(generate_cell_anchors(8, (64,), (1.0,)), torch.tensor([[-28.0, -28.0, 35.0, 35.0]]))


def test_ratio_and_scale_enumeration():
    # Detectron's legacy generator: stride 16, size 32: the 1:1 anchor is [-8,-8,23,23]; ratio 0.5 rounds the
    # 16x16 window to 23x12 before scaling x2.
    cells = generate_cell_anchors(16, (32, 64), (0.5, 1.0, 2.0))
    assert cells.shape == (6, 4) and cells.dtype == torch.float32
    torch.testing.assert_close(cells[0], torch.tensor([-15.0, -4.0, 30.0, 19.0]))
    torch.testing.assert_close(cells[2], torch.tensor([-8.0, -8.0, 23.0, 23.0]))
    torch.testing.assert_close(cells[3], torch.tensor([-24.0, -24.0, 39.0, 39.0]))


def test_octave_sizes():
    sizes = anchor_sizes_per_level((32, 64), 2.0, 3)
    assert sizes[0] == pytest.approx((32.0, 32 * 2 ** (1 / 3), 32 * 2 ** (2 / 3)))
    assert len(sizes) == 2


def test_cell_anchor_buffers_match_upstream_fixture():
    path = FIXTURES / "coco_finetune_v2.json"
    if not path.is_file():
        pytest.skip(f"fixture {path} is absent")
    fixture = json.loads(path.read_text())
    state = fiber_generator().state_dict()
    for index in range(5):
        key = f"cell_anchors.{index}"
        expected = torch.tensor(fixture["small_buffer_values"][f"rpn.anchor_generator.{key}"])
        assert state[key].dtype == torch.float32
        torch.testing.assert_close(state[key], expected)


def test_grid_order_rows_outer_then_columns():
    anchors = fiber_generator().grid_anchors([(2, 3), (1, 2), (1, 1), (1, 1), (1, 1)])
    assert [a.shape[0] for a in anchors] == [6, 2, 1, 1, 1]
    # cell (y=1, x=2) is row-major index 5: shifted by (16, 8) from the origin anchor
    torch.testing.assert_close(anchors[0][5], torch.tensor([-28.0 + 16, -28.0 + 8, 35.0 + 16, 35.0 + 8]))
    torch.testing.assert_close(anchors[0][1], torch.tensor([-20.0, -28.0, 43.0, 35.0]))
    torch.testing.assert_close(anchors[1][1], torch.tensor([-56.0 + 16, -56.0, 71.0 + 16, 71.0]))


def test_forward_uses_feature_sizes_and_rejects_level_mismatch():
    generator = fiber_generator()
    features = [torch.zeros(2, 4, 16 // 2 ** i + 1, 20 // 2 ** i + 1) for i in range(5)]
    anchors = generator(features)
    assert [a.shape[0] for a in anchors] == [f.shape[-2] * f.shape[-1] for f in features]
    with pytest.raises(ValueError, match="feature maps"):
        generator(features[:3])
    with pytest.raises(ValueError, match="ANCHOR_SIZES"):
        AnchorGenerator([(64,)], (1.0,), (8, 16))
