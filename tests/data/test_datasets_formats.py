"""Every data set class reads its synthetic copy; malformed records give errors naming file and record."""

import json
import os
import random

import pytest
import torch

from maskrcnn_benchmark.data.datasets import (
    COCODataset,
    CocoGrounding,
    FlickrDataset,
    LvisDetection,
    MixedDataset,
    Objects365Grounding,
    RefExpDataset,
)


def _xyxy(target):
    return [[round(v) for v in box] for box in target.bbox.tolist()]


def _drawn(manifest_objects, file_name):
    return sorted(box for _, box in manifest_objects[os.path.basename(file_name)])


def test_coco_detection_boxes_and_labels_match_the_drawing(synthetic_root):
    root, manifest = synthetic_root
    coco = manifest["coco"]
    ds = COCODataset(coco["ann_files"]["val2017"], coco["img_dirs"]["val2017"])
    assert len(ds) == 6
    assert ds.categories() == {1: "red square", 2: "blue circle", 3: "green triangle", 4: "yellow diamond"}
    assert ds.contiguous_category_id_to_json_id == {1: 1, 2: 3, 3: 7, 4: 12}
    for idx in range(len(ds)):
        image, target, i = ds[idx]
        info = ds.get_img_info(idx)
        assert i == idx and image.size == (info["width"], info["height"])
        objects = manifest["coco"]["objects"]["val2017"][info["file_name"]]
        assert sorted(_xyxy(target)) == sorted(box for _, box in objects)
        names = {tuple(b): n for n, b in objects}
        labels = target.get_field("labels").tolist()
        assert [names[tuple(b)] for b in _xyxy(target)] == [ds.categories()[k] for k in labels]
        assert target.get_field("orig_size") == (info["height"], info["width"])


def test_coco_grounding_caption_spans_and_positive_map(synthetic_root, bpe_tokenizer):
    _, manifest = synthetic_root
    coco = manifest["coco"]
    ds = CocoGrounding(coco["ann_files"]["train2017"], coco["img_dirs"]["train2017"], tokenizer=bpe_tokenizer,
                       separation_tokens=". ", disable_shuffle=True)
    image, target, _ = ds[0]
    caption = target.get_field("caption")
    assert caption == "red square. blue circle. green triangle. yellow diamond"
    names = [ds.categories()[k] for k in target.get_field("labels").tolist()]
    assert [caption[s:e] for ((s, e),) in target.get_field("tokens_positive")] == names
    pm = target.get_field("positive_map")
    assert pm.shape == (len(target), 256)
    torch.testing.assert_close(pm.sum(1), torch.ones(len(target)), atol=1e-5, rtol=0)
    ids = bpe_tokenizer(caption)["input_ids"]
    for row, name in zip(pm, names):
        assert bpe_tokenizer.decode([ids[i] for i in row.nonzero().flatten().tolist()]).strip() == name


def test_coco_grounding_shuffles_and_few_shot(synthetic_root, bpe_tokenizer):
    _, manifest = synthetic_root
    coco = manifest["coco"]
    args = (coco["ann_files"]["train2017"], coco["img_dirs"]["train2017"])
    ds = CocoGrounding(*args, tokenizer=bpe_tokenizer, separation_tokens=". ")
    random.seed(0)
    assert len({ds[0][1].get_field("caption") for _ in range(12)}) > 1
    one_shot = CocoGrounding(*args, tokenizer=bpe_tokenizer, few_shot=1)
    assert 0 < len(one_shot) < len(ds)
    assert one_shot.ids == sorted(one_shot.ids)  # upstream order: greedy over sorted ids
    seeded = [CocoGrounding(*args, tokenizer=bpe_tokenizer, few_shot=1, shuffle_seed=s).ids for s in (3, 30, 300)]
    for ids in seeded:
        cats = {a["category_id"] for i in ids for a in one_shot.annotations.anns_by_image[i]}
        assert cats == {1, 3, 7, 12}  # every class still covered
    assert len({tuple(ids) for ids in seeded}) > 1


def test_lvis_uses_global_ids_and_coco_url_paths(synthetic_root):
    root, manifest = synthetic_root
    lvis = manifest["lvis"]
    ds = LvisDetection(lvis["ann_files"]["lvis_od_val.json"], os.path.join(root, "coco"))
    cats = ds.categories()
    assert sorted(cats) == list(range(1, 41)) and cats[1] == "red_square"
    image, target, _ = ds[0]
    info = ds.get_img_info(0)
    assert ds.image_path(0).endswith(os.path.join("val2017", info["file_name"]))
    objects = lvis["objects"]["val2017"][info["file_name"]]
    assert sorted(_xyxy(target)) == sorted(b for _, b in objects)
    assert set(target.get_field("labels").tolist()) <= {1, 11, 21, 31}


