"""Transforms: resize rule, +1 flip, left/right swap, BGR255 normalisation (upstream-facts.md 1.2)."""

import random

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as F
from PIL import Image

from maskrcnn_benchmark.config import cfg as base_cfg
from maskrcnn_benchmark.data.transforms import (
    Normalize,
    RandomHorizontalFlip,
    Resize,
    ToTensor,
    build_transforms,
    resized_size,
    swap_left_right,
)
from maskrcnn_benchmark.structures.bounding_box import BoxList


@pytest.mark.parametrize(
    "size, min_size, max_size, expected",
    [
        ((640, 480), 800, 1333, (800, 1066)),  # int(800 * 640 / 480) = 1066 (truncation)
        ((480, 640), 800, 1333, (1066, 800)),
        ((2000, 500), 800, 1333, (333, 1332)),  # capped: round(1333 * 500 / 2000) = 333, int(333 * 4) = 1332
        ((1333, 800), 800, 1333, (800, 1333)),  # already the right size: unchanged
        ((333, 500), 480, 1333, (720, 480)),
        ((1000, 999), 800, 1333, (800, 800)),  # int(800 * 1000 / 999) = 800
        ((100, 100), 800, None, (800, 800)),
        # Beyond upstream: a short side rounding to 0 keeps 1 pixel, the long side at most max_size.
        ((2000, 3), 128, 224, (1, 224)),
        ((3, 2000), 128, 224, (224, 1)),
        ((500, 1), 128, 224, (1, 224)),
        ((5000, 1), 800, 1333, (1, 1333)),
        ((100, 1), 128, 224, (2, 200)),  # round(224 / 100) = 2 >= 1: upstream's rule unchanged
    ],
)
def test_resize_rule(size, min_size, max_size, expected):
    assert resized_size(size[0], size[1], min_size, max_size) == expected


def test_resize_refuses_images_without_pixels():
    for width, height in ((0, 0), (0, 10), (10, 0)):
        with pytest.raises(ValueError, match="no pixels"):
            resized_size(width, height, 800, 1333)


def test_resize_transform_scales_boxes():
    image = Image.new("RGB", (200, 100))
    target = BoxList(torch.tensor([[10.0, 20.0, 50.0, 60.0]]), (200, 100))
    out_image, out_target = Resize(200, 1333)(image, target)
    assert out_image.size == (400, 200)
    assert out_target.size == (400, 200)
    torch.testing.assert_close(out_target.bbox, torch.tensor([[20.0, 40.0, 100.0, 120.0]]))


def test_resize_chooses_from_the_list():
    random.seed(0)
    sizes = {Resize((480, 560, 640), 1333)(Image.new("RGB", (100, 100)))[0].size[0] for _ in range(40)}
    assert sizes == {480, 560, 640}


def test_flip_uses_plus_one_convention_and_keeps_caption_by_default():
    image = Image.fromarray(np.arange(2 * 10 * 3, dtype=np.uint8).reshape(2, 10, 3))
    target = BoxList(torch.tensor([[1.0, 0.0, 3.0, 1.0]]), (10, 2))
    target.add_field("caption", "the cat on the left")
    out_image, out_target = RandomHorizontalFlip(1.0)(image, target)
    assert np.array_equal(np.asarray(out_image), np.asarray(image)[:, ::-1])
    torch.testing.assert_close(out_target.bbox, torch.tensor([[6.0, 0.0, 8.0, 1.0]]))  # x1' = W - x2 - 1
    assert out_target.get_field("caption") == "the cat on the left"
    same_image, same_target = RandomHorizontalFlip(0.0)(image, target)
    assert same_image is image and torch.equal(same_target.bbox, target.bbox)


def test_swap_left_right_moves_spans():
    caption = "the left dog is right of the Left cat, leftover"
    spans = [[[4, 12]], [[16, 21]], [[29, 37]], [[39, 47]]]
    new_caption, new_spans = swap_left_right(caption, spans)
    assert new_caption == "the right dog is left of the Right cat, leftover"
    assert [new_caption[s:e] for ((s, e),) in new_spans] == ["right dog", "left", "Right cat", "leftover"]


def test_flip_can_swap_left_right_in_captions():
    target = BoxList(torch.tensor([[0.0, 0.0, 3.0, 3.0]]), (10, 10))
    target.add_field("caption", "left cup")
    target.add_field("tokens_positive", [[[0, 8]]], per_box=True)
    _, out = RandomHorizontalFlip(1.0, swap_left_right=True)(Image.new("RGB", (10, 10)), target)
    assert out.get_field("caption") == "right cup"
    assert out.get_field("tokens_positive") == [[[0, 9]]]


def test_to_tensor_and_normalise_match_torchvision_bitwise():
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (17, 23, 3), dtype=np.uint8))
    tensor, _ = ToTensor()(image)
    assert torch.equal(tensor, F.to_tensor(image))
    mean, std = [103.530, 116.280, 123.675], [57.375, 57.120, 58.395]
    out, _ = Normalize(mean, std, to_bgr255=True)(tensor)
    reference = F.normalize(F.to_tensor(image)[[2, 1, 0]] * 255, mean, std)
    assert torch.equal(out, reference)
    # a pure red pixel becomes BGR (0, 0, 255) before normalising
    red = Image.new("RGB", (1, 1), (255, 0, 0))
    value, _ = Normalize(mean, std)(ToTensor()(red)[0])
    expected = torch.tensor([-103.53 / 57.375, -116.28 / 57.12, (255 - 123.675) / 58.395])
    torch.testing.assert_close(value.flatten(), expected)
    rgb, _ = Normalize([0.5, 0.5, 0.5], [0.5, 0.5, 0.5], to_bgr255=False)(ToTensor()(red)[0])
    torch.testing.assert_close(rgb.flatten(), torch.tensor([1.0, -1.0, -1.0]))
    with pytest.raises(ValueError, match="std must be positive"):
        Normalize(mean, [1, 0, 1])


def test_build_transforms_reads_the_config():
    cfg = base_cfg.clone()
    cfg.AUGMENT.MULT_MIN_SIZE_TRAIN = (480, 560)
    cfg.INPUT.MAX_SIZE_TRAIN = 1000
    cfg.AUGMENT.FLIP_PROB_TRAIN = 0.3
    train = build_transforms(cfg, is_train=True)
    resize, flip = train.transforms[0], train.transforms[1]
    assert resize.min_size == (480, 560) and resize.max_size == 1000 and flip.prob == 0.3
    assert not flip.swap_left_right  # upstream keeps captions unchanged on a flip
    cfg.INPUT.FLIP_SWAP_LEFT_RIGHT = True
    assert build_transforms(cfg, is_train=True).transforms[1].swap_left_right
    test = build_transforms(cfg, is_train=False)
    assert test.transforms[0].min_size == (800,) and test.transforms[1].prob == 0.0
    image = Image.new("RGB", (64, 48), (10, 20, 30))
    target = BoxList(torch.tensor([[0.0, 0.0, 10.0, 10.0]]), (64, 48))
    out, out_target = test(image, target)
    assert out.shape == (3, 800, 1066) and out.dtype == torch.float32
    assert out_target.size == (1066, 800)
