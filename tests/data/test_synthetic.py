"""Synthetic data generator: deterministic, drawn shapes where the boxes say."""

import filecmp
import json
import os

import numpy as np
from PIL import Image

from maskrcnn_benchmark.data import synthetic


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    a = synthetic.write_coco(str(tmp_path / "a"), seed=4, num_images=3)
    b = synthetic.write_coco(str(tmp_path / "b"), seed=4, num_images=3)
    c = synthetic.write_coco(str(tmp_path / "c"), seed=5, num_images=3)
    assert filecmp.cmp(a["ann_files"]["val2017"], b["ann_files"]["val2017"], shallow=False)
    assert not filecmp.cmp(a["ann_files"]["val2017"], c["ann_files"]["val2017"], shallow=False)
    name = sorted(os.listdir(a["img_dirs"]["val2017"]))[0]
    assert filecmp.cmp(os.path.join(a["img_dirs"]["val2017"], name), os.path.join(b["img_dirs"]["val2017"], name),
                       shallow=False)


def test_shapes_fill_their_boxes(tmp_path):
    rng = np.random.default_rng(0)
    image, objects = synthetic.draw_scene(rng, synthetic.SHAPE_CLASSES, 4, size=(160, 140))
    pixels = np.asarray(image).astype(int)
    assert len(objects) >= 2
    for cls_idx, (x1, y1, x2, y2) in objects:
        color = np.array(synthetic.SHAPE_CLASSES[cls_idx].color)
        mask = (np.abs(pixels - color).sum(-1) < 30)
        ys, xs = np.nonzero(mask[y1:y2 + 1, x1:x2 + 1])
        # the shape touches all four sides of its (inclusive) box ...
        assert xs.min() == 0 and ys.min() == 0 and xs.max() == x2 - x1 and ys.max() == y2 - y1
        # ... and does not leak outside it
        outside = mask.copy()
        outside[y1:y2 + 1, x1:x2 + 1] = False
        assert not outside[max(0, y1 - 2):y2 + 3, max(0, x1 - 2):x2 + 3].any()


def test_make_all_writes_the_catalog_layout(synthetic_root):
    root, manifest = synthetic_root
    expected = [
        "coco/annotations/instances_val2017.json", "coco/annotations/instances_train2017.json",
        "coco/annotations/lvis_od_train.json", "coco/annotations/lvis_od_val.json",
        "coco/annotations/lvis_v1_minival_inserted_image_name.json", "lvis/lvis_v1_minival_inserted_image_name.json",
        "odinw/Aquarium/Aquarium Combined.v2-raw-1024.coco/train/annotations_without_background.json",
        "mdetr_annotations/final_flickr_separateGT_val.json", "mdetr_annotations/finetune_refcoco+_testB.json",
        "mdetr_annotations/finetune_refcocog_test_corrected.json", "mdetr_annotations/final_mixed_train_no_coco.json",
        "flickr30k/flickr30k/test.txt", "Objects365/annotations/objects365_train.json", "manifest.json",
    ]
    for rel in expected:
        assert os.path.isfile(os.path.join(root, rel)), rel
    with open(os.path.join(root, "coco/annotations/instances_val2017.json")) as f:
        coco = json.load(f)
    first = coco["images"][0]
    assert 128 <= first["width"] <= 200 and 128 <= first["height"] <= 200
    assert Image.open(os.path.join(root, "coco/val2017", first["file_name"])).size == (first["width"], first["height"])
    assert manifest["root"] == os.path.abspath(root)


def test_tool_writes_fixed_size_images(tmp_path):
    import subprocess
    import sys

    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    result = subprocess.run([sys.executable, os.path.join(repo, "tools", "make_synthetic_data.py"), "--root",
                             str(tmp_path), "--only", "odinw,refexp", "--num-images", "3", "--image-size", "64", "48"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    files = json.loads(result.stdout)["annotation_files"]
    assert any("annotations_without_background.json" in f for f in files)
    assert any("finetune_refcocog_test_corrected.json" in f for f in files)
    for f in files:
        with open(f) as stream:
            assert {(i["width"], i["height"]) for i in json.load(stream)["images"]} == {(64, 48)}