def test_lvis_training_file_as_grounding_with_negatives(synthetic_root, bpe_tokenizer):
    root, manifest = synthetic_root
    ds = CocoGrounding(manifest["lvis"]["ann_files"]["lvis_od_train.json"], os.path.join(root, "coco"),
                       tokenizer=bpe_tokenizer, special_safeguard_for_coco_grounding=True, random_sample_negative=85)
    _, target, _ = ds[0]
    caption = target.get_field("caption")
    assert "thing" in caption  # negatives drawn from the 36 filler classes
    names = [ds.categories()[k].replace("_", " ") for k in target.get_field("labels").tolist()]
    assert [caption[s:e] for ((s, e),) in target.get_field("tokens_positive")] == names
    assert len(bpe_tokenizer(caption)["input_ids"]) <= 256


def test_odinw_split_reads_background_free_file(synthetic_root):
    _, manifest = synthetic_root
    odinw = manifest["odinw"]
    ds = COCODataset(odinw["ann_files"]["valid"], odinw["img_dirs"]["valid"])
    assert list(ds.categories().values()) == ["fish", "jellyfish", "penguin", "puffin", "shark", "starfish", "stingray"]
    with open(os.path.join(odinw["img_dirs"]["valid"], "_annotations.coco.json")) as f:
        assert json.load(f)["categories"][0]["id"] == 0  # the Roboflow export keeps the background entry
    image, target, _ = ds[1]
    assert sorted(_xyxy(target)) == _drawn(odinw["objects"]["valid"], ds.get_img_info(1)["file_name"])


def test_objects365_captions(synthetic_root, bpe_tokenizer):
    _, manifest = synthetic_root
    o365 = manifest["objects365"]
    ds = Objects365Grounding(o365["ann_files"]["train"], o365["img_dirs"]["train"], tokenizer=bpe_tokenizer,
                             control_probabilities=(0.0, 0.0, 1.0, 0.0), random_sample_negative=85)
    random.seed(0)
    _, target, _ = ds[0]
    caption = target.get_field("caption")
    assert caption.count(". ") == 29  # every one of the 30 classes: positives + all negatives
    assert target.get_field("positive_map").shape == (len(target), 256)


def test_flickr_mdetr_records(synthetic_root, bpe_tokenizer):
    _, manifest = synthetic_root
    flickr = manifest["flickr"]
    ds = FlickrDataset(flickr["img_dirs"]["val"], flickr["ann_files"]["val"], tokenizer=bpe_tokenizer)
    assert len(ds) == 2 * 3  # 3 images x 2 sentences
    image, target, _ = ds[0]
    info = ds.get_img_info(0)
    caption = target.get_field("caption")
    assert caption == info["caption"] and caption.startswith("A picture of ")
    assert sorted(_xyxy(target)) == _drawn(flickr["objects"]["val"], info["file_name"])
    assert target.get_field("labels").tolist() == list(range(1, len(target) + 1))
    phrases = [caption[s:e] for ((s, e),) in target.get_field("tokens_positive")]
    assert all(p.startswith(("a ", "two ", "three ")) for p in phrases)
    pm_eval = target.get_field("positive_map_eval")
    assert pm_eval.shape == (len(info["tokens_positive_eval"]), 256) and target.get_field("nb_eval") == pm_eval.shape[0]
    train = FlickrDataset(flickr["img_dirs"]["train"], flickr["ann_files"]["train"], tokenizer=bpe_tokenizer,
                          is_train=True)
    assert not train[0][1].has_field("positive_map_eval")


