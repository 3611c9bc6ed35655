"""nms / ml_nms: compiled kernel vs pure-torch path vs torchvision vs a slow Python reference (+1 convention)."""

import math

import pytest
import torch
import torchvision

from maskrcnn_benchmark.layers import ml_nms, nms


def reference_nms(boxes, scores, threshold, labels=None):
    """Greedy NMS written from the definition, in Python floats (+1 areas, strict '>' suppression)."""
    b = boxes.double().tolist()
    s = scores.double().tolist()
    lab = labels.tolist() if labels is not None else [0] * len(b)
    order = sorted(range(len(b)), key=lambda i: (-s[i], i))
    removed = set()
    keep = []
    for pos, i in enumerate(order):
        if i in removed:
            continue
        keep.append(i)
        for j in order[pos + 1:]:
            if j in removed or lab[i] != lab[j]:
                continue
            w = min(b[i][2], b[j][2]) - max(b[i][0], b[j][0]) + 1
            h = min(b[i][3], b[j][3]) - max(b[i][1], b[j][1]) + 1
            inter = max(w, 0.0) * max(h, 0.0)
            area_i = (b[i][2] - b[i][0] + 1) * (b[i][3] - b[i][1] + 1)
            area_j = (b[j][2] - b[j][0] + 1) * (b[j][3] - b[j][1] + 1)
            union = area_i + area_j - inter
            iou = inter / union if union != 0 else math.nan
            if iou > threshold:
                removed.add(j)
    return keep


def random_boxes(n, seed, dtype=torch.float32, spread=100.0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.rand(n, 2, generator=g) * spread
    sizes = torch.rand(n, 2, generator=g) * 40 + 2
    boxes = torch.cat([centers - sizes / 2, centers + sizes / 2], dim=1)
    scores = torch.rand(n, generator=g)
    return boxes.to(dtype), scores.to(dtype)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
@pytest.mark.parametrize("threshold", [0.3, 0.6])
def test_nms_matches_reference(impl, dtype, threshold):
    boxes, scores = random_boxes(300, seed=1, dtype=dtype)
    keep = nms(boxes, scores, threshold, impl=impl)
    # half inputs are compared in float32 by every path
    expected = reference_nms(boxes.float() if dtype == torch.float16 else boxes, scores.float(), threshold)
    assert keep.dtype == torch.int64
    assert keep.tolist() == expected
    assert 0 < len(expected) < 300  # the case really suppresses something


def test_nms_returns_decreasing_score_order(impl):
    boxes, scores = random_boxes(200, seed=2)
    keep = nms(boxes, scores, 0.5, impl=impl)
    kept_scores = scores[keep]
    assert torch.all(kept_scores[:-1] >= kept_scores[1:])


def test_nms_plus_one_convention_differs_from_plain_iou(impl):
    # IoU without +1: 5*10/(10*10+10*10-50)=1/3; with +1: 6*11/(11*11*2-66)=66/176=0.375
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 15.0, 10.0]])
    scores = torch.tensor([0.9, 0.8])
    assert nms(boxes, scores, 0.35, impl=impl).tolist() == [0]
    assert torchvision.ops.nms(boxes, scores, 0.35).tolist() == [0, 1]
    assert nms(boxes, scores, 0.38, impl=impl).tolist() == [0, 1]


