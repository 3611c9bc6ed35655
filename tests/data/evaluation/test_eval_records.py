"""Saved predictions and ground truth are checked before scoring: both back ends refuse the same records."""

import copy
import gzip
import json

import numpy as np
import pytest
from eval_testdata import make_coco_gt, make_lvis_gt, noisy_predictions, perfect_predictions

from maskrcnn_benchmark.data.evaluation import evaluate_coco_bbox, evaluate_lvis
from maskrcnn_benchmark.data.evaluation.__main__ import main as cli_main
from maskrcnn_benchmark.utils.cli_errors import report_user_errors

GOOD = {"image_id": 1, "category_id": 1, "bbox": [10.0, 10.0, 20.0, 20.0], "score": 0.5}
BAD_RECORDS = [
    (dict(GOOD, bbox=[1.0, 2.0, 3.0]), r"bbox \[1.0, 2.0, 3.0\] \(needs 4 finite numbers"),
    (dict(GOOD, bbox=[1.0, float("nan"), 3.0, 4.0]), "bbox .*nan.* \\(needs 4 finite numbers"),
    (dict(GOOD, bbox=[1.0, 2.0, "3", 4.0]), "needs 4 finite numbers"),
    (dict(GOOD, bbox=[1.0, 2.0, -3.0, 4.0]), "with a negative width or height"),
    (dict(GOOD, bbox=[1.0, 2.0, 3.0, -0.5]), "with a negative width or height"),
    (dict(GOOD, score=float("nan")), r"score nan \(needs a finite number\)"),
    (dict(GOOD, score=float("inf")), r"score inf \(needs a finite number\)"),
    (dict(GOOD, score="0.9"), r"score '0.9' \(needs a finite number\)"),
    (dict(GOOD, score=True), r"score True \(needs a finite number\)"),
    ({k: v for k, v in GOOD.items() if k != "score"}, "has no 'score'"),
    (dict(GOOD, image_id=999), "image_id 999 not in the ground truth"),
    (dict(GOOD, image_id=[1]), r"image_id \[1\] not in the ground truth"),
    (dict(GOOD, category_id=555), r"category_id 555 not in the ground truth \(known: \[1, 3, 7\]\)"),
    ([1, 2, 3, 4], "is a list, not an object"),
]


@pytest.mark.parametrize("backend", ["pycocotools", "faster"])
@pytest.mark.parametrize("bad,message", BAD_RECORDS)
def test_coco_back_ends_refuse_the_same_bad_records(bad, message, backend, tmp_path):
    gt = make_coco_gt(num_images=4)
    path = tmp_path / "bbox.json"
    path.write_text(json.dumps([GOOD, GOOD, bad]))
    with pytest.raises(ValueError, match=f"{path}: prediction 2 .*{message}"):
        evaluate_coco_bbox(gt, str(path), backend=backend)


@pytest.mark.parametrize("backend", ["lvis", "faster"])
@pytest.mark.parametrize("bad,message", BAD_RECORDS)
def test_lvis_back_ends_refuse_the_same_bad_records(bad, message, backend):
    gt = make_lvis_gt(num_images=4, num_categories=12)
    for category in (1, 3, 7):
        assert any(c["id"] == category for c in gt["categories"])
    message = message.replace(r"\(known: \[1, 3, 7\]\)", r"\(known: \[1, 2, 3, 4, 5, 6, 7, 8, 9, 10\]\.\.\.\)")
    with pytest.raises(ValueError, match=f"predictions: prediction 2 .*{message}"):
        evaluate_lvis(gt, [GOOD, GOOD, bad], backend=backend)


def test_lvis_rows_are_checked_too():
    gt = make_lvis_gt(num_images=4)
    rows = np.array([[1, 10, 10, 20, 20, 0.5, 1], [1, 10, 10, 20, 20, 0.5, 1], [1, 10, 10, 20, 20, 0.5, 99]],
                    dtype=np.float64)
    with pytest.raises(ValueError, match="prediction 2 has category_id 99 not in the ground truth"):
        evaluate_lvis(gt, rows, backend="faster")
    rows[2, 6] = 1
    rows[1, 5] = np.nan
    with pytest.raises(ValueError, match="prediction 1 has score nan"):
        evaluate_lvis(gt, rows, backend="faster")