def test_refexp_and_mixed(synthetic_root, bpe_tokenizer):
    root, manifest = synthetic_root
    ref = manifest["refexp"]
    ds = RefExpDataset(ref["img_dir"], ref["ann_files"]["refcoco_testA"], tokenizer=bpe_tokenizer)
    _, target, _ = ds[0]
    assert len(target) == 1 and target.get_field("caption").startswith("the ")
    assert _xyxy(target)[0] in [b for _, b in ref["objects"][ds.get_img_info(0)["file_name"]]]
    mixed = manifest["mixed"]
    ds = MixedDataset(mixed["img_dirs"]["coco"], mixed["img_dirs"]["vg"],
                      mixed["ann_files"]["final_mixed_train_no_coco.json"], tokenizer=bpe_tokenizer, is_train=True)
    sources = {ds.get_img_info(i)["data_source"]: ds.image_path(i) for i in range(len(ds))}
    assert "gqa" in sources["vg"] and "refcoco" in sources["coco"]
    for i in range(len(ds)):
        _, target, _ = ds[i]
        assert sorted(_xyxy(target)) == _drawn(mixed["objects"], ds.get_img_info(i)["file_name"])


# ------------------------------------------------------------------------------------------ malformed input
def _write_variant(tmp_path, source, mutate, name="bad.json"):
    with open(source) as f:
        data = json.load(f)
    mutate(data)
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["annotations"][0].pop("bbox"), r"annotation \d+: missing key 'bbox'"),
        (lambda d: d["annotations"][0].pop("category_id"), r"annotation \d+: missing key 'category_id'"),
        (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), r"annotation \d+ \(image \d+\): bbox must be 4"),
        (lambda d: d["annotations"][0].update(bbox=[1, 2, -3, 4]), r"negative width or height"),
        (lambda d: d["annotations"][0].update(bbox=[1, 2, float("nan"), 4]), r"bbox must be 4 finite numbers"),
        (lambda d: d["annotations"][0].update(category_id=999),
         r"annotation \d+ \(image \d+\): unknown category id 999"),
        (lambda d: d["annotations"][0].update(image_id=424242), r"image id 424242 is not in 'images'"),
        (lambda d: d["images"][0].pop("width"), r"image \d+: missing key 'width'"),
        (lambda d: d.pop("categories"), r"missing key 'categories'"),
    ],
)
def test_malformed_detection_annotations(synthetic_root, tmp_path, mutate, message):
    _, manifest = synthetic_root
    bad = _write_variant(tmp_path, manifest["coco"]["ann_files"]["val2017"], mutate)
    with pytest.raises(ValueError, match=message) as info:
        COCODataset(bad, manifest["coco"]["img_dirs"]["val2017"])
    assert bad in str(info.value)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["annotations"][0].update(tokens_positive=[[5, 5]]),
         r"tokens_positive: character span \[5, 5\] is empty"),
        (lambda d: d["annotations"][0].update(tokens_positive=[[0, 999]]), r"outside the caption"),
        (lambda d: d["annotations"][0].pop("tokens_positive"), r"missing key 'tokens_positive'"),
        (lambda d: d["images"][0].pop("caption"), r"image \d+: missing key 'caption'"),
        (lambda d: d["images"][0].update(tokens_positive_eval=[[[3, 2]]]), r"tokens_positive_eval\[0\]"),
    ],
)
def test_malformed_grounding_annotations(synthetic_root, tmp_path, mutate, message, bpe_tokenizer):
    _, manifest = synthetic_root
    flickr = manifest["flickr"]
    bad = _write_variant(tmp_path, flickr["ann_files"]["val"], mutate)
    with pytest.raises(ValueError, match=message) as info:
        FlickrDataset(flickr["img_dirs"]["val"], bad, tokenizer=bpe_tokenizer)
    assert bad in str(info.value)


def test_missing_and_unreadable_images_name_the_path(synthetic_root, tmp_path):
    _, manifest = synthetic_root
    coco = manifest["coco"]
    ds = COCODataset(coco["ann_files"]["val2017"], str(tmp_path))
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        ds[0]
    broken = tmp_path / ds.get_img_info(0)["file_name"]
    broken.write_bytes(b"not an image")
    with pytest.raises(OSError, match=f"cannot read image {broken}"):
        ds[0]
    with pytest.raises(FileNotFoundError, match="annotation file not found"):
        COCODataset(str(tmp_path / "nope.json"), str(tmp_path))
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="broken.json: not valid JSON"):
        COCODataset(str(tmp_path / "broken.json"), str(tmp_path))


def test_override_category_renames_classes(synthetic_root):
    _, manifest = synthetic_root
    coco = manifest["coco"]
    override = [{"id": cid, "name": f"shape {cid}", "supercategory": "s"} for cid in (1, 3, 7, 12)]
    ds = COCODataset(coco["ann_files"]["val2017"], coco["img_dirs"]["val2017"], override_category=override)
    assert ds.categories() == {1: "shape 1", 2: "shape 3", 3: "shape 7", 4: "shape 12"}


