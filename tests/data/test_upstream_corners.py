"""Training data in upstream's corners, on hand-written annotation files (issue 15).

Each test writes a tiny COCO-style file literally (no synthetic generator) and states the upstream result worked
out by hand from upstream's code (FIBER ``data/datasets/modulated_coco.py`` CocoGrounding, ``coco.py``,
``data/build.py``, ``engine/trainer.py``).
"""

import json
import os
import random

import pytest
from PIL import Image
from torchvision.transforms.functional import to_tensor

from maskrcnn_benchmark.config import cfg as base_cfg
from maskrcnn_benchmark.data.build import build_dataset, copies_for
from maskrcnn_benchmark.data.collate_batch import BatchCollator
from maskrcnn_benchmark.data.datasets import COCODataset, CocoGrounding
from maskrcnn_benchmark.data.datasets.few_shot import select_few_shot
from maskrcnn_benchmark.engine.trainer import _should_skip


def _box(ann_id, image_id, category_id, bbox=(4, 4, 10, 10), iscrowd=0):
    return {"id": ann_id, "image_id": image_id, "category_id": category_id, "bbox": list(bbox),
            "area": bbox[2] * bbox[3], "iscrowd": iscrowd}


def _write(folder, images, annotations, categories, name="ann.json"):
    """Write the JSON and a 32x24 grey PNG per image record; returns (ann_file, img_dir)."""
    os.makedirs(folder, exist_ok=True)
    records = [{"id": i, "file_name": f"{i}.png", "width": 32, "height": 24} for i in images]
    for record in records:
        Image.new("RGB", (32, 24), (128, 128, 128)).save(os.path.join(folder, record["file_name"]))
    path = os.path.join(folder, name)
    with open(path, "w") as f:
        json.dump({"images": records, "annotations": annotations, "categories": categories}, f)
    return path, str(folder)


CAT_DOG = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]


# ---------------------------------------------------------------- 1. the few-shot subset
@pytest.fixture
def six_images(tmp_path):
    # image: categories -- 1: cat, 2: cat+dog, 3: dog, 4: cat, 5: dog, 6: cat; listed out of id order in the file
    cats = {1: [1], 2: [1, 2], 3: [2], 4: [1], 5: [2], 6: [1]}
    anns, k = [], 0
    for image_id in (5, 3, 1, 6, 2, 4):
        for c in cats[image_id]:
            k += 1
            anns.append(_box(k, image_id, c))
    return _write(tmp_path, [5, 3, 1, 6, 2, 4], anns, CAT_DOG)


@pytest.mark.parametrize("shots, expected", [(1, [1, 2]), (2, [1, 2, 3])])
def test_upstream_subset_is_the_greedy_pass_over_sorted_ids_for_every_seed(six_images, shots, expected):
    # Upstream, 1 shot: 1 (cat quota 1 -> 0) kept; 2 (dog still 1) kept; 3..6 have no quota left.
    # 2 shots: 1 (cat 2 -> 1), 2 (cat 1 -> 0, dog 2 -> 1), 3 (dog 1 -> 0) kept; 4, 5, 6 not.
    for seed in (0, 3, 30, 300):
        ds = CocoGrounding(*six_images, few_shot=shots, shuffle_seed=seed, few_shot_subset="upstream")
        assert ds.ids == expected


def test_seeded_subset_differs_per_seed_and_seed_zero_is_upstream(six_images):
    subsets = {}
    for seed in (3, 30, 300):
        ds = CocoGrounding(*six_images, few_shot=1, shuffle_seed=seed, few_shot_subset="seeded")
        cats = {a["category_id"] for i in ds.ids for a in ds.annotations.anns_by_image[i]}
        assert cats == {1, 2}  # each class still has its shot
        subsets[seed] = tuple(ds.ids)
    assert len(set(subsets.values())) > 1
    assert CocoGrounding(*six_images, few_shot=1, shuffle_seed=0).ids == [1, 2]


def test_upstream_subset_counts_crowd_boxes_and_shares_category_zero_with_the_largest_id(tmp_path):
    # Categories 0 (super-category), 1 cat, 2 dog. Image 1: a crowd "cat" box only; image 2: a category-0 box;
    # image 3: dog; image 4: cat.
    categories = [{"id": 0, "name": "animals"}] + CAT_DOG
    anns = [_box(1, 1, 1, iscrowd=1), _box(2, 2, 0), _box(3, 3, 2), _box(4, 4, 1)]
    files = _write(tmp_path, [1, 2, 3, 4], anns, categories)
    # Upstream (cats_freq = [1] * 2, indexed by id - 1): 1 kept (crowd cat counts, cell 0 -> 0); 2 kept (id 0
    # reads cell -1 = dog's cell, 1 -> 0); 3 (dog, cell 1 is 0) not kept; 4 (cat, cell 0 is 0) not kept.
    assert CocoGrounding(*files, few_shot=1, few_shot_subset="upstream").ids == [1, 2]
    # Ours: crowd boxes do not count, each category has its own quota.
    assert CocoGrounding(*files, few_shot=1, few_shot_subset="seeded").ids == [2, 3, 4]


