import json

import numpy as np
import pytest
import torch

from maskrcnn_benchmark.data.evaluation.flickr import FlickrEvaluator, evaluate_flickr, load_flickr_ground_truth
from maskrcnn_benchmark.structures.bounding_box import BoxList

# image "100": entity 1 (people) has two boxes far apart, entity 2 (clothing/other) one box, entity 3 no box.
# 1-based inclusive XML corners; the parser makes them 0-based (x - 1).
XML_100 = """<annotation><filename>100.jpg</filename>
<size><width>200</width><height>100</height><depth>3</depth></size>
<object><name>1</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>11</xmax><ymax>11</ymax></bndbox></object>
<object><name>1</name><bndbox><xmin>101</xmin><ymin>51</ymin><xmax>111</xmax><ymax>61</ymax></bndbox></object>
<object><name>2</name><bndbox><xmin>31</xmin><ymin>31</ymin><xmax>51</xmax><ymax>71</ymax></bndbox></object>
<object><name>3</name><nobndbox>1</nobndbox></object>
</annotation>"""
SENTENCES_100 = (
    "[/EN#1/people Two men] in [/EN#2/clothing/other red shirts] near [/EN#3/scene a wall] .\n"
    "[/EN#0/notvisual Someone] watches [/EN#1/people the men] and [/EN#1/people the men] .\n"
)
XML_200 = """<annotation><filename>200.jpg</filename>
<size><width>100</width><height>100</height><depth>3</depth></size>
<object><name>5</name><bndbox><xmin>11</xmin><ymin>11</ymin><xmax>61</xmax><ymax>61</ymax></bndbox></object>
</annotation>"""
SENTENCES_200 = "[/EN#5/animals A dog] runs .\n"

MAN_A, MAN_B, SHIRTS, DOG = [0, 0, 10, 10], [100, 50, 110, 60], [30, 30, 50, 70], [10, 10, 60, 60]
UNION = [0, 0, 110, 60]
FAR = [150, 80, 160, 90]


@pytest.fixture
def flickr_root(tmp_path):
    for folder in ("Annotations", "Sentences"):
        (tmp_path / folder).mkdir()
    (tmp_path / "Annotations" / "100.xml").write_text(XML_100)
    (tmp_path / "Annotations" / "200.xml").write_text(XML_200)
    (tmp_path / "Sentences" / "100.txt").write_text(SENTENCES_100)
    (tmp_path / "Sentences" / "200.txt").write_text(SENTENCES_200)
    (tmp_path / "test.txt").write_text("100\n200\n")
    return str(tmp_path)


def _predictions(first_man, second_sentence=None):
    return [
        {"image_id": "100", "sentence_id": 0, "boxes": [first_man, [SHIRTS]]},
        {"image_id": "100", "sentence_id": 1, "boxes": second_sentence or [[MAN_B], [MAN_A]]},
        {"image_id": "200", "sentence_id": 0, "boxes": [[DOG]]},
    ]


def test_ground_truth_skips_boxless_phrases_and_keeps_repeats(flickr_root):
    gt = load_flickr_ground_truth(flickr_root, "test")
    assert sorted(gt) == [("100", 0), ("100", 1), ("200", 0)]
    assert [types for types, _ in gt[("100", 0)]] == [("people",), ("clothing", "other")]  # scene w/o box skipped
    assert len(gt[("100", 1)]) == 2  # notvisual skipped, the repeated entity counts twice
    np.testing.assert_array_equal(gt[("100", 0)][0][1], [MAN_A, MAN_B])


def test_perfect_predictions_score_100(flickr_root):
    metrics = evaluate_flickr(flickr_root, _predictions([MAN_A]))
    assert metrics["R@1"] == metrics["R@5"] == metrics["R@10"] == metrics["Upper_bound"] == 100.0
    assert metrics["num_phrases"] == 5
    assert metrics["per_type"]["people"]["R@1"] == 100.0 and metrics["per_type"]["other"]["R@1"] == 100.0