def test_flip_with_left_right_swap_rebuilds_the_positive_map(synthetic_root, bpe_tokenizer):
    from maskrcnn_benchmark.data.transforms import Compose, RandomHorizontalFlip

    _, manifest = synthetic_root
    ref = manifest["refexp"]
    plain = RefExpDataset(ref["img_dir"], ref["ann_files"]["refcoco_train"], tokenizer=bpe_tokenizer, is_train=True)
    flipped = RefExpDataset(ref["img_dir"], ref["ann_files"]["refcoco_train"], tokenizer=bpe_tokenizer, is_train=True,
                            transforms=Compose([RandomHorizontalFlip(1.0, swap_left_right=True)]))
    for idx in range(len(plain)):
        _, before, _ = plain[idx]
        _, after, _ = flipped[idx]
        caption = after.get_field("caption")
        original = before.get_field("caption")
        assert caption == original.replace("left", "@").replace("right", "left").replace("@", "right")
        width = before.size[0]
        torch.testing.assert_close(after.bbox[:, 0], width - before.bbox[:, 2] - 1)
        ids = bpe_tokenizer(caption)["input_ids"]
        row = after.get_field("positive_map")[0].nonzero().flatten().tolist()
        assert bpe_tokenizer.decode([ids[i] for i in row]).strip() == caption


def test_sixteen_bit_and_palette_images_load_scaled_in_data_sets(tmp_path):
    # Data sets read images with the shared reader (data/image_io.py): a 16-bit PNG keeps its contrast.
    import numpy as np
    from PIL import Image

    values = np.zeros((40, 50), dtype=np.uint16)
    values[:, 25:] = 117 * 257
    Image.fromarray(values).save(tmp_path / "depth.png")
    Image.fromarray((values // 257).astype(np.uint8)).convert("P").save(tmp_path / "palette.png")
    ann = {"images": [{"id": 1, "file_name": "depth.png", "width": 50, "height": 40},
                      {"id": 2, "file_name": "palette.png", "width": 50, "height": 40}],
           "annotations": [{"id": k, "image_id": k, "category_id": 1, "bbox": [2, 2, 20, 20], "area": 400,
                            "iscrowd": 0} for k in (1, 2)],
           "categories": [{"id": 1, "name": "thing"}]}
    (tmp_path / "ann.json").write_text(json.dumps(ann))
    ds = COCODataset(str(tmp_path / "ann.json"), str(tmp_path))
    for idx in range(2):
        image = np.asarray(ds[idx][0])
        assert image.shape == (40, 50, 3)
        assert (image[:, :25] == 0).all() and (image[:, 25:] == 117).all()


def test_long_grounding_captions_are_counted_and_warned_about_once(tmp_path, bpe_tokenizer, caplog):
    import numpy as np
    from PIL import Image

    short = "a red square"
    long = "a red square next to a blue circle and a green triangle"  # 14 tokens with <s> and </s>
    images, annotations = [], []
    for k, caption in enumerate([short, long, long, short]):
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / f"{k}.png")
        images.append({"id": k, "file_name": f"{k}.png", "width": 32, "height": 32, "caption": caption})
        annotations.append({"id": 2 * k, "image_id": k, "bbox": [1, 1, 10, 10], "tokens_positive": [[2, 12]]})
        annotations.append({"id": 2 * k + 1, "image_id": k, "bbox": [12, 12, 10, 10],
                            "tokens_positive": [[41, 55]] if caption == long else [[0, 1]]})
    ann = tmp_path / "final_flickr_separateGT_train.json"
    ann.write_text(json.dumps({"images": images, "annotations": annotations}))
    with caplog.at_level("WARNING", logger="maskrcnn_benchmark.data.datasets.modulated"):
        ds = FlickrDataset(str(tmp_path), str(ann), tokenizer=bpe_tokenizer, is_train=True, max_query_len=10)
        for idx in range(len(ds)):
            ds[idx]
    assert ds.long_captions == 2
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1, warnings
    assert str(ann) in warnings[0] and "2 of 4 captions are longer than" in warnings[0]
    assert "MAX_QUERY_LEN = 10" in warnings[0]
    target = ds[1][1]
    assert target.get_field("caption") == long
    # "green triangle" lies past the cut: its box gets no token, "red square" keeps its tokens.
    positive = target.get_field("positive_map")
    assert positive[0].nonzero().flatten().tolist() == [2, 3] and positive[1].sum() == 0
