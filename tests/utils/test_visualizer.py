"""Drawing boxes: class colours, outlines on the box pixels, tags with and without scores, ground truth."""

import numpy as np
import pytest
import torch
from PIL import Image

from maskrcnn_benchmark.engine.predictor import Detections
from maskrcnn_benchmark.utils.visualizer import PALETTE, color_for_label, draw_boxes, draw_detections

GREY = (128, 128, 128)


def test_drawing_uses_class_colours():
    image = Image.new("RGB", (160, 128), GREY)
    dets = Detections(torch.tensor([[20.0, 40.0, 90.0, 100.0]]), torch.tensor([0.9]), torch.tensor([2]),
                      ["blue circle"], (160, 128))
    drawn = np.asarray(draw_detections(image, dets))
    color = np.array(color_for_label(2))
    assert (drawn[70, 20] == color).all() and (drawn[100, 50] == color).all() and (drawn[70, 90] == color).all()
    assert (drawn[70, 50] == 128).all()  # inside untouched
    assert color_for_label(2) != color_for_label(3) and color_for_label(2) == color_for_label(2 + 18)
    assert color_for_label(1) == (230, 25, 75) and len(set(PALETTE)) == len(PALETTE) == 18
    assert np.asarray(image).max() == 128  # the input is not drawn on


def test_ground_truth_without_scores_has_name_only_tags_and_keeps_the_given_order():
    """Two overlapping boxes, no scores: the second one is drawn last (on top), tags show the bare names."""
    image = np.full((100, 120, 3), 128, dtype=np.uint8)
    boxes = [[10, 30, 70, 90], [40, 30, 100, 90]]
    drawn = np.asarray(draw_boxes(image, boxes, [1, 3], names=["cat", "dog"]))
    assert (drawn[60, 10] == color_for_label(1)).all() and (drawn[60, 70] == color_for_label(1)).all()
    assert (drawn[60, 100] == color_for_label(3)).all()
    assert (drawn[30, 40] == color_for_label(3)).all()  # where box 1's top edge crosses box 2's left edge
    # A tag with a score is wider than a tag with the bare name: compare the painted tag areas.
    with_scores = np.asarray(draw_boxes(image, boxes[:1], [1], names=["cat"], scores=[0.5]))
    without = np.asarray(draw_boxes(image, boxes[:1], [1], names=["cat"]))
    tag_color = np.array(color_for_label(1))
    assert (with_scores == tag_color).all(axis=2).sum() > (without == tag_color).all(axis=2).sum()


def test_scores_set_the_drawing_order():
    image = Image.new("RGB", (120, 100), GREY)
    boxes = torch.tensor([[10.0, 30.0, 70.0, 90.0], [40.0, 30.0, 100.0, 90.0]])
    # The first box has the higher score: it is drawn last, so it wins where the outlines cross.
    drawn = np.asarray(draw_boxes(image, boxes, torch.tensor([1, 3]), scores=torch.tensor([0.9, 0.2])))
    assert (drawn[30, 40] == color_for_label(1)).all()
    swapped = np.asarray(draw_boxes(image, boxes, torch.tensor([1, 3]), scores=torch.tensor([0.2, 0.9])))
    assert (swapped[30, 40] == color_for_label(3)).all()


def test_bgr_arrays_and_bad_lengths():
    rgb = np.zeros((50, 60, 3), dtype=np.uint8)
    rgb[..., 0] = 200  # red in RGB
    from_bgr = np.asarray(draw_boxes(rgb[:, :, ::-1].copy(), [], []))
    from_rgb = np.asarray(draw_boxes(rgb, [], [], rgb=True))
    assert (from_bgr == from_rgb).all() and (from_rgb[..., 0] == 200).all()
    with pytest.raises(ValueError, match="names has 1 entries for 2 boxes"):
        draw_boxes(rgb, [[0, 0, 5, 5], [1, 1, 6, 6]], [1, 2], names=["a"], rgb=True)
