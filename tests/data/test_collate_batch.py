"""BatchCollator: padding to a multiple of 32, binarised positive maps, eval maps."""

import pytest
import torch

from maskrcnn_benchmark.data.collate_batch import BatchCollator, fraction_without_boxes
from maskrcnn_benchmark.structures.bounding_box import BoxList


def _target(n, width, height, with_map=True, eval_rows=None):
    t = BoxList(torch.zeros(n, 4), (width, height))
    if with_map:
        pm = torch.zeros(n, 256)
        pm[:, 1:3] = 0.5
        t.add_field("positive_map", pm)
    if eval_rows is not None:
        t.add_field("positive_map_eval", torch.ones(eval_rows, 256) / 256)
    return t


def test_pads_to_multiple_of_32_bottom_right():
    images = [torch.ones(3, 50, 70), 2 * torch.ones(3, 65, 40)]
    batch = [(images[0], _target(2, 70, 50), 4), (images[1], _target(1, 40, 65), 9)]
    image_list, targets, ids, positive_map, positive_map_eval = BatchCollator(32)(batch)
    assert image_list.tensors.shape == (2, 3, 96, 96)
    assert image_list.image_sizes == [(50, 70), (65, 40)]
    assert torch.equal(image_list.tensors[0, :, :50, :70], images[0])
    assert image_list.tensors[0, :, 50:].abs().sum() == 0 and image_list.tensors[0, :, :, 70:].abs().sum() == 0
    assert ids == (4, 9) and len(targets) == 2
    assert positive_map.shape == (3, 256)
    assert set(positive_map.unique().tolist()) == {0.0, 1.0}  # binarised
    assert positive_map_eval is None


def test_eval_maps_and_detection_targets():
    batch = [(torch.zeros(3, 32, 32), _target(1, 32, 32, with_map=False, eval_rows=3), 0),
             (torch.zeros(3, 32, 32), _target(2, 32, 32, with_map=False), 1)]
    _, _, _, positive_map, positive_map_eval = BatchCollator(0)(batch)
    assert positive_map is None
    assert positive_map_eval[0].shape == (3, 256) and positive_map_eval[1] is None


def test_mixed_grounding_and_detection_targets_are_refused():
    batch = [(torch.zeros(3, 8, 8), _target(1, 8, 8), 0), (torch.zeros(3, 8, 8), _target(1, 8, 8, False), 1)]
    with pytest.raises(ValueError, match="only 1 of 2 targets"):
        BatchCollator(32)(batch)


def test_fraction_without_boxes():
    assert fraction_without_boxes([_target(0, 8, 8), _target(2, 8, 8), _target(0, 8, 8), _target(1, 8, 8)]) == 0.5