def test_unknown_subset_name_is_an_error(six_images):
    with pytest.raises(ValueError, match="FEW_SHOT_SUBSET"):
        CocoGrounding(*six_images, few_shot=1, few_shot_subset="random")
    with pytest.raises(ValueError, match="FEW_SHOT_SUBSET"):
        select_few_shot([1], {1: [1]}, 1, subset="Upstream")


# ---------------------------------------------------------------- 2. COCO_COPY / LVIS_COPY
@pytest.fixture
def catalog_root(tmp_path, monkeypatch, bpe_tokenizer_dir):
    """Files at the built-in coco_grounding_train / lvis_grounding_train paths, 2 images each."""
    _write(tmp_path / "coco" / "train2017", [1, 2], [], CAT_DOG)
    os.makedirs(tmp_path / "coco" / "annotations")
    for name in ("instances_train2017.json", "lvis_od_train.json"):
        _write(tmp_path / "coco" / "annotations", [1, 2], [_box(1, 1, 1), _box(2, 2, 2)], CAT_DOG, name=name)
    monkeypatch.setenv("DATASET", str(tmp_path))
    cfg = base_cfg.clone()
    cfg.MODEL.LANGUAGE_BACKBONE.TOKENIZER_TYPE = bpe_tokenizer_dir
    return cfg


def test_coco_and_lvis_copy_repeat_the_grounding_training_sets(catalog_root):
    cfg = catalog_root
    cfg.DATASETS.COCO_COPY = 3
    cfg.DATASETS.LVIS_COPY = 5
    assert len(build_dataset(cfg, "coco_grounding_train", is_train=True)) == 3 * 2
    assert len(build_dataset(cfg, "lvis_grounding_train", is_train=True)) == 5 * 2
    # upstream's other names of the same rule, and names outside it
    assert copies_for(cfg, "coco_dt_train", True) == 3 and copies_for(cfg, "lvisv1_dt_train", True) == 5
    assert copies_for(cfg, "COCO_odinw_train_8copy_dt_train", True) == 3
    assert copies_for(cfg, "coco_2017_train", True) == -1  # GENERAL_COPY
    # the rule matches the full name: with a suffix the set is another name (GENERAL_COPY applies)
    assert copies_for(cfg, "coco_grounding_train_grounding", True) == -1


# ---------------------------------------------------------------- 3. RANDOM_SAMPLE_NEG <= 0
@pytest.fixture
def lvis_like(tmp_path):
    categories = [{"id": i, "name": f"thing{i}"} for i in range(1, 21)]
    anns = [_box(1, 1, 3), _box(2, 1, 7), _box(3, 1, 3, bbox=(12, 6, 8, 8))]
    return _write(tmp_path, [1], anns, categories)


@pytest.mark.parametrize("value", [0, -1])
def test_no_negatives_when_random_sample_neg_is_not_positive(lvis_like, bpe_tokenizer, value):
    ds = CocoGrounding(*lvis_like, tokenizer=bpe_tokenizer, separation_tokens=". ",
                       special_safeguard_for_coco_grounding=True, random_sample_negative=value)
    for seed in range(8):
        random.seed(seed)
        caption = ds[0][1].get_field("caption")
        # upstream: RANDOM_SAMPLE_NEG <= 0 is not passed on, CocoGrounding's default -1 makes the negative
        # count -1, and the sampler then draws no negative: the caption holds the 2 positive names only
        assert sorted(caption.split(". ")) == ["thing3", "thing7"]


def test_positive_random_sample_neg_still_samples_negatives(lvis_like, bpe_tokenizer):
    ds = CocoGrounding(*lvis_like, tokenizer=bpe_tokenizer, separation_tokens=". ",
                       special_safeguard_for_coco_grounding=True, random_sample_negative=4)
    random.seed(0)
    names = ds[0][1].get_field("caption").split(". ")
    assert {"thing3", "thing7"} <= set(names) and 2 < len(names) <= 2 + 4


