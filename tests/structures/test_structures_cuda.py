"""Structures on a CUDA device give the same results as on the CPU."""

import pytest
import torch

from maskrcnn_benchmark.structures.bounding_box import FLIP_LEFT_RIGHT, BoxList
from maskrcnn_benchmark.structures.boxlist_ops import boxlist_iou, boxlist_ml_nms, boxlist_nms, cat_boxlist
from maskrcnn_benchmark.structures.image_list import to_image_list

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def _boxes(n=200, size=(320, 240), seed=0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * torch.tensor([size[0] * 0.7, size[1] * 0.7])
    wh = 4 + torch.rand(n, 2, generator=g) * 60
    boxes = BoxList(torch.cat([xy, xy + wh], dim=1), size)
    boxes.add_field("scores", torch.rand(n, generator=g))
    boxes.add_field("labels", torch.randint(1, 4, (n,), generator=g))
    boxes.add_field("caption", "a. b. c")
    return boxes


def test_geometry_matches_cpu():
    cpu = _boxes()
    gpu = cpu.to("cuda")
    assert gpu.bbox.is_cuda and gpu.get_field("labels").is_cuda and gpu.get_field("caption") == "a. b. c"
    for op in (
        lambda b: b.resize((640, 360)),
        lambda b: b.transpose(FLIP_LEFT_RIGHT),
        lambda b: b.crop((10, 20, 200, 180)),
        lambda b: b.convert("xywh"),
        lambda b: b.clip_to_image(remove_empty=True),
    ):
        expected = op(cpu.copy_with_fields(cpu.fields()))
        result = op(gpu.copy_with_fields(gpu.fields()))
        torch.testing.assert_close(result.bbox.cpu(), expected.bbox)
        assert torch.equal(result.get_field("labels").cpu(), expected.get_field("labels"))
    keep = gpu.get_field("scores") > 0.5
    assert torch.equal(gpu[keep].get_field("labels").cpu(), cpu[keep.cpu()].get_field("labels"))


def test_iou_and_nms_match_cpu():
    cpu = _boxes()
    gpu = cpu.to("cuda")
    for plus_one in (True, False):
        torch.testing.assert_close(boxlist_iou(gpu, gpu, plus_one).cpu(), boxlist_iou(cpu, cpu, plus_one))
    for fn in (boxlist_nms, boxlist_ml_nms):
        kept_cpu = fn(cpu, 0.5)
        kept_gpu = fn(gpu, 0.5)
        assert sorted(kept_gpu.get_field("scores").cpu().tolist()) == sorted(kept_cpu.get_field("scores").tolist())
    merged = cat_boxlist([gpu, gpu[[0, 1]]])
    assert len(merged) == len(gpu) + 2 and merged.bbox.is_cuda


def test_to_image_list_on_cuda():
    images = [torch.rand(3, 50, 70, device="cuda"), torch.rand(3, 64, 33, device="cuda")]
    batch = to_image_list(images, size_divisible=32)
    assert batch.tensors.is_cuda and batch.tensors.shape == (2, 3, 64, 96)
    assert torch.equal(batch.tensors[1, :, :64, :33], images[1])
