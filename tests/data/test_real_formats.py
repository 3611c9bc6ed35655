"""The readers on small HAND-WRITTEN records in each real on-disk format.

The other data tests read files that ``data/synthetic.py`` wrote, so a reader and the writer could be wrong
together. Here every annotation record is a literal string laid out as the real files are (upstream-facts.md
6.1-6.2 and 7: MDETR ``final_*.json`` / ``finetune_refcoco*.json``, LVIS v1 json, ODinW's Roboflow COCO export
``annotations_without_background.json``, Flickr30k Entities ``Annotations/*.xml`` + ``Sentences/*.txt``, the
Objects365 TSV set), and the expected fields, boxes (xyxy, +1 convention: ``x2 = x + w - 1``), spans and labels
are worked out by hand. Only the pixels are generated (plain grey images).
"""

import base64
import io
import os

import pytest
import torch
from PIL import Image

from maskrcnn_benchmark.data.datasets import (
    COCODataset,
    CocoDetectionTSV,
    CocoGrounding,
    FlickrDataset,
    FlickrEntities,
    LvisDetection,
    MixedDataset,
    RefExpDataset,
)

WIDTH, HEIGHT = 32, 24


def _image(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", (WIDTH, HEIGHT), (128, 128, 128)).save(path)


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return str(path)


def _boxes(target):
    return target.convert("xyxy").bbox.tolist()


def _token_text(tokenizer, caption, row):
    ids = tokenizer(caption)["input_ids"]
    return tokenizer.decode([ids[i] for i in row.nonzero().flatten().tolist()]).strip()


# ------------------------------------------------------------------------------------------------ MDETR
# final_flickr_separateGT_val.json: one record per (image, sentence); boxes xywh with character spans into the
# caption; tokens_positive_eval lists the spans of every phrase that has a box (one evaluation label each).
#   caption: "A man in a red hat rides a bike ."
#             0    5  8 9       18     25   31
MDETR_FLICKR = """{
 "images": [
  {"file_name": "1001.jpg", "height": 24, "width": 32, "id": 0, "caption": "A man in a red hat rides a bike .",
   "dataset_name": "flickr", "tokens_negative": [[0, 33]], "sentence_id": 0, "original_img_id": 1001,
   "tokens_positive_eval": [[[0, 5]], [[9, 18]], [[25, 31]]]},
  {"file_name": "1002.jpg", "height": 24, "width": 32, "id": 1, "caption": "Two dogs .",
   "dataset_name": "flickr", "tokens_negative": [[0, 10]], "sentence_id": 3, "original_img_id": 1002,
   "tokens_positive_eval": [[[0, 8]]]}
 ],
 "annotations": [
  {"area": 80, "iscrowd": 0, "image_id": 0, "category_id": 1, "id": 0, "bbox": [2, 3, 10, 8],
   "tokens_positive": [[0, 5]]},
  {"area": 12, "iscrowd": 0, "image_id": 0, "category_id": 1, "id": 1, "bbox": [4, 0, 4, 3],
   "tokens_positive": [[9, 18]]},
  {"area": 100, "iscrowd": 0, "image_id": 0, "category_id": 1, "id": 2, "bbox": [25, 20, 10, 10],
   "tokens_positive": [[25, 31]]},
  {"area": 4, "iscrowd": 0, "image_id": 0, "category_id": 1, "id": 3, "bbox": [6, 6, 1, 4],
   "tokens_positive": [[25, 31]]},
  {"area": 0, "iscrowd": 0, "image_id": 1, "category_id": 1, "id": 4, "bbox": [3, 3, 1, 1],
   "tokens_positive": [[0, 8]]}
 ],
 "categories": [{"supercategory": "object", "id": 1, "name": "object"}]
}"""


def test_mdetr_flickr_records(tmp_path, bpe_tokenizer):
    ann = _write(tmp_path / "mdetr_annotations" / "final_flickr_separateGT_val.json", MDETR_FLICKR)
    for name in ("1001.jpg", "1002.jpg"):
        _image(tmp_path / "flickr30k_images" / "val" / name)
    ds = FlickrDataset(str(tmp_path / "flickr30k_images" / "val"), ann, tokenizer=bpe_tokenizer, is_train=False)
    # image 1 has only a 1x1 box: not a usable annotation, the sample is skipped (upstream-facts.md 6.2)
    assert len(ds) == 1
    image, target, idx = ds[0]
    assert idx == 0 and image.size == (WIDTH, HEIGHT)
    info = ds.get_img_info(0)
    assert (info["original_img_id"], info["sentence_id"]) == (1001, 0)
    caption = target.get_field("caption")
    assert caption == "A man in a red hat rides a bike ."
    # [2, 3, 10, 8] -> [2, 3, 11, 10]; [4, 0, 4, 3] -> [4, 0, 7, 2]; [25, 20, 10, 10] -> [25, 20, 34, 29]
    # clamped to [25, 20, 31, 23]; [6, 6, 1, 4] -> x2 = 6 = x1: degenerate, dropped with its span
    assert _boxes(target) == [[2, 3, 11, 10], [4, 0, 7, 2], [25, 20, 31, 23]]
    assert target.get_field("labels").tolist() == [1, 2, 3]
    spans = target.get_field("tokens_positive")
    assert [[caption[s:e] for s, e in box] for box in spans] == [["A man"], ["a red hat"], ["a bike"]]
    positive_map = target.get_field("positive_map")
    assert positive_map.shape == (3, 256)
    assert [_token_text(bpe_tokenizer, caption, row) for row in positive_map] == ["A man", "a red hat", "a bike"]
    torch.testing.assert_close(positive_map.sum(1), torch.ones(3), atol=1e-5, rtol=0)  # rows normalised
    assert target.get_field("nb_eval") == 3
    eval_map = target.get_field("positive_map_eval")
    assert [_token_text(bpe_tokenizer, caption, row) for row in eval_map] == ["A man", "a red hat", "a bike"]


# finetune_refcoco_val.json: one record per referring expression, exactly one box
MDETR_REFCOCO = """{
 "images": [
  {"file_name": "COCO_train2014_000000000581.jpg", "height": 24, "width": 32, "id": 0, "original_id": 581,
   "caption": "zebra on the left", "dataset_name": "refcoco", "tokens_negative": [[0, 17]], "task_id": 7},
  {"file_name": "COCO_train2014_000000000581.jpg", "height": 24, "width": 32, "id": 1, "original_id": 581,
   "caption": "right zebra", "dataset_name": "refcoco", "tokens_negative": [[0, 11]], "task_id": 8}
 ],
 "annotations": [
  {"area": 120, "iscrowd": 0, "image_id": 0, "category_id": 24, "id": 0, "bbox": [0.5, 2.25, 12, 10],
   "tokens_positive": [[0, 5]]},
  {"area": 150, "iscrowd": 0, "image_id": 1, "category_id": 24, "id": 1, "bbox": [16, 4, 15, 10],
   "tokens_positive": [[6, 11]]}
 ],
 "categories": [{"supercategory": "animal", "id": 24, "name": "zebra"}]
}"""


def test_mdetr_refcoco_records(tmp_path, bpe_tokenizer):
    ann = _write(tmp_path / "finetune_refcoco_val.json", MDETR_REFCOCO)
    _image(tmp_path / "train2014" / "COCO_train2014_000000000581.jpg")
    ds = RefExpDataset(str(tmp_path / "train2014"), ann, tokenizer=bpe_tokenizer)
    assert len(ds) == 2
    first, second = ds[0][1], ds[1][1]
    assert ds.get_img_info(0)["dataset_name"] == "refcoco" and ds.get_img_info(1)["original_id"] == 581
    assert _boxes(first) == [[0.5, 2.25, 11.5, 11.25]]  # x2 = 0.5 + 12 - 1, y2 = 2.25 + 10 - 1
    assert _boxes(second) == [[16, 4, 30, 13]]
    assert first.get_field("caption") == "zebra on the left" and first.get_field("labels").tolist() == [1]
    assert _token_text(bpe_tokenizer, "right zebra", second.get_field("positive_map")[0]) == "zebra"
    assert not first.has_field("positive_map_eval")  # no tokens_positive_eval in RefExp records


# final_mixed_train_no_coco.json: images from COCO (data_source "coco") or Visual Genome / GQA
MDETR_MIXED = """{
 "images": [
  {"file_name": "COCO_train2014_000000000009.jpg", "height": 24, "width": 32, "id": 0, "caption": "a bowl",
   "dataset_name": "mixed", "data_source": "coco", "tokens_negative": [[0, 6]], "original_img_id": 9},
  {"file_name": "2354786.jpg", "height": 24, "width": 32, "id": 1, "caption": "a cup", "dataset_name": "mixed",
   "data_source": "vg", "tokens_negative": [[0, 5]], "original_img_id": 2354786}
 ],
 "annotations": [
  {"area": 64, "iscrowd": 0, "image_id": 0, "category_id": 1, "id": 0, "bbox": [1, 1, 8, 8],
   "tokens_positive": [[2, 6]]},
  {"area": 64, "iscrowd": 0, "image_id": 1, "category_id": 1, "id": 1, "bbox": [9, 9, 8, 8],
   "tokens_positive": [[2, 5]]}
 ],
 "categories": [{"supercategory": "object", "id": 1, "name": "object"}]
}"""


def test_mdetr_mixed_records_pick_the_image_folder(tmp_path, bpe_tokenizer):
    ann = _write(tmp_path / "final_mixed_train_no_coco.json", MDETR_MIXED)
    _image(tmp_path / "coco" / "COCO_train2014_000000000009.jpg")
    _image(tmp_path / "gqa" / "2354786.jpg")
    ds = MixedDataset(str(tmp_path / "coco"), str(tmp_path / "gqa"), ann, tokenizer=bpe_tokenizer, is_train=True)
    assert ds.image_path(0) == str(tmp_path / "coco" / "COCO_train2014_000000000009.jpg")
    assert ds.image_path(1) == str(tmp_path / "gqa" / "2354786.jpg")
    assert _boxes(ds[0][1]) == [[1, 1, 8, 8]] and _boxes(ds[1][1]) == [[9, 9, 16, 16]]


# -------------------------------------------------------------------------------------------------- LVIS
# LVIS v1 (lvis_v1_minival_inserted_image_name.json / lvis_od_val.json): images located by the last two parts
# of coco_url; category ids are LVIS's own (1..1203) and stay the labels; image-level negative and
# not-exhaustive category lists; polygons in "segmentation".
LVIS_V1 = """{
 "info": {"description": "hand-written LVIS v1 records"},
 "images": [
  {"id": 397133, "coco_url": "http://images.cocodataset.org/val2017/000000397133.jpg", "height": 24, "width": 32,
   "license": 4, "flickr_url": "http://farm7.staticflickr.com/6116/6255196340_da26cf2c9e_z.jpg",
   "date_captured": "2013-11-14 17:02:52", "neg_category_ids": [3], "not_exhaustive_category_ids": [5]},
  {"id": 37777, "coco_url": "http://images.cocodataset.org/train2017/000000037777.jpg", "height": 24, "width": 32,
   "license": 1, "neg_category_ids": [], "not_exhaustive_category_ids": []}
 ],
 "annotations": [
  {"id": 1, "image_id": 397133, "category_id": 5, "bbox": [2.0, 3.0, 10.0, 8.0], "area": 80.0,
   "segmentation": [[2.0, 3.0, 12.0, 3.0, 12.0, 11.0, 2.0, 11.0]]},
  {"id": 2, "image_id": 397133, "category_id": 1, "bbox": [20.0, 10.0, 20.0, 5.0], "area": 100.0,
   "segmentation": [[20.0, 10.0, 40.0, 10.0, 40.0, 15.0]]},
  {"id": 3, "image_id": 37777, "category_id": 3, "bbox": [0.0, 0.0, 4.0, 4.0], "area": 16.0,
   "segmentation": [[0.0, 0.0, 4.0, 0.0, 4.0, 4.0]]}
 ],
 "categories": [
  {"id": 1, "name": "aerosol_can", "synset": "aerosol.n.02", "frequency": "c", "synonyms": ["aerosol_can"],
   "def": "a dispenser", "image_count": 64, "instance_count": 109},
  {"id": 3, "name": "alarm_clock", "synset": "alarm_clock.n.01", "frequency": "f", "synonyms": ["alarm_clock"],
   "def": "a clock", "image_count": 300, "instance_count": 320},
  {"id": 5, "name": "bow_(weapon)", "synset": "bow.n.04", "frequency": "r", "synonyms": ["bow_(weapon)"],
   "def": "a weapon", "image_count": 3, "instance_count": 4}
 ],
 "licenses": []
}"""


def test_lvis_v1_records(tmp_path):
    ann = _write(tmp_path / "coco" / "annotations" / "lvis_v1_minival_inserted_image_name.json", LVIS_V1)
    _image(tmp_path / "coco" / "val2017" / "000000397133.jpg")
    _image(tmp_path / "coco" / "train2017" / "000000037777.jpg")
    ds = LvisDetection(ann, str(tmp_path / "coco"))
    assert ds.categories() == {1: "aerosol_can", 3: "alarm_clock", 5: "bow_(weapon)"}  # LVIS ids, not 1..K
    assert ds.ids == [37777, 397133]  # sorted image ids
    assert ds.image_path(1) == str(tmp_path / "coco" / "val2017" / "000000397133.jpg")
    assert ds.image_path(0) == str(tmp_path / "coco" / "train2017" / "000000037777.jpg")
    _, target, _ = ds[1]
    # [2, 3, 10, 8] -> [2, 3, 11, 10]; [20, 10, 20, 5] -> [20, 10, 39, 14] clipped to x2 = 31
    assert _boxes(target) == [[2, 3, 11, 10], [20, 10, 31, 14]]
    assert target.get_field("labels").tolist() == [5, 1]
    info = ds.get_img_info(1)
    assert (info["neg_category_ids"], info["not_exhaustive_category_ids"]) == ([3], [5])
    assert ds[0][1].get_field("labels").tolist() == [3]


# ------------------------------------------------------------------------------------------------ ODinW
# annotations_without_background.json: Roboflow's COCO export with the background category (id 0, the
# super-category "creatures") removed; category ids 1..K; crowd flag and empty segmentation lists.
ODINW = """{
 "info": {"year": "2020", "version": "2", "description": "Exported from roboflow.ai"},
 "licenses": [{"id": 1, "url": "https://creativecommons.org/publicdomain/zero/1.0/", "name": "Public Domain"}],
 "categories": [
  {"id": 1, "name": "fish", "supercategory": "creatures"},
  {"id": 2, "name": "jellyfish", "supercategory": "creatures"},
  {"id": 3, "name": "penguin", "supercategory": "creatures"}
 ],
 "images": [
  {"id": 0, "license": 1, "file_name": "IMG_2289_jpeg_jpg.rf.fe2a7a149e7b11f2313f5a7b30386e85.jpg", "height": 24,
   "width": 32, "date_captured": "2020-11-04T09:15:35+00:00"}
 ],
 "annotations": [
  {"id": 0, "image_id": 0, "category_id": 3, "bbox": [4, 5, 6, 7], "area": 42, "segmentation": [], "iscrowd": 0},
  {"id": 1, "image_id": 0, "category_id": 1, "bbox": [10, 2, 3, 3], "area": 9, "segmentation": [], "iscrowd": 0},
  {"id": 2, "image_id": 0, "category_id": 2, "bbox": [0, 0, 32, 24], "area": 768, "segmentation": [], "iscrowd": 1}
 ]
}"""
ODINW_IMAGE = "IMG_2289_jpeg_jpg.rf.fe2a7a149e7b11f2313f5a7b30386e85.jpg"


def test_odinw_export_as_detection_and_grounding(tmp_path, bpe_tokenizer):
    folder = tmp_path / "odinw" / "Aquarium" / "Aquarium Combined.v2-raw-1024.coco" / "valid"
    ann = _write(folder / "annotations_without_background.json", ODINW)
    _image(folder / ODINW_IMAGE)
    ds = COCODataset(ann, str(folder))
    assert ds.categories() == {1: "fish", 2: "jellyfish", 3: "penguin"}
    _, target, _ = ds[0]
    # crowd box left out; [4, 5, 6, 7] -> [4, 5, 9, 11]; [10, 2, 3, 3] -> [10, 2, 12, 4]
    assert _boxes(target) == [[4, 5, 9, 11], [10, 2, 12, 4]]
    assert target.get_field("labels").tolist() == [3, 1]

    # as grounding training data (upstream-facts.md 6.2 a): all names in id order, ". "-separated, each box
    # pointing at its class name
    grounding = CocoGrounding(ann, str(folder), tokenizer=bpe_tokenizer, separation_tokens=". ",
                              disable_shuffle=True)
    _, target, _ = grounding[0]
    caption = target.get_field("caption")
    assert caption == "fish. jellyfish. penguin"
    assert target.get_field("tokens_positive") == [[[17, 24]], [[0, 4]]]
    assert [_token_text(bpe_tokenizer, caption, row) for row in target.get_field("positive_map")] == [
        "penguin", "fish"]


# ----------------------------------------------------------------------------------- Flickr30k Entities
# Sentences/<id>.txt: one sentence per line, phrases marked [/EN#<entity id>/<type>[/<type>] words];
# Annotations/<id>.xml: VOC-like, 1-based pixel boxes per entity id (an <object> may list several ids),
# entities without a box carry <nobndbox>1</nobndbox> and <scene>0|1</scene>.
SENTENCES = (
    "[/EN#51/people A man] in [/EN#52/clothing a red hat] rides [/EN#53/vehicles a bike] .\n"
    "[/EN#51/people/other The cyclist] crosses [/EN#54/scene the street] near [/EN#55/notvisual nobody] .\n"
)
ANNOTATION_XML = """<annotation>
  <filename>1001.jpg</filename>
  <size><width>32</width><height>24</height><depth>3</depth></size>
  <object><name>51</name><bndbox><xmin>3</xmin><ymin>4</ymin><xmax>12</xmax><ymax>11</ymax></bndbox></object>
  <object><name>52</name><name>51</name><bndbox><xmin>5</xmin><ymin>1</ymin><xmax>8</xmax><ymax>3</ymax></bndbox></object>
  <object><name>53</name><bndbox><xmin>20</xmin><ymin>10</ymin><xmax>32</xmax><ymax>24</ymax></bndbox></object>
  <object><name>54</name><nobndbox>1</nobndbox><scene>1</scene></object>
  <object><name>55</name><nobndbox>1</nobndbox><scene>0</scene></object>
</annotation>
"""


def test_flickr30k_entities_sentences_and_boxes(tmp_path):
    root = tmp_path / "flickr30k"
    _write(root / "test.txt", "1001\n")
    _write(root / "Sentences" / "1001.txt", SENTENCES)
    _write(root / "Annotations" / "1001.xml", ANNOTATION_XML)
    entities = FlickrEntities(str(root))
    assert entities.split("test") == ["1001"]
    first, second = entities.sentences("1001")
    assert first.text == "A man in a red hat rides a bike ."
    assert [(p.phrase_id, p.phrase_types, p.text, p.first_word_index, p.char_start, p.char_end)
            for p in first.phrases] == [("51", ("people",), "A man", 0, 0, 5),
                                        ("52", ("clothing",), "a red hat", 3, 9, 18),
                                        ("53", ("vehicles",), "a bike", 7, 25, 31)]
    assert second.text == "The cyclist crosses the street near nobody ."
    assert [(p.phrase_id, p.phrase_types, p.char_start, p.char_end) for p in second.phrases] == [
        ("51", ("people", "other"), 0, 11), ("54", ("scene",), 20, 30), ("55", ("notvisual",), 36, 42)]
    anno = entities.annotation("1001")
    assert (anno.width, anno.height, anno.depth) == (32, 24, 3)
    # 0-based: every coordinate minus 1; the second object belongs to entities 52 and 51
    assert anno.boxes == {"51": [[2, 3, 11, 10], [4, 0, 7, 2]], "52": [[4, 0, 7, 2]], "53": [[19, 9, 31, 23]]}
    assert anno.scene == ["54"] and anno.nobox == ["54", "55"]


# --------------------------------------------------------------------------------------- Objects365 TSV
# objects365_train_vgoiv6.cas2000.yaml names the parts; train.label.tsv rows are "key<TAB>JSON list of
# {"rect": [x1, y1, x2, y2], "class": name}"; train.hw.tsv rows "key<TAB>[{"height": h, "width": w}]"; the line
# list selects (and repeats) rows; the label map is JSON name -> index ("__background__" is 0).
TSV_YAML = """img: images.tsv
label: train.label.tsv
hw: train.hw.tsv
linelist: train.label.linelist.cas.2000.tsv
labelmap: object365_vgoiv6_class2ind.json
"""
TSV_LABELS = (
    'objects365_v1_00000001\t[{"rect": [2, 3, 11, 10], "class": "person"}, '
    '{"rect": [20.5, 4, 40, 30], "class": "car"}]\n'
    'objects365_v1_00000002\t[{"rect": [1, 1, 5, 6], "class": "dog"}, {"rect": [7, 7, 7, 9], "class": "dog"}]\n'
)
TSV_HW = ('objects365_v1_00000001\t[{"height": 24, "width": 32}]\n'
          'objects365_v1_00000002\t[{"height": 24, "width": 32}]\n')
TSV_LINELIST = "1\n0\n1\n"
TSV_LABELMAP = '{"person": 1, "car": 2, "dog": 3}'


def _png_base64():
    buffer = io.BytesIO()
    Image.new("RGB", (WIDTH, HEIGHT), (90, 90, 90)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def test_objects365_tsv_rows(tmp_path, bpe_tokenizer):
    folder = tmp_path / "Objects365"
    yaml_file = _write(folder / "objects365_train_vgoiv6.cas2000.yaml", TSV_YAML)
    _write(folder / "train.label.tsv", TSV_LABELS)
    _write(folder / "train.hw.tsv", TSV_HW)
    _write(folder / "train.label.linelist.cas.2000.tsv", TSV_LINELIST)
    _write(folder / "object365_vgoiv6_class2ind.json", TSV_LABELMAP)
    image = _png_base64()
    _write(folder / "images.tsv", f"objects365_v1_00000001\t{image}\nobjects365_v1_00000002\t{image}\n")
    # CONTROL_PROB (0, 1, 0, 0): the second case, "no negatives" (upstream-facts.md 6.2)
    ds = CocoDetectionTSV(yaml_file, tokenizer=bpe_tokenizer, control_probabilities=(0.0, 1.0, 0.0, 0.0))
    assert len(ds) == 3  # the line list: rows 1, 0, 1
    assert ds.categories() == {1: "person", 2: "car", 3: "dog"} and ds.ind_to_class[0] == "__background__"
    assert [ds.get_img_info(i)["key"] for i in range(3)] == ["objects365_v1_00000002", "objects365_v1_00000001",
                                                              "objects365_v1_00000002"]
    assert ds.get_img_info(1)["height"] == 24 and ds.get_img_info(1)["width"] == 32
    _, target, _ = ds[1]
    # rect is already xyxy; [20.5, 4, 40, 30] is clipped to the 32x24 image: x2 = 31, y2 = 23
    boxes = dict(zip(target.get_field("labels").tolist(), _boxes(target)))
    assert boxes == {1: [2, 3, 11, 10], 2: [20.5, 4, 31, 23]}
    caption = target.get_field("caption")
    assert sorted(caption.split(". ")) == ["car", "person"]  # positives only, shuffled
    names = [ds.ind_to_class[k] for k in target.get_field("labels").tolist()]
    assert [caption[s:e] for ((s, e),) in target.get_field("tokens_positive")] == names
    _, dogs, _ = ds[0]
    # clip_to_image(remove_empty=True) keeps a box only if x2 > x1 and y2 > y1: [7, 7, 7, 9] goes
    assert _boxes(dogs) == [[1, 1, 5, 6]] and dogs.get_field("caption") == "dog"


def test_tsv_labels_must_be_in_the_label_map(tmp_path, bpe_tokenizer):
    folder = tmp_path / "o365"
    yaml_file = _write(folder / "o365.yaml", TSV_YAML)
    _write(folder / "train.label.tsv", 'k0\t[{"rect": [1, 1, 5, 6], "class": "unicorn"}]\n')
    _write(folder / "train.hw.tsv", 'k0\t[{"height": 24, "width": 32}]\n')
    _write(folder / "train.label.linelist.cas.2000.tsv", "0\n")
    _write(folder / "object365_vgoiv6_class2ind.json", TSV_LABELMAP)
    _write(folder / "images.tsv", f"k0\t{_png_base64()}\n")
    ds = CocoDetectionTSV(yaml_file, tokenizer=bpe_tokenizer)
    with pytest.raises(ValueError, match=r"train.label.tsv: row 0 \(key k0\): object 0 has class 'unicorn'"):
        ds[0]
