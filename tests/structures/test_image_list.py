"""Tests for ImageList / to_image_list."""

import pytest
import torch

from maskrcnn_benchmark.structures.image_list import ImageList, to_image_list


def test_pads_bottom_right_to_multiple():
    a = torch.ones(3, 5, 7)
    b = torch.full((3, 9, 4), 2.0)
    batch = to_image_list([a, b], size_divisible=4)
    assert batch.tensors.shape == (2, 3, 12, 8)
    assert batch.image_sizes == [(5, 7), (9, 4)]
    assert torch.equal(batch.tensors[0, :, :5, :7], a)
    assert batch.tensors[0, :, 5:, :].abs().sum() == 0 and batch.tensors[0, :, :, 7:].abs().sum() == 0
    assert torch.equal(batch.tensors[1, :, :9, :4], b)
    assert batch.tensors[1, :, :, 4:].abs().sum() == 0


def test_no_divisibility_and_tensor_inputs():
    a = torch.randn(3, 5, 7)
    batch = to_image_list(a)
    assert batch.tensors.shape == (1, 3, 5, 7) and batch.image_sizes == [(5, 7)]
    four = torch.randn(2, 3, 30, 33)
    same = to_image_list(four)
    assert same.tensors is four and same.image_sizes == [(30, 33), (30, 33)]
    padded = to_image_list(four, size_divisible=32)
    assert padded.tensors.shape == (2, 3, 32, 64)
    assert torch.equal(padded.tensors[:, :, :30, :33], four)
    assert to_image_list(padded) is padded


def test_errors():
    with pytest.raises(ValueError, match="channels"):
        to_image_list([torch.zeros(3, 4, 4), torch.zeros(1, 4, 4)])
    with pytest.raises(ValueError):
        to_image_list([torch.zeros(4, 4)])
    with pytest.raises(TypeError):
        to_image_list("image")
    with pytest.raises(ValueError):
        to_image_list([])
    with pytest.raises(ValueError):
        ImageList(torch.zeros(2, 3, 4, 4), [(4, 4)])


def test_to_keeps_sizes():
    batch = to_image_list([torch.zeros(3, 4, 6)], 2).to(torch.float64)
    assert batch.tensors.dtype == torch.float64 and batch.image_sizes == [(4, 6)] and len(batch) == 1