# ---------------------------------------------------------------- 4. images with crowd boxes only
@pytest.fixture
def crowd_file(tmp_path):
    # image 1: one crowd box only; image 2: a normal box; image 3: only a 1-pixel-wide box (dropped: upstream's
    # has_valid_annotation wants a box larger than 1 pixel both ways)
    anns = [_box(1, 1, 1, iscrowd=1), _box(2, 2, 2), _box(3, 3, 1, bbox=(4, 4, 1, 10))]
    return _write(tmp_path, [1, 2, 3], anns, CAT_DOG)


def test_crowd_only_image_is_a_sample_without_boxes(crowd_file, bpe_tokenizer):
    ds = CocoGrounding(*crowd_file, tokenizer=bpe_tokenizer, separation_tokens=". ", disable_shuffle=True,
                       remove_images_without_annotations=True)
    assert ds.ids == [1, 2]  # kept, as upstream (its validity test counts crowd boxes)
    _, empty, _ = ds[0]
    assert len(empty) == 0 and empty.get_field("caption") == "cat. dog"
    assert tuple(empty.get_field("positive_map").shape) == (0, 256)
    plain = COCODataset(*crowd_file, remove_images_without_annotations=True)
    assert plain.ids == [1, 2] and len(plain[0][1]) == 0


def test_trainer_skips_the_batch_holding_the_crowd_only_sample(crowd_file, bpe_tokenizer):
    ds = CocoGrounding(*crowd_file, tokenizer=bpe_tokenizer, separation_tokens=". ", disable_shuffle=True,
                       remove_images_without_annotations=True, transforms=lambda img, t: (to_tensor(img), t))
    images, targets, _ids, positive_map, _ = BatchCollator(0)([ds[0], ds[1]])
    assert [len(t) for t in targets] == [0, 1] and positive_map.shape[0] == 1
    # upstream's trainer: skip when every image, or more than MAX_NEG_PER_BATCH of them, has no box
    assert _should_skip(targets, 0.1)  # FIBER's 0.1: 1 empty of 2 > 0.2
    assert not _should_skip(targets, 0.5)  # 1 > 1.0 is false
    assert _should_skip(targets[:1], 1.0)  # a batch of empty images only is always skipped


# ---------------------------------------------------------------- 5. OVERRIDE_CATEGORY over a file out of id order
def test_override_renames_the_files_numbering(tmp_path, bpe_tokenizer):
    categories = [{"id": 3, "name": "c3"}, {"id": 1, "name": "c1"}, {"id": 2, "name": "c2"}]
    override = [{"id": 1, "name": "one"}, {"id": 2, "name": "two"}, {"id": 3, "name": "three"}]
    files = _write(tmp_path, [1], [_box(1, 1, 1), _box(2, 1, 3, bbox=(14, 2, 9, 9))], categories)
    ds = CocoGrounding(*files, tokenizer=bpe_tokenizer, separation_tokens=". ", disable_shuffle=True,
                       override_category=override)
    # upstream: labels from the file's order (3 -> 1, 1 -> 2, 2 -> 3), then the override renames them
    assert ds.json_category_id_to_contiguous_id == {3: 1, 1: 2, 2: 3}
    assert ds.categories() == {1: "three", 2: "one", 3: "two"}
    _, target, _ = ds[0]
    caption = target.get_field("caption")
    assert caption == "three. one. two"
    assert target.get_field("labels").tolist() == [2, 1]
    assert [caption[s:e] for ((s, e),) in target.get_field("tokens_positive")] == ["one", "three"]
    # the test-time COCODataset numbers in the override's order, as upstream's COCODataset
    test_set = COCODataset(*files, override_category=override)
    assert test_set.categories() == {1: "one", 2: "two", 3: "three"}


def test_override_leaving_out_the_super_category_keeps_the_files_numbers(tmp_path, bpe_tokenizer):
    # ODinW-style export: category 0 is the super-category; the override names only 1 and 2
    categories = [{"id": 0, "name": "creatures"}, {"id": 1, "name": "fish"}, {"id": 2, "name": "shark"}]
    override = [{"id": 1, "name": "fish"}, {"id": 2, "name": "shark"}]
    files = _write(tmp_path, [1], [_box(1, 1, 2)], categories)
    ds = CocoGrounding(*files, tokenizer=bpe_tokenizer, separation_tokens=". ", disable_shuffle=True,
                       override_category=override)
    assert ds.categories() == {2: "fish", 3: "shark"}
    _, target, _ = ds[0]
    assert target.get_field("caption") == "fish. shark" and target.get_field("labels").tolist() == [3]
    with pytest.raises(ValueError, match=r"OVERRIDE_CATEGORY ids \[9\]"):
        CocoGrounding(*files, tokenizer=bpe_tokenizer, override_category=override + [{"id": 9, "name": "x"}])
