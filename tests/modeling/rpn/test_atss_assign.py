"""ATSS assignment: hand-computed two-level toys and a loop reference on random boxes."""

import torch

from maskrcnn_benchmark.modeling.rpn.loss import atss_assign, iou_plus_one

# Level 0: four 10x10 anchors; level 1: two 20x20 anchors (xyxy, +1 convention).
LEVEL0 = torch.tensor([[0.0, 0.0, 9.0, 9.0], [5.0, 0.0, 14.0, 9.0], [20.0, 0.0, 29.0, 9.0], [0.0, 6.0, 9.0, 15.0]])
LEVEL1 = torch.tensor([[-5.0, -5.0, 14.0, 14.0], [40.0, 40.0, 59.0, 59.0]])


def test_iou_plus_one_convention():
    iou = iou_plus_one(LEVEL0[:2], LEVEL0[:1])
    # 10x10 boxes overlapping on x = 5..9 -> 50 px; union 150
    torch.testing.assert_close(iou, torch.tensor([[1.0], [1.0 / 3.0]]))


def test_single_box_threshold_is_mean_plus_unbiased_std():
    # Candidates (top 2 per level by centre distance): level 0 -> anchors 0 (d=0), 1 (d=5); level 1 -> both.
    # IoUs 1, 1/3, 1/4, 0: mean 0.3958, unbiased std 0.4270 -> threshold 0.8228: only anchor 0 passes.
    matched = atss_assign([LEVEL0, LEVEL1], torch.tensor([[0.0, 0.0, 9.0, 9.0]]), topk=2)
    assert matched.tolist() == [0, -1, -1, -1, -1, -1]


def test_each_box_gets_its_own_anchor():
    gt = torch.tensor([[0.0, 0.0, 9.0, 9.0], [5.0, 0.0, 14.0, 9.0]])
    assert atss_assign([LEVEL0, LEVEL1], gt, topk=2).tolist() == [0, 1, -1, -1, -1, -1]


def test_anchor_positive_for_two_boxes_takes_highest_iou():
    big = torch.tensor([[0.0, 0.0, 11.0, 11.0]])
    # Alone, the 12x12 box takes anchor 0 (IoU 100/144 = 0.694 >= its threshold 0.649).
    assert atss_assign([LEVEL0, LEVEL1], big, topk=2).tolist() == [0, -1, -1, -1, -1, -1]
    # With the exact 10x10 box present (IoU 1 with anchor 0), anchor 0 goes to that box (index 1).
    both = torch.cat([big, torch.tensor([[0.0, 0.0, 9.0, 9.0]])])
    assert atss_assign([LEVEL0, LEVEL1], both, topk=2).tolist() == [1, -1, -1, -1, -1, -1]


def test_centre_must_be_inside_the_box():
    # A thin box whose IoU with anchor 0 is the best but which does not contain anchor 0's centre (4.5, 4.5).
    thin = torch.tensor([[0.0, 0.0, 9.0, 4.0]])
    matched = atss_assign([LEVEL0, LEVEL1], thin, topk=2)
    assert matched[0] == -1


def test_no_boxes_gives_all_background():
    assert atss_assign([LEVEL0, LEVEL1], torch.zeros(0, 4), topk=9).tolist() == [-1] * 6


def _reference_assign(levels, gt, topk):
    anchors = torch.cat(levels)
    ious = iou_plus_one(anchors, gt)
    acx, acy = (anchors[:, 0] + anchors[:, 2]) / 2, (anchors[:, 1] + anchors[:, 3]) / 2
    best = [(-1.0, -1)] * len(anchors)
    for g in range(len(gt)):
        gx, gy = (gt[g, 0] + gt[g, 2]) / 2, (gt[g, 1] + gt[g, 3]) / 2
        candidates, start = [], 0
        for level in levels:
            dist = [((acx[i] - gx) ** 2 + (acy[i] - gy) ** 2).sqrt().item() for i in range(start, start + len(level))]
            order = sorted(range(len(dist)), key=lambda i: dist[i])[:topk]
            candidates += [start + i for i in order]
            start += len(level)
        values = torch.stack([ious[i, g] for i in candidates])
        threshold = values.mean() + values.std()
        for i in candidates:
            inside = min(acx[i] - gt[g, 0], acy[i] - gt[g, 1], gt[g, 2] - acx[i], gt[g, 3] - acy[i]) > 0.01
            if ious[i, g] >= threshold and inside and ious[i, g].item() > best[i][0]:
                best[i] = (ious[i, g].item(), g)
    return [g for _, g in best]


def test_matches_loop_reference_on_random_boxes():
    gen = torch.Generator().manual_seed(0)
    levels = []
    for stride, size in ((8, 32), (16, 64), (32, 128)):
        ys, xs = torch.meshgrid(torch.arange(0, 96, stride), torch.arange(0, 128, stride), indexing="ij")
        centre = torch.stack([xs.flatten(), ys.flatten()], 1).float() + (stride - 1) / 2
        levels.append(torch.cat([centre - (size - 1) / 2, centre + (size - 1) / 2], 1))
    xy = torch.rand(7, 2, generator=gen) * torch.tensor([100.0, 70.0])
    wh = torch.rand(7, 2, generator=gen) * 60 + 4
    gt = torch.cat([xy, xy + wh], 1)
    matched = atss_assign(levels, gt, topk=9)
    assert matched.tolist() == _reference_assign(levels, gt, topk=9)
    assert (matched >= 0).sum() >= 7  # every box found at least one anchor here
