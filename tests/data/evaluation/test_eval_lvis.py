import numpy as np
import pytest
import torch
from eval_testdata import make_lvis_gt, noisy_predictions, perfect_predictions, single_lvis_gt

from maskrcnn_benchmark.data.evaluation.lvis import (
    LvisEvaluator,
    evaluate_lvis,
    keep_topk_per_category,
    numpy_float_alias,
    records_to_rows,
    rows_to_records,
)
from maskrcnn_benchmark.structures.bounding_box import BoxList

METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf", "AR")


@pytest.mark.parametrize("backend", ["lvis", "faster"])
def test_perfect_predictions_score_100(lvis_gt, backend):
    metrics = evaluate_lvis(lvis_gt, perfect_predictions(lvis_gt), backend=backend)
    for name in METRICS:
        assert metrics[name] == pytest.approx(100.0), name


@pytest.mark.parametrize("backend", ["lvis", "faster"])
def test_fixed_ap_keeps_the_301st_box_normal_ap_does_not(backend):
    """300 higher-scoring false positives then the true positive: only Fixed AP (no per-image cap) sees it."""
    predictions = [{"image_id": 1, "category_id": 1, "bbox": [i, 0, 3, 3], "score": 0.9} for i in range(300)]
    predictions.append({"image_id": 1, "category_id": 1, "bbox": [500, 500, 50, 50], "score": 0.1})
    fixed = evaluate_lvis(single_lvis_gt(), predictions, backend=backend, fixed_ap=True)
    normal = evaluate_lvis(single_lvis_gt(), predictions, backend=backend, fixed_ap=False)
    assert fixed["AP"] == pytest.approx(100.0 / 301, abs=1e-6)  # precision 1/301 at every recall point
    assert normal["AP"] == pytest.approx(0.0)
    assert fixed["APr"] is None and fixed["APf"] == pytest.approx(fixed["AP"])  # no rare category has GT


def test_records_and_rows_round_trip():
    records = [{"image_id": 3, "category_id": 7, "bbox": [1.5, 2.0, 3.0, 4.0], "score": 0.25}]
    assert rows_to_records(records_to_rows(records)) == records


def test_topk_per_category_is_applied():
    records = [{"image_id": 1, "category_id": c, "bbox": [0, 0, 1, 1], "score": s}
               for c in (1, 2) for s in (0.1, 0.9, 0.5, 0.7)]
    kept = keep_topk_per_category(records, 2)
    assert sorted((r["category_id"], r["score"]) for r in kept) == [(1, 0.7), (1, 0.9), (2, 0.7), (2, 0.9)]


def _boxlist(boxes, scores, labels, size=(1000, 1000)):
    boxlist = BoxList(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), size, mode="xyxy")
    boxlist.add_field("scores", torch.tensor(scores, dtype=torch.float32))
    boxlist.add_field("labels", torch.tensor(labels, dtype=torch.int64))
    return boxlist


def test_accumulator_topk_across_updates_and_ranks():
    gt = single_lvis_gt()
    info = {0: gt["images"][0]}
    one = LvisEvaluator(gt, info.__getitem__, topk=3)
    other = LvisEvaluator(gt, info.__getitem__, topk=3)
    one.update([0], [_boxlist([[0, 0, 10, 10]] * 4, [0.1, 0.2, 0.3, 0.4], [1, 1, 1, 1])])
    one.update([0], [_boxlist([[500, 500, 550, 550]], [0.35], [1])])  # second prompt chunk
    other.update([0], [_boxlist([[0, 0, 10, 10]] * 2, [0.5, 0.05], [1, 1])])
    merged = one._merge([one._state, other._state])
    assert sorted(np.concatenate(merged[1])[:, 5]) == pytest.approx([0.35, 0.4, 0.5])
    one._state = merged
    record = [r for r in one.records() if r["score"] == pytest.approx(0.35)][0]
    assert record["bbox"] == pytest.approx([500, 500, 50, 50])  # xywh WITHOUT +1
    metrics = one.summarize()
    assert metrics["AP"] == pytest.approx(100.0 / 3, abs=1e-6)  # the only TP ranked 3rd of the 3 kept


def test_numpy_float_alias_is_scoped():
    assert "float" not in np.__dict__
    with numpy_float_alias():
        assert np.float is float
    assert "float" not in np.__dict__


def test_rejects_non_lvis_ground_truth():
    gt = single_lvis_gt()
    del gt["categories"][0]["frequency"]
    with pytest.raises(ValueError, match="category 1 has no 'frequency'"):
        evaluate_lvis(gt, [])


def test_streaming_topk_equals_topk_over_everything():
    gt = make_lvis_gt(seed=5, num_images=10)
    records = noisy_predictions(gt, seed=6, per_box=6)
    evaluator = LvisEvaluator(gt, topk=4)
    for start in range(0, len(records), 7):  # many small updates trigger the amortised trimming
        evaluator.update_records(records[start:start + 7])
    streamed = sorted((r["category_id"], r["score"]) for r in evaluator.records())
    assert streamed == sorted((r["category_id"], r["score"]) for r in keep_topk_per_category(records, 4))
    as_array = evaluate_lvis(gt, records_to_rows(records), backend="faster", topk=4)
    assert as_array["AP"] == pytest.approx(evaluate_lvis(gt, records, backend="faster", topk=4)["AP"])
