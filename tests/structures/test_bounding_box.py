"""Tests for BoxList: validation, conversions, geometric round trips and field handling."""

import numpy as np
import pytest
import torch

from maskrcnn_benchmark.structures.bounding_box import FLIP_LEFT_RIGHT, FLIP_TOP_BOTTOM, BoxList


def _random_boxes(n, width, height, seed=0):
    g = torch.Generator().manual_seed(seed)
    x1 = torch.rand(n, generator=g) * (width / 2)
    y1 = torch.rand(n, generator=g) * (height / 2)
    x2 = x1 + 1 + torch.rand(n, generator=g) * (width / 2 - 2)
    y2 = y1 + 1 + torch.rand(n, generator=g) * (height / 2 - 2)
    return torch.stack([x1, y1, x2, y2], dim=1)


def _grounding_boxlist():
    boxes = BoxList([[0, 0, 9, 19], [10, 5, 29, 14], [3, 3, 6, 6]], (40, 30))
    boxes.add_field("labels", torch.tensor([1, 2, 3]))
    boxes.add_field("caption", "a cat. a dog. a mouse")
    boxes.add_field("tokens_positive", [[[2, 5]], [[9, 12]], [[16, 21]]])
    boxes.add_field("positive_map", torch.eye(3, 8))
    boxes.add_field("positive_map_eval", torch.ones(2, 8))  # 2 phrases for 3 boxes: per image
    return boxes


def test_construction_validation_messages():
    with pytest.raises(ValueError, match="2 dimensions"):
        BoxList(torch.zeros(2, 2, 4), (10, 10))
    with pytest.raises(ValueError, match="size 4, got 5"):
        BoxList(torch.zeros(3, 5), (10, 10))
    with pytest.raises(ValueError, match="mode"):
        BoxList(torch.zeros(3, 4), (10, 10), mode="cxcywh")
    with pytest.raises(ValueError, match="width, height"):
        BoxList(torch.zeros(3, 4), (10, 10, 3))
    empty = BoxList(torch.as_tensor([]), (10, 10))
    assert empty.bbox.shape == (0, 4) and len(empty) == 0
    ints = BoxList([[1, 2, 3, 4]], (10, 10))
    assert ints.bbox.dtype == torch.float32


def test_add_field_length_validation_gives_both_sizes():
    boxes = BoxList(torch.zeros(3, 4), (10, 10))
    with pytest.raises(ValueError) as info:
        boxes.add_field("labels", torch.tensor([1, 2]))
    assert "2 entries" in str(info.value) and "3 boxes" in str(info.value)
    with pytest.raises(ValueError):
        boxes.add_field("scores", torch.zeros(4), per_box=True)
    # explicit per-image escape hatch
    boxes.add_field("something", torch.zeros(5, 2), per_box=False)
    assert not boxes.is_per_box_field("something")
    with pytest.raises(KeyError, match="fields"):
        boxes.get_field("missing")


def test_convert_uses_plus_one_convention_and_round_trips():
    xyxy = BoxList([[10.0, 20.0, 19.0, 39.0]], (100, 100))
    xywh = xyxy.convert("xywh")
    torch.testing.assert_close(xywh.bbox, torch.tensor([[10.0, 20.0, 10.0, 20.0]]))
    torch.testing.assert_close(xywh.convert("xyxy").bbox, xyxy.bbox)
    assert xyxy.convert("xyxy") is xyxy
    torch.testing.assert_close(xyxy.area(), torch.tensor([200.0]))
    torch.testing.assert_close(xywh.area(), torch.tensor([200.0]))


def test_resize_there_and_back_keeps_boxes_and_fields():
    boxes = _grounding_boxlist()
    resized = boxes.resize((80, 45))  # ratios 2.0 and 1.5
    assert resized.size == (80, 45)
    torch.testing.assert_close(resized.bbox[0], torch.tensor([0.0, 0.0, 18.0, 28.5]))
    back = resized.resize((40, 30))
    torch.testing.assert_close(back.bbox, boxes.bbox)
    for field in boxes.fields():
        assert back.get_field(field) is boxes.get_field(field)
    uniform = boxes.convert("xywh").resize((20, 15))
    assert uniform.mode == "xywh"
    torch.testing.assert_close(uniform.bbox, boxes.convert("xywh").bbox * 0.5)


def test_flip_twice_is_identity_and_uses_plus_one():
    boxes = BoxList(_random_boxes(20, 64, 48), (64, 48))
    boxes.add_field("caption", "text")
    once = boxes.transpose(FLIP_LEFT_RIGHT)
    x1, y1, x2, y2 = boxes.bbox.unbind(1)
    torch.testing.assert_close(once.bbox[:, 0], 64 - x2 - 1)
    torch.testing.assert_close(once.bbox[:, 2], 64 - x1 - 1)
    torch.testing.assert_close(once.bbox[:, 1], y1)
    torch.testing.assert_close(once.transpose(FLIP_LEFT_RIGHT).bbox, boxes.bbox)
    torch.testing.assert_close(once.area(), boxes.area())
    vertical = boxes.transpose(FLIP_TOP_BOTTOM)
    torch.testing.assert_close(vertical.bbox[:, 1], 48 - y2 - 1)
    torch.testing.assert_close(vertical.transpose(FLIP_TOP_BOTTOM).bbox, boxes.bbox)
    assert once.get_field("caption") == "text"
    xywh = boxes.convert("xywh")
    torch.testing.assert_close(xywh.transpose(FLIP_LEFT_RIGHT).transpose(FLIP_LEFT_RIGHT).bbox, xywh.bbox)
    with pytest.raises(ValueError):
        boxes.transpose(2)


