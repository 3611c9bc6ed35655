"""python -m maskrcnn_benchmark.data.check: reports missing files and malformed records."""

import json
import os
import shutil

from maskrcnn_benchmark.data.check import check_dataset, main

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_complete_synthetic_copy_passes(synthetic_root, monkeypatch, capsys):
    root, _ = synthetic_root
    monkeypatch.setenv("DATASET", root)
    assert main(["coco_2017_val", "flickr30k_test", "mixed_train_no_coco", "object365_dt_train", "refcocog_test"]) == 0
    out = capsys.readouterr().out
    assert "object365_dt_train: OK [CocoDetectionTSV]" in out
    aquarium = os.path.join(REPO, "configs", "odinw", "Aquarium_Aquarium_Combined.v2-raw-1024.coco.yaml")
    assert main(["val", "test", "--config-file", aquarium, "--open-images", "--json"]) == 0
    reports = json.loads(capsys.readouterr().out)
    assert [r["ok"] for r in reports] == [True, True] and reports[0]["images"] == 6


def test_missing_images_and_malformed_records_are_reported(synthetic_root, tmp_path, monkeypatch, capsys):
    root, _ = synthetic_root
    copy = tmp_path / "data"
    shutil.copytree(os.path.join(root, "coco"), copy / "coco")
    monkeypatch.setenv("DATASET", str(copy))
    monkeypatch.chdir(tmp_path)
    victim = sorted(os.listdir(copy / "coco" / "val2017"))[0]
    os.remove(copy / "coco" / "val2017" / victim)
    report = check_dataset("coco_2017_val")
    assert not report["ok"] and report["missing_images"] == 1 and victim in report["missing_examples"][0]
    ann = copy / "coco" / "annotations" / "instances_train2017.json"
    data = json.loads(ann.read_text())
    data["annotations"][2]["category_id"] = 555
    ann.write_text(json.dumps(data))
    assert main(["coco_grounding_train", "flickr30k_val"]) == 1
    out = capsys.readouterr().out
    assert "unknown category id 555" in out and "instances_train2017.json" in out
    assert "flickr30k_val: PROBLEMS" in out and "not found under any data root" in out


def test_an_empty_data_set_is_a_problem_not_ok(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATASET", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "images").mkdir()
    (tmp_path / "empty.json").write_text(json.dumps({"images": [], "annotations": [],
                                                     "categories": [{"id": 1, "name": "thing"}]}))
    config = tmp_path / "task.yaml"
    config.write_text("DATASETS:\n  REGISTER:\n    empty_val:\n      ann_file: empty.json\n      img_dir: images\n")
    assert main(["empty_val", "--config-file", str(config)]) == 1
    out = capsys.readouterr().out
    assert "empty_val: PROBLEMS" in out and "empty.json lists no images: the data set is empty" in out
