import json
import os

import pytest

from odinw import get_dataset
from odinw.fewshot import main as fewshot_main
from odinw.fewshot import select_few_shot, write_fewshot_splits
from odinw.prepare import check_datasets, is_fewshot_split
from odinw.prepare import main as prepare_main

NAME = "pothole"


def _coco(num_images=40, seed=0):
    import random

    rng = random.Random(seed)
    images = [{"id": i + 1, "file_name": f"img{i + 1}.jpg", "width": 64, "height": 64} for i in range(num_images)]
    categories = [{"id": c, "name": f"c{c}"} for c in (1, 2, 3)]
    annotations = []
    for image in images:
        for _ in range(rng.randint(0, 3)):
            annotations.append({"id": len(annotations) + 1, "image_id": image["id"],
                                "category_id": rng.choice([1, 1, 1, 2, 3]), "bbox": [1, 1, 10, 10], "area": 100,
                                "iscrowd": 0})
    return {"info": {"v": 1}, "images": images, "annotations": annotations, "categories": categories}


def _populate(root, name=NAME, with_images=True):
    dataset = get_dataset(name)
    for split, entry in dataset.register.items():
        if is_fewshot_split(split):
            continue
        os.makedirs(os.path.join(root, entry["img_dir"]), exist_ok=True)
        coco = _coco(seed=len(split))
        with open(os.path.join(root, entry["ann_file"]), "w") as stream:
            json.dump(coco, stream)
        if with_images:
            for image in coco["images"]:
                open(os.path.join(root, entry["img_dir"], image["file_name"]), "wb").close()
    return dataset


def _images_per_category(subset):
    counts = {}
    for category_id in {c["id"] for c in subset["categories"]}:
        counts[category_id] = len({a["image_id"] for a in subset["annotations"] if a["category_id"] == category_id})
    return counts


@pytest.mark.parametrize("shots", [1, 3, 5, 10])
def test_few_shot_covers_every_category_and_is_deterministic(shots):
    coco = _coco(num_images=80)
    subset = select_few_shot(coco, shots, seed=3)
    assert all(count >= shots for count in _images_per_category(subset).values())
    assert subset == select_few_shot(coco, shots, seed=3)
    kept = {image["id"] for image in subset["images"]}
    assert all(a["image_id"] in kept for a in subset["annotations"])
    assert len([a for a in coco["annotations"] if a["image_id"] in kept]) == len(subset["annotations"])
    assert subset["info"] == coco["info"] and subset["categories"] == coco["categories"]


def test_few_shot_seeds_give_different_subsets():
    coco = _coco(num_images=80)
    chosen = {tuple(i["id"] for i in select_few_shot(coco, 3, seed)["images"]) for seed in (3, 30, 300)}
    assert len(chosen) == 3
    with pytest.raises(ValueError, match="shots must be >= 1"):
        select_few_shot(coco, 0, 3)


def test_prepare_reports_missing_files_and_images(tmp_path, capsys):
    root = str(tmp_path)
    empty = check_datasets(root, [NAME])
    assert empty["incomplete"] == [NAME] and empty["archives_to_fetch"] == ["pothole"]
    assert "odinw/pothole/train/annotations_without_background.json" in empty["datasets"][0]["missing"]
    assert empty["datasets"][0]["url"].endswith("/odinw_35/pothole.zip")

    dataset = _populate(root)
    assert check_datasets(root, [NAME], check_images=True)["complete"] == [NAME]
    os.remove(os.path.join(root, dataset.split("val")["img_dir"], "img3.jpg"))
    report = check_datasets(root, [NAME], check_images=True)
    assert report["datasets"][0]["missing"] == [os.path.join(dataset.split("val")["img_dir"], "img3.jpg")]
    assert prepare_main(["--root", root, "--which", NAME, "--check-images"]) == 1
    assert json.loads(capsys.readouterr().out)["incomplete"] == [NAME]


def test_shared_split_files_are_reported_once(tmp_path):
    report = check_datasets(str(tmp_path), ["PascalVOC", "dice_mediumColor_export"])
    for entry in report["datasets"]:
        assert len(entry["missing"]) == len(set(entry["missing"]))
    pascal = report["datasets"][0]["missing"]
    assert pascal.count("odinw/PascalVOC/valid/annotations_without_background.json") == 1


def test_fewshot_files_land_where_the_yaml_registers_them(tmp_path, capsys):
    root = str(tmp_path)
    dataset = _populate(root, with_images=False)
    report = check_datasets(root, [NAME], fewshot=True)
    assert len(report["datasets"][0]["missing_fewshot"]) == 24 and report["complete"] == [NAME]
    written = write_fewshot_splits(root, NAME, shots=(1, 3), seeds=(3, 30))
    assert len(written) == 8
    assert fewshot_main(["--root", root, "--which", NAME]) == 0
    assert json.loads(capsys.readouterr().out)["written"][NAME] == 24
    assert check_datasets(root, [NAME], fewshot=True)["datasets"][0]["missing_fewshot"] == []
    with open(os.path.join(root, dataset.split("train_5_30")["ann_file"])) as stream:
        subset = json.load(stream)
    assert all(count >= 5 for count in _images_per_category(subset).values())