def test_flip_of_full_width_box_stays_inside_image():
    boxes = BoxList([[0.0, 0.0, 63.0, 10.0]], (64, 48))
    torch.testing.assert_close(boxes.transpose(FLIP_LEFT_RIGHT).bbox, boxes.bbox)


def test_crop_shifts_clamps_and_round_trips_inside_region():
    boxes = BoxList([[10.0, 10.0, 20.0, 20.0], [0.0, 0.0, 50.0, 50.0]], (60, 60))
    boxes.add_field("labels", torch.tensor([4, 5]))
    cropped = boxes.crop((5, 8, 35, 38))
    assert cropped.size == (30, 30)
    torch.testing.assert_close(cropped.bbox, torch.tensor([[5.0, 2.0, 15.0, 12.0], [0.0, 0.0, 30.0, 30.0]]))
    assert torch.equal(cropped.get_field("labels"), torch.tensor([4, 5]))
    # a box fully inside the crop comes back exactly when shifted back
    torch.testing.assert_close(cropped.bbox[0] + torch.tensor([5.0, 8.0, 5.0, 8.0]), boxes.bbox[0])
    with pytest.raises(ValueError):
        boxes.crop((10, 10, 5, 20))


def test_clip_to_image_and_remove_empty():
    boxes = BoxList([[-5.0, -5.0, 5.0, 5.0], [8.0, 2.0, 30.0, 9.0], [12.0, 0.0, 20.0, 5.0]], (10, 10))
    boxes.add_field("labels", torch.tensor([1, 2, 3]))
    boxes.add_field("tokens_positive", [["a"], ["b"], ["c"]])
    kept = boxes.clip_to_image(remove_empty=True)
    # third box becomes x1 = x2 = 9 -> empty
    torch.testing.assert_close(kept.bbox, torch.tensor([[0.0, 0.0, 5.0, 5.0], [8.0, 2.0, 9.0, 9.0]]))
    assert kept.get_field("labels").tolist() == [1, 2]
    assert kept.get_field("tokens_positive") == [["a"], ["b"]]
    same = boxes.clip_to_image(remove_empty=False)
    assert same is boxes and len(same) == 3


def test_getitem_indexes_tensor_and_list_fields_keeps_per_image_fields():
    boxes = _grounding_boxlist()
    indices = (torch.tensor([False, True, True]), torch.tensor([1, 2]), [1, 2], slice(1, 3), [False, True, True],
               np.array([1, 2]), np.array([False, True, True]))
    for index in indices:
        sub = boxes[index]
        assert len(sub) == 2
        assert sub.get_field("labels").tolist() == [2, 3]
        assert sub.get_field("tokens_positive") == [[[9, 12]], [[16, 21]]]
        assert sub.get_field("caption") == "a cat. a dog. a mouse"
        assert sub.get_field("positive_map").shape == (2, 8)
        assert sub.get_field("positive_map_eval").shape == (2, 8)  # per image: unchanged
    single = boxes[0]
    assert single.bbox.shape == (1, 4) and single.get_field("tokens_positive") == [[[2, 5]]]
    with pytest.raises(IndexError):
        boxes[torch.tensor([True, False])]


def test_non_tensor_fields_survive_every_transform():
    boxes = _grounding_boxlist()
    ops = [
        lambda b: b.resize((50, 60)),
        lambda b: b.transpose(FLIP_LEFT_RIGHT),
        lambda b: b.crop((0, 0, 20, 20)),
        lambda b: b.convert("xywh"),
        lambda b: b.to("cpu"),
        lambda b: b.clip_to_image(remove_empty=False),
        lambda b: b.copy_with_fields(["caption", "tokens_positive", "labels"]),
    ]
    for op in ops:
        out = op(boxes)
        assert out.get_field("caption") == "a cat. a dog. a mouse"
        assert out.get_field("tokens_positive") == [[[2, 5]], [[9, 12]], [[16, 21]]]
        assert out.is_per_box_field("tokens_positive")


def test_copy_with_fields():
    boxes = _grounding_boxlist()
    copy = boxes.copy_with_fields("labels")
    assert copy.fields() == ["labels"]
    with pytest.raises(KeyError):
        boxes.copy_with_fields(["scores"])
    assert boxes.copy_with_fields(["scores", "labels"], skip_missing=True).fields() == ["labels"]


def test_repr_mentions_size_and_fields():
    text = repr(_grounding_boxlist())
    assert "num_boxes=3" in text and "image_width=40" in text and "labels" in text


def test_fields_assigned_directly_are_classified_on_use():
    boxes = BoxList(torch.zeros(3, 4), (10, 10))
    boxes.extra_fields["scores"] = torch.tensor([0.1, 0.2, 0.3])  # upstream-style direct assignment
    boxes.extra_fields["caption"] = "abc"
    boxes.extra_fields["orig_size"] = torch.tensor([10, 12, 14])  # per-image by name despite length 3
    assert boxes.is_per_box_field("scores") and not boxes.is_per_box_field("caption")
    sub = boxes[[2]]
    assert sub.get_field("scores").tolist() == pytest.approx([0.3])
    assert sub.get_field("caption") == "abc" and sub.get_field("orig_size").tolist() == [10, 12, 14]
    with pytest.raises(KeyError):
        boxes.is_per_box_field("missing")