def test_any_box_versus_merged(flickr_root):
    one_man = _predictions([MAN_A])  # every "men" phrase answered with one of the two men
    union = _predictions([UNION], [[UNION], [UNION]])  # ... or with the box enclosing both
    # any-box: one man is a hit; the union overlaps each man by 121/6600 -> the 3 "men" phrases miss
    assert evaluate_flickr(flickr_root, one_man, merge_boxes=False)["R@1"] == 100.0
    any_box_union = evaluate_flickr(flickr_root, union, merge_boxes=False)
    assert any_box_union["R@1"] == pytest.approx(100.0 * 2 / 5)
    assert any_box_union["per_type"]["people"]["R@1"] == 0.0
    # merged: the ground truth of a phrase is the union box, so the verdicts swap (sentence 0's man only)
    merged_one_man = evaluate_flickr(flickr_root, one_man, merge_boxes=True)
    assert merged_one_man["R@1"] == pytest.approx(100.0 * 2 / 5)
    merged_union = evaluate_flickr(flickr_root, union, merge_boxes=True)
    assert merged_union["R@1"] == 100.0
    assert merged_union["protocol"] == "merged" and any_box_union["protocol"] == "any-box"


def test_recall_at_k_follows_rank(flickr_root):
    ranked = [FAR, FAR, MAN_B] + [FAR] * 5  # correct box third
    metrics = evaluate_flickr(flickr_root, _predictions(ranked))
    assert metrics["R@1"] == pytest.approx(100.0 * 4 / 5)
    assert metrics["R@5"] == metrics["R@10"] == metrics["Upper_bound"] == 100.0
    late = [FAR] * 11 + [MAN_A]
    metrics = evaluate_flickr(flickr_root, _predictions(late))
    assert metrics["R@10"] == pytest.approx(100.0 * 4 / 5) and metrics["Upper_bound"] == 100.0


def test_missing_sentence_and_wrong_phrase_count_raise(flickr_root):
    with pytest.raises(ValueError, match="no prediction for 1 of 3 sentences \\(image 200 sentence 0\\)"):
        evaluate_flickr(flickr_root, _predictions([MAN_A])[:2])
    bad = _predictions([MAN_A])
    bad[0]["boxes"] = bad[0]["boxes"][:1]
    with pytest.raises(ValueError, match="image 100 sentence 0 has 1 predicted phrases"):
        evaluate_flickr(flickr_root, bad)
    with pytest.raises(FileNotFoundError, match="val.txt"):
        evaluate_flickr(flickr_root, [], subset="val")


def test_accumulator_from_boxlists(flickr_root, tmp_path):
    records = [
        {"id": 0, "original_img_id": "100", "sentence_id": 0, "width": 200, "height": 100,
         "tokens_positive_eval": [0, 1]},
        {"id": 1, "original_img_id": "100", "sentence_id": 1, "width": 200, "height": 100,
         "tokens_positive_eval": [0, 1]},
        {"id": 2, "original_img_id": "200", "sentence_id": 0, "width": 100, "height": 100, "tokens_positive_eval": [0]},
    ]
    evaluator = FlickrEvaluator(flickr_root, "test", records.__getitem__, output_dir=str(tmp_path / "out"))

    def boxlist(boxes, labels, scores, scale=2.0, size=(200, 100)):
        result = BoxList(torch.tensor(boxes, dtype=torch.float32) * scale,
                         (int(size[0] * scale), int(size[1] * scale)), mode="xyxy")
        result.add_field("labels", torch.tensor(labels))
        result.add_field("scores", torch.tensor(scores))
        return result

    # sentence 0: phrase 1 gets a wrong box with a higher score than the right one; labels are phrase index + 1
    evaluator.update([0, 1], [boxlist([FAR, MAN_B, SHIRTS], [1, 1, 2], [0.9, 0.8, 0.7]),
                              boxlist([MAN_A, MAN_B], [2, 1], [0.6, 0.6])])
    evaluator.update([2], [boxlist([DOG], [1], [0.5], size=(100, 100))])
    metrics = evaluator.evaluate()
    assert metrics["R@1"] == pytest.approx(80.0) and metrics["R@5"] == 100.0
    written = json.loads((tmp_path / "out" / "predictions.json").read_text())
    first = written[0]
    assert first["boxes"][0][0] == pytest.approx(FAR) and first["boxes"][0][-1] == [0.0, 0.0, 0.0, 0.0]