def test_nms_edge_cases(impl):
    empty = nms(torch.zeros(0, 4), torch.zeros(0), 0.5, impl=impl)
    assert empty.shape == (0,) and empty.dtype == torch.int64
    assert nms(torch.tensor([[1.0, 2.0, 3.0, 4.0]]), torch.tensor([0.3]), 0.5, impl=impl).tolist() == [0]
    # all-identical scores: ties broken by index, identical boxes suppress later ones
    boxes = torch.tensor([[0.0, 0, 10, 10], [0.0, 0, 10, 10], [20.0, 20, 30, 30], [0.0, 0, 10, 10]])
    same = torch.full((4,), 0.5)
    assert nms(boxes, same, 0.5, impl=impl).tolist() == [0, 2]
    # zero-area boxes under the +1 convention (x2 = x1 - 1): IoU is 0/0 = nan, never suppresses
    degenerate = torch.tensor([[5.0, 5, 4, 4], [5.0, 5, 4, 4], [0.0, 0, 0, 0], [0.0, 0, 0, 0]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    expected = reference_nms(degenerate, scores, 0.5)
    assert nms(degenerate, scores, 0.5, impl=impl).tolist() == expected == [0, 1, 2]


def test_nms_torch_path_matches_torchvision_on_shifted_boxes():
    boxes, scores = random_boxes(500, seed=3, dtype=torch.float64)
    shifted = boxes.clone()
    shifted[:, 2:] += 1
    assert nms(boxes, scores, 0.5, impl="torch").tolist() == torchvision.ops.nms(shifted, scores, 0.5).tolist()


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_ml_nms_matches_reference(impl, dtype):
    boxes, scores = random_boxes(400, seed=4, dtype=dtype)
    labels = torch.randint(1, 4, (400,), generator=torch.Generator().manual_seed(5))
    keep = ml_nms(boxes, scores, labels, 0.5, impl=impl)
    expected = sorted(reference_nms(boxes.float() if dtype == torch.float16 else boxes, scores.float(), 0.5,
                                    labels))
    assert keep.tolist() == expected


def test_ml_nms_is_class_aware_and_sorted_ascending(impl):
    boxes = torch.tensor([[0.0, 0, 10, 10], [0.0, 0, 10, 10], [0.0, 0, 10, 10], [1.0, 1, 11, 11]])
    scores = torch.tensor([0.1, 0.9, 0.5, 0.8])
    labels = torch.tensor([1, 1, 2, 2])
    # label 1: box 1 beats box 0; label 2: box 3 (0.8) beats box 2 (IoU 0.70 > 0.5)
    assert ml_nms(boxes, scores, labels, 0.5, impl=impl).tolist() == [1, 3]
    # upstream passes float labels
    assert ml_nms(boxes, scores, labels.float(), 0.5, impl=impl).tolist() == [1, 3]


def test_ml_nms_many_classes_matches_torchvision_batched(impl):
    boxes, scores = random_boxes(2000, seed=6, dtype=torch.float64, spread=60)
    labels = torch.randint(0, 500, (2000,), generator=torch.Generator().manual_seed(7))
    shifted = boxes.clone()
    shifted[:, 2:] += 1
    expected = torch.sort(torchvision.ops.batched_nms(shifted, scores, labels, 0.3)).values
    assert torch.equal(ml_nms(boxes, scores, labels, 0.3, impl=impl), expected)


def test_ml_nms_edge_cases(impl):
    assert ml_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.5, impl=impl).numel() == 0
    one = ml_nms(torch.tensor([[0.0, 0, 1, 1]]), torch.tensor([1.0]), torch.tensor([3]), 0.5, impl=impl)
    assert one.tolist() == [0]


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match=r"\[N, 4\]"):
        nms(torch.zeros(3, 5), torch.zeros(3), 0.5)
    with pytest.raises(ValueError, match="scores"):
        nms(torch.zeros(3, 4), torch.zeros(2), 0.5)
    with pytest.raises(ValueError, match="labels"):
        ml_nms(torch.zeros(3, 4), torch.zeros(3), torch.zeros(2), 0.5)
    with pytest.raises(ValueError, match="impl"):
        nms(torch.zeros(3, 4), torch.zeros(3), 0.5, impl="fast")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_kernels_match_cpu(require_compiled_cuda, dtype):
    boxes, scores = random_boxes(5000, seed=8, dtype=dtype)
    labels = torch.randint(1, 81, (5000,), generator=torch.Generator().manual_seed(9))
    cpu_keep = nms(boxes, scores, 0.5, impl="compiled")
    gpu_keep = nms(boxes.cuda(), scores.cuda(), 0.5, impl="compiled")
    assert gpu_keep.device.type == "cuda"
    assert torch.equal(gpu_keep.cpu(), cpu_keep)
    cpu_ml = ml_nms(boxes, scores, labels, 0.6, impl="compiled")
    gpu_ml = ml_nms(boxes.cuda(), scores.cuda(), labels.cuda(), 0.6, impl="compiled")
    assert torch.equal(gpu_ml.cpu(), cpu_ml)
    assert torch.equal(nms(boxes.cuda(), scores.cuda(), 0.5, impl="torch").cpu(), cpu_keep)