def test_gzip_files_are_read(tmp_path):
    gt = make_coco_gt(seed=3, num_images=10)
    predictions = noisy_predictions(gt, seed=4)
    (tmp_path / "gt.json.gz").write_bytes(gzip.compress(json.dumps(gt).encode()))
    (tmp_path / "bbox.json.gz").write_bytes(gzip.compress(json.dumps(predictions).encode()))
    got = evaluate_coco_bbox(str(tmp_path / "gt.json.gz"), str(tmp_path / "bbox.json.gz"))
    assert got["AP"] == pytest.approx(evaluate_coco_bbox(gt, predictions)["AP"], abs=1e-12)
    (tmp_path / "broken.json.gz").write_bytes(gzip.compress(b"[1, 2")[:-6])
    with pytest.raises(ValueError, match="broken.json.gz: starts like a gzip file but does not decompress"):
        evaluate_coco_bbox(gt, str(tmp_path / "broken.json.gz"))


def test_an_lvis_file_given_to_coco_says_to_use_lvis(tmp_path):
    gt = make_lvis_gt(num_images=5)
    path = tmp_path / "lvis_v1_minival.json"
    path.write_text(json.dumps(gt))
    for backend in ("pycocotools", "faster"):  # pycocotools used to fail with KeyError: 'iscrowd'
        with pytest.raises(ValueError, match=f"{path}: this is an LVIS annotation file.*evaluation lvis --gt"):
            evaluate_coco_bbox(str(path), perfect_predictions(gt), backend=backend)


def test_lvis_refuses_unknown_categories_and_malformed_lvis_fields():
    gt = make_lvis_gt(num_images=5)
    with pytest.raises(ValueError, match="prediction 0 has category_id 4242 not in the ground truth"):
        evaluate_lvis(gt, [dict(GOOD, category_id=4242)], backend="lvis")
    bad = copy.deepcopy(gt)
    bad["categories"][1]["frequency"] = "x"
    with pytest.raises(ValueError, match="category 2 has frequency 'x'"):
        evaluate_lvis(bad, [])
    bad = copy.deepcopy(gt)
    bad["images"][3]["neg_category_ids"] = [77]
    with pytest.raises(ValueError, match=r"image 4 has neg_category_ids \[77\] \(needs a list of known"):
        evaluate_lvis(bad, [])


def test_ground_truth_without_iscrowd_or_area_scores_the_same_on_both_back_ends():
    gt = make_coco_gt(seed=5, num_images=10)
    for annotation in gt["annotations"]:
        annotation["iscrowd"] = 0
    predictions = noisy_predictions(gt, seed=6)
    bare = copy.deepcopy(gt)
    for annotation in bare["annotations"]:
        del annotation["iscrowd"], annotation["area"]
    expected = evaluate_coco_bbox(gt, predictions)["AP"]
    for backend in ("pycocotools", "faster"):
        assert evaluate_coco_bbox(bare, predictions, backend=backend)["AP"] == pytest.approx(expected, abs=1e-9)
    assert "iscrowd" not in bare["annotations"][0]  # the caller's dict is not modified


@pytest.mark.parametrize("mutate,message", [
    (lambda gt: gt.pop("images"), "missing key 'images'"),
    (lambda gt: gt.update(images={"a": 1}), "'images' must be a list of image records, got dict"),
    (lambda gt: gt["images"].append(gt["images"][0]), "image #10 repeats id 1"),
    (lambda gt: gt["images"][2].update(id=[3]), r"image #2 has id \[3\]"),
    (lambda gt: gt["annotations"][4].update(bbox=[1, 2, 3]), "annotation #4 has bbox"),
    (lambda gt: gt["annotations"][4].update(category_id=99), "annotation #4 has category_id 99, not in"),
    (lambda gt: gt["annotations"][4].update(area="big"), "annotation #4 has area 'big'"),
    (lambda gt: gt["annotations"][4].update(iscrowd=2), "annotation #4 has iscrowd 2"),
])
def test_malformed_ground_truth_names_the_record(mutate, message, tmp_path):
    gt = make_coco_gt(seed=1, num_images=10)
    assert len(gt["annotations"]) > 4
    mutate(gt)
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(gt))
    with pytest.raises(ValueError, match=f"{path}: {message}"):
        evaluate_coco_bbox(str(path), [])


def test_rescoring_cli_prints_one_error_naming_file_and_record(tmp_path, capsys):
    gt = make_coco_gt(num_images=4)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "bbox.json").write_text(json.dumps([GOOD, dict(GOOD, bbox=[1, 2, 3])]))
    status = report_user_errors(lambda: cli_main(["coco", "--gt", str(tmp_path / "gt.json"), "--predictions",
                                                  str(tmp_path / "bbox.json"), "--backend", "pycocotools"]))
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith(f"error: ValueError: {tmp_path / 'bbox.json'}: prediction 1 has bbox [1, 2, 3]")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
