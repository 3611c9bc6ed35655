"""Small synthetic data sets in every real on-disk format, for tests and the demo.

Images are plain backgrounds with a few non-overlapping coloured shapes ("red square", "blue circle", ...)
whose boxes and phrases are known exactly. Everything is written under ONE root in the folder layout of the
paths catalog (DATASET.md), so ``DATASET=<root>`` makes the real configs find the files::

    from maskrcnn_benchmark.data.synthetic import make_all
    manifest = make_all("/tmp/synthetic", seed=0, num_images=12)

or ``python tools/make_synthetic_data.py --root /tmp/synthetic``. Output is deterministic per seed.

Boxes follow the +1 pixel convention of the toolkit: a shape drawn over pixels x1..x2 (inclusive) is
stored in COCO files as ``[x1, y1, x2 - x1 + 1, y2 - y1 + 1]``, so ``BoxList(..., "xywh").convert("xyxy")``
gives back ``[x1, y1, x2, y2]``.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from maskrcnn_benchmark.utils.atomic_io import atomic_write_json

__all__ = [
    "ShapeClass",
    "SHAPE_CLASSES",
    "AQUARIUM_CLASSES",
    "ODINW_AQUARIUM",
    "draw_scene",
    "write_coco",
    "write_lvis",
    "write_odinw",
    "write_flickr",
    "write_refexp",
    "write_mixed",
    "write_objects365",
    "write_objects365_tsv",
    "make_all",
]

Box = list[int]  # [x1, y1, x2, y2], inclusive pixel corners


@dataclass(frozen=True)
class ShapeClass:
    """A drawable class: its name, fill colour (RGB) and shape."""

    name: str
    color: tuple[int, int, int]
    shape: str  # "square" | "circle" | "triangle" | "diamond"


SHAPE_CLASSES: tuple[ShapeClass, ...] = (
    ShapeClass("red square", (220, 30, 30), "square"),
    ShapeClass("blue circle", (30, 60, 220), "circle"),
    ShapeClass("green triangle", (30, 160, 50), "triangle"),
    ShapeClass("yellow diamond", (230, 200, 20), "diamond"),
)

# ODinW "Aquarium" has these 7 classes in this order (task-configs.md 1.4); drawn as distinct shapes.
AQUARIUM_CLASSES: tuple[ShapeClass, ...] = (
    ShapeClass("fish", (220, 30, 30), "square"),
    ShapeClass("jellyfish", (30, 60, 220), "circle"),
    ShapeClass("penguin", (30, 160, 50), "triangle"),
    ShapeClass("puffin", (230, 200, 20), "diamond"),
    ShapeClass("shark", (140, 40, 180), "square"),
    ShapeClass("starfish", (240, 130, 20), "circle"),
    ShapeClass("stingray", (20, 190, 200), "triangle"),
)
ODINW_AQUARIUM = ("Aquarium", "Aquarium Combined.v2-raw-1024.coco")

COCO_CATEGORY_IDS = (1, 3, 7, 12)  # non-contiguous on purpose, as in COCO
_BACKGROUND = (235, 235, 235)


# ---------------------------------------------------------------------------------------------------------- drawing
def _draw_shape(draw: ImageDraw.ImageDraw, cls: ShapeClass, box: Box) -> None:
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
    if cls.shape == "square":
        draw.rectangle([x1, y1, x2, y2], fill=cls.color)
    elif cls.shape == "circle":
        draw.ellipse([x1, y1, x2, y2], fill=cls.color)
    elif cls.shape == "triangle":
        draw.polygon([(x1, y2), (x2, y2), (cx, y1)], fill=cls.color)
    elif cls.shape == "diamond":
        draw.polygon([(cx, y1), (x2, cy), (cx, y2), (x1, cy)], fill=cls.color)
    else:
        raise ValueError(f"unknown shape {cls.shape!r}")


def _overlaps(a: Box, b: Box, margin: int = 3) -> bool:
    return not (a[2] + margin < b[0] or b[2] + margin < a[0] or a[3] + margin < b[1] or b[3] + margin < a[1])


def draw_scene(
    rng: np.random.Generator,
    classes: Sequence[ShapeClass],
    num_objects: int,
    size: tuple[int, int] | None = None,
    class_indices: Sequence[int] | None = None,
) -> tuple[Image.Image, list[tuple[int, Box]]]:
    """Draw non-overlapping shapes on a plain background.

    Args:
        rng: numpy random generator.
        classes: the drawable classes.
        num_objects: how many shapes to try to place.
        size: (width, height); random in [128, 200] when None.
        class_indices: which class each shape has (random when None).

    Returns:
        (image, objects) with objects = [(class index, [x1, y1, x2, y2])], boxes inclusive.
    """
    if size is None:
        size = (int(rng.integers(128, 201)), int(rng.integers(128, 201)))
    width, height = size
    image = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(image)
    objects: list[tuple[int, Box]] = []
    for k in range(num_objects):
        cls_idx = int(class_indices[k]) if class_indices is not None else int(rng.integers(len(classes)))
        for _attempt in range(50):
            side = int(rng.integers(24, max(25, min(width, height) // 2)))
            aspect = float(rng.uniform(0.75, 1.33))
            w, h = max(12, int(side * aspect)), side
            if w >= width - 2 or h >= height - 2:
                continue
            x1 = int(rng.integers(1, width - w - 1))
            y1 = int(rng.integers(1, height - h - 1))
            box = [x1, y1, x1 + w - 1, y1 + h - 1]
            if all(not _overlaps(box, other) for _, other in objects):
                _draw_shape(draw, classes[cls_idx], box)
                objects.append((cls_idx, box))
                break
    return image, objects


# ---------------------------------------------------------------------------------------------------------- writing
def _save_image(image: Image.Image, path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image.save(path, quality=95)


def _xywh(box: Box) -> list[int]:
    x1, y1, x2, y2 = box
    return [x1, y1, x2 - x1 + 1, y2 - y1 + 1]


def _coco_split(
    rng: np.random.Generator,
    classes: Sequence[ShapeClass],
    cat_ids: Sequence[int],
    img_dir: str,
    num_images: int,
    first_image_id: int,
    file_pattern: str = "{:012d}.jpg",
    file_prefix: str = "",
    image_size: tuple[int, int] | None = None,
) -> tuple[dict[str, Any], dict[str, list[tuple[str, Box]]]]:
    """Draw ``num_images`` images into ``img_dir``; return the COCO dict parts and a manifest."""
    images, annotations = [], []
    manifest: dict[str, list[tuple[str, Box]]] = {}
    ann_id = first_image_id * 100
    for i in range(num_images):
        image_id = first_image_id + i
        image, objects = draw_scene(rng, classes, int(rng.integers(1, 4)), size=image_size)
        file_name = file_pattern.format(image_id)
        _save_image(image, os.path.join(img_dir, file_name))
        images.append({"id": image_id, "file_name": file_prefix + file_name, "width": image.width,
                       "height": image.height})
        manifest[file_name] = [(classes[c].name, box) for c, box in objects]
        for cls_idx, box in objects:
            xywh = _xywh(box)
            annotations.append({"id": ann_id, "image_id": image_id, "category_id": int(cat_ids[cls_idx]),
                                "bbox": xywh, "area": xywh[2] * xywh[3], "iscrowd": 0, "segmentation": []})
            ann_id += 1
    return {"images": images, "annotations": annotations}, manifest


def write_coco(root: str, seed: int = 0, num_images: int = 12, *, image_size: tuple[int, int] | None = None
               ) -> dict[str, Any]:
    """COCO 2017 layout: ``coco/{train2017,val2017}/`` + ``coco/annotations/instances_{train,val}2017.json``.

    Returns:
        {"ann_files": {split: path}, "img_dirs": {split: path}, "objects": {split: {file: [(name, box)]}},
        "categories": {json id: name}}.
    """
    rng = np.random.default_rng([seed, 1])
    cats = [{"id": cid, "name": c.name, "supercategory": "shape"} for cid, c in zip(COCO_CATEGORY_IDS, SHAPE_CLASSES)]
    out: dict[str, Any] = {"ann_files": {}, "img_dirs": {}, "objects": {},
                           "categories": {c["id"]: c["name"] for c in cats}}
    for split, first_id in (("train2017", 1000), ("val2017", 5000)):
        img_dir = os.path.join(root, "coco", split)
        parts, manifest = _coco_split(rng, SHAPE_CLASSES, COCO_CATEGORY_IDS, img_dir, num_images, first_id,
                                       image_size=image_size)
        ann_file = os.path.join(root, "coco", "annotations", f"instances_{split}.json")
        info = {"description": "synthetic shapes"}
        atomic_write_json(ann_file, {"info": info, "licenses": [], "categories": cats, **parts})
        out["ann_files"][split] = ann_file
        out["img_dirs"][split] = img_dir
        out["objects"][split] = manifest
    return out


def _lvis_categories(num_categories: int) -> tuple[list[dict[str, Any]], list[int]]:
    """LVIS-like categories 1..K: the shape classes spread over the id range, fillers elsewhere."""
    num_categories = max(num_categories, len(SHAPE_CLASSES))
    step = num_categories // len(SHAPE_CLASSES)
    shape_ids = [1 + k * step for k in range(len(SHAPE_CLASSES))]
    freqs = ("r", "c", "f")
    cats = []
    for cid in range(1, num_categories + 1):
        if cid in shape_ids:
            name = SHAPE_CLASSES[shape_ids.index(cid)].name.replace(" ", "_")
            freq = freqs[shape_ids.index(cid) % 3]
        else:
            name = f"thing_{cid}_(kind_{cid % 7})"  # exercises clean_name: "thing 17 " after cleaning
            freq = freqs[cid % 3]
        cats.append({"id": cid, "name": name, "synonyms": [name], "def": f"synthetic class {cid}",
                     "frequency": freq, "image_count": 0, "instance_count": 0, "synset": f"{name}.n.01"})
    return cats, shape_ids


def write_lvis(root: str, seed: int = 0, num_images: int = 12, num_categories: int = 40, *,
               image_size: tuple[int, int] | None = None) -> dict[str, Any]:
    """LVIS v1 layout under ``coco/``: images in ``coco/{train2017,val2017}``, annotation files
    ``coco/annotations/lvis_v1_minival_inserted_image_name.json``, ``lvis_od_val.json`` (evaluation, image path
    from ``coco_url``) and ``lvis_od_train.json`` (training, ``file_name`` with the split folder); plus a copy
    of the minival file and the val images under ``lvis/`` (the built-in ``lvis_evaluation_val`` entry).

    Args:
        num_categories: number of LVIS categories (>= 4; use a few hundred to exercise chunked prompts).
    """
    rng = np.random.default_rng([seed, 2])
    cats, shape_ids = _lvis_categories(num_categories)
    out: dict[str, Any] = {"ann_files": {}, "objects": {}, "img_dir": os.path.join(root, "coco"),
                           "categories": {c["id"]: c["name"] for c in cats}}
    for split, first_id, files in (
        ("val2017", 7000, ("lvis_v1_minival_inserted_image_name.json", "lvis_od_val.json")),
        ("train2017", 8000, ("lvis_od_train.json",)),
    ):
        img_dir = os.path.join(root, "coco", split)
        parts, manifest = _coco_split(rng, SHAPE_CLASSES, shape_ids, img_dir, num_images, first_id,
                                       image_size=image_size)
        present = {a["category_id"] for a in parts["annotations"]}
        for img in parts["images"]:
            img["coco_url"] = f"http://images.cocodataset.org/{split}/{img['file_name']}"
            if split == "train2017":
                img["file_name"] = f"{split}/{img['file_name']}"
            absent = [c for c in range(1, len(cats) + 1) if c not in present]
            img["neg_category_ids"] = absent[:3]
            img["not_exhaustive_category_ids"] = []
        for ann in parts["annotations"]:
            ann.pop("iscrowd")
        for name in files:
            path = os.path.join(root, "coco", "annotations", name)
            header = {"info": {"description": "synthetic LVIS"}, "licenses": [], "categories": cats}
            atomic_write_json(path, {**header, **parts})
            out["ann_files"][name] = path
        out["objects"][split] = manifest
    # the built-in catalog entry "lvis_evaluation_val" reads lvis/coco2017 + lvis/<minival json>
    lvis_dir = os.path.join(root, "lvis")
    atomic_write_json(os.path.join(lvis_dir, "lvis_v1_minival_inserted_image_name.json"),
                load_json(out["ann_files"]["lvis_v1_minival_inserted_image_name.json"]))
    shutil.copytree(os.path.join(root, "coco", "val2017"), os.path.join(lvis_dir, "coco2017", "val2017"),
                    dirs_exist_ok=True)
    return out


def load_json(path: str) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_odinw(
    root: str,
    seed: int = 0,
    num_images: int = 12,
    name: str = ODINW_AQUARIUM[0],
    version: str = ODINW_AQUARIUM[1],
    classes: Sequence[ShapeClass] = AQUARIUM_CLASSES,
    supercategory: str = "creatures",
    *,
    image_size: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """ODinW / Roboflow COCO export: ``odinw/<name>/<version>/{train,valid,test}/`` with the images,
    ``_annotations.coco.json`` (category 0 = the Roboflow background/supercategory entry) and
    ``annotations_without_background.json`` (category 0 removed), as GLIP/FIBER expect.
    """
    rng = np.random.default_rng([seed, 3])
    cat_ids = list(range(1, len(classes) + 1))
    cats = [{"id": 0, "name": supercategory, "supercategory": "none"}] + [
        {"id": cid, "name": c.name, "supercategory": supercategory} for cid, c in zip(cat_ids, classes)
    ]
    out: dict[str, Any] = {"ann_files": {}, "img_dirs": {}, "objects": {},
                           "categories": {cid: c.name for cid, c in zip(cat_ids, classes)}}
    for k, split in enumerate(("train", "valid", "test")):
        img_dir = os.path.join(root, "odinw", name, version, split)
        parts, manifest = _coco_split(rng, classes, cat_ids, img_dir, num_images, 100 * (k + 1),
                                      file_pattern="img_{:05d}_jpg.rf.synthetic.jpg", image_size=image_size)
        atomic_write_json(os.path.join(img_dir, "_annotations.coco.json"), {"categories": cats, **parts})
        path = os.path.join(img_dir, "annotations_without_background.json")
        atomic_write_json(path, {"categories": cats[1:], **parts})
        out["ann_files"][split] = path
        out["img_dirs"][split] = img_dir
        out["objects"][split] = manifest
    return out


# ---------------------------------------------------------------------------------------------------------- grounding
def _phrase_for(cls: ShapeClass, count: int) -> str:
    return f"a {cls.name}" if count == 1 else f"{'two' if count == 2 else 'three'} {cls.name}s"


# (head, joiner, tail as text, tail in the raw Flickr30k Entities markup)
_TEMPLATES = (
    ("A picture of ", " and ", " .", " ."),
    ("There is ", " next to ", " on a gray background .", " on [/EN#99/scene a gray background] ."),
)


def _grounded_sentences(
    objects: list[tuple[int, Box]], classes: Sequence[ShapeClass]
) -> list[tuple[str, list[tuple[int, int, int]], str]]:
    """Two sentences mentioning every class present (one phrase per class, covering all its boxes).

    Returns:
        per sentence: (text, [(class index, start, end)] phrase spans in sentence order, the same sentence in
        the raw Flickr30k Entities markup; entity id = class index + 1, the scene phrase has id 99).
    """
    present: list[int] = []
    for c, _ in objects:
        if c not in present:
            present.append(c)
    counts = {c: sum(1 for o, _ in objects if o == c) for c in present}
    sentences = []
    for t, (head, joiner, tail, tail_markup) in enumerate(_TEMPLATES):
        order = present if t == 0 else list(reversed(present))
        text, markup, spans = head, head, []
        for k, c in enumerate(order):
            if k:
                text += joiner
                markup += joiner
            phrase = _phrase_for(classes[c], counts[c])
            spans.append((c, len(text), len(text) + len(phrase)))
            text += phrase
            markup += f"[/EN#{c + 1}/other {phrase}]"
        sentences.append((text + tail, spans, markup + tail_markup))
    return sentences


def _voc_xml(file_name: str, width: int, height: int, objects: list[tuple[int, Box]]) -> str:
    parts = [f"<annotation><filename>{file_name}</filename>",
             f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>"]
    for c, (x1, y1, x2, y2) in objects:
        # the raw files are 1-based; the reader subtracts 1 as the official utilities do
        parts.append(f"<object><name>{c + 1}</name><bndbox><xmin>{x1 + 1}</xmin><ymin>{y1 + 1}</ymin>"
                     f"<xmax>{x2 + 1}</xmax><ymax>{y2 + 1}</ymax></bndbox></object>")
    parts.append("<object><name>99</name><nobndbox>0</nobndbox><scene>1</scene></object>")
    parts.append("</annotation>")
    return "".join(parts)


def _mdetr_records(
    objects: list[tuple[int, Box]],
    classes: Sequence[ShapeClass],
    sentence: tuple[str, list[tuple[int, int, int]], str],
    image_record: dict[str, Any],
    record_id: int,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    text, spans, _ = sentence
    span_of = {c: [s, e] for c, s, e in spans}
    image = dict(image_record, id=record_id, caption=text, tokens_positive_eval=[[[s, e]] for _, s, e in spans],
                 tokens_negative=[[0, len(text)]])
    anns = []
    for k, (c, box) in enumerate(objects):
        xywh = _xywh(box)
        anns.append({"id": record_id * 100 + k, "image_id": record_id, "category_id": 1, "bbox": xywh,
                     "area": xywh[2] * xywh[3], "iscrowd": 0, "tokens_positive": [span_of[c]],
                     "phrase_ids": [c + 1]})
    return image, anns


def write_flickr(root: str, seed: int = 0, num_images: int = 8, *, image_size: tuple[int, int] | None = None
                 ) -> dict[str, Any]:
    """Flickr30k: images ``flickr30k/flickr30k_images/{train,val,test}/<id>.jpg``, MDETR annotations
    ``mdetr_annotations/final_flickr_separateGT_{train,val,test}.json`` (one record per image x sentence), and
    the raw Flickr30k Entities files ``flickr30k/flickr30k/{Annotations/<id>.xml, Sentences/<id>.txt,
    train.txt, val.txt, test.txt}`` describing the same images.
    """
    rng = np.random.default_rng([seed, 4])
    raw = os.path.join(root, "flickr30k", "flickr30k")
    out: dict[str, Any] = {"ann_files": {}, "img_dirs": {}, "objects": {}, "entities_root": raw}
    for k, split in enumerate(("train", "val", "test")):
        img_dir = os.path.join(root, "flickr30k", "flickr30k_images", split)
        images, anns, ids = [], [], []
        manifest: dict[str, list[tuple[str, Box]]] = {}
        for i in range(num_images):
            flickr_id = str(1_000_000 * (k + 1) + i)
            n = int(rng.integers(2, 4))
            class_indices = rng.choice(len(SHAPE_CLASSES), size=n, replace=True)
            image, objects = draw_scene(rng, SHAPE_CLASSES, n, size=image_size, class_indices=class_indices)
            file_name = f"{flickr_id}.jpg"
            _save_image(image, os.path.join(img_dir, file_name))
            ids.append(flickr_id)
            manifest[file_name] = [(SHAPE_CLASSES[c].name, box) for c, box in objects]
            sentences = _grounded_sentences(objects, SHAPE_CLASSES)
            os.makedirs(os.path.join(raw, "Sentences"), exist_ok=True)
            os.makedirs(os.path.join(raw, "Annotations"), exist_ok=True)
            with open(os.path.join(raw, "Sentences", f"{flickr_id}.txt"), "w", encoding="utf-8") as f:
                f.write("\n".join(s[2] for s in sentences) + "\n")
            with open(os.path.join(raw, "Annotations", f"{flickr_id}.xml"), "w", encoding="utf-8") as f:
                f.write(_voc_xml(file_name, image.width, image.height, objects))
            base = {"file_name": file_name, "height": image.height, "width": image.width, "dataset_name": "flickr",
                    "original_img_id": int(flickr_id)}
            for sent_id, sentence in enumerate(sentences):
                record, record_anns = _mdetr_records(objects, SHAPE_CLASSES, sentence,
                                                     dict(base, sentence_id=sent_id), len(images) + 1 + 10000 * k)
                images.append(record)
                anns.extend(record_anns)
        with open(os.path.join(raw, f"{split}.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(ids) + "\n")
        path = os.path.join(root, "mdetr_annotations", f"final_flickr_separateGT_{split}.json")
        atomic_write_json(path, {"images": images, "annotations": anns,
                           "categories": [{"supercategory": "object", "id": 1, "name": "object"}]})
        out["ann_files"][split] = path
        out["img_dirs"][split] = img_dir
        out["objects"][split] = manifest
    return out


_REFEXP_FILES = {
    "refcoco": ("train", "val", "testA", "testB"),
    "refcoco+": ("train", "val", "testA", "testB"),
    "refcocog": ("train", "val", "test"),
}


def write_refexp(root: str, seed: int = 0, num_images: int = 8, *, image_size: tuple[int, int] | None = None
                 ) -> dict[str, Any]:
    """RefCOCO/RefCOCO+/RefCOCOg: images ``refcoco/train2014/COCO_train2014_<id>.jpg`` and MDETR files
    ``mdetr_annotations/finetune_<dataset>_<split>.json`` (refcocog test: ``finetune_refcocog_test_corrected.json``).
    Each record is one referring expression ("the red square on the left") with its single box.
    """
    rng = np.random.default_rng([seed, 5])
    img_dir = os.path.join(root, "refcoco", "train2014")
    out: dict[str, Any] = {"ann_files": {}, "img_dir": img_dir, "objects": {}}
    coco_id = 300_000
    for dataset, splits in _REFEXP_FILES.items():
        for split in splits:
            images, anns = [], []
            for _i in range(num_images):
                coco_id += 1
                n = int(rng.integers(1, 4))
                class_indices = rng.choice(len(SHAPE_CLASSES), size=n, replace=False)
                image, objects = draw_scene(rng, SHAPE_CLASSES, n, size=image_size, class_indices=class_indices)
                file_name = f"COCO_train2014_{coco_id:012d}.jpg"
                _save_image(image, os.path.join(img_dir, file_name))
                out["objects"][file_name] = [(SHAPE_CLASSES[c].name, box) for c, box in objects]
                for sent_id, (c, box) in enumerate(objects):
                    centre = (box[0] + box[2]) / 2
                    side = "left" if centre < image.width / 2 else "right"
                    text = f"the {SHAPE_CLASSES[c].name} on the {side}"
                    record_id = len(images) + 1
                    images.append({"file_name": file_name, "height": image.height, "width": image.width,
                                   "id": record_id, "original_id": coco_id, "caption": text,
                                   "dataset_name": dataset, "sentence_id": sent_id,
                                   "tokens_negative": [[0, len(text)]], "tokens_positive_eval": [[[0, len(text)]]]})
                    xywh = _xywh(box)
                    anns.append({"id": record_id, "image_id": record_id, "category_id": 1, "bbox": xywh,
                                 "area": xywh[2] * xywh[3], "iscrowd": 0, "original_id": coco_id * 10 + sent_id,
                                 "tokens_positive": [[0, len(text)]]})
            suffix = "test_corrected" if (dataset, split) == ("refcocog", "test") else split
            path = os.path.join(root, "mdetr_annotations", f"finetune_{dataset}_{suffix}.json")
            atomic_write_json(path, {"images": images, "annotations": anns,
                               "categories": [{"supercategory": "object", "id": 1, "name": "object"}]})
            out["ann_files"][f"{dataset}_{split}"] = path
    # catalog name "refexp_all_val": the three val splits together
    merged: dict[str, list] = {"images": [], "annotations": []}
    for dataset in _REFEXP_FILES:
        data = load_json(out["ann_files"][f"{dataset}_val"])
        offset = len(merged["images"])
        merged["images"] += [dict(img, id=img["id"] + offset) for img in data["images"]]
        merged["annotations"] += [dict(a, id=a["id"] + offset, image_id=a["image_id"] + offset)
                                  for a in data["annotations"]]
    path = os.path.join(root, "mdetr_annotations", "final_refexp_val.json")
    atomic_write_json(path, dict(merged, categories=[{"supercategory": "object", "id": 1, "name": "object"}]))
    out["ann_files"]["refexp_all_val"] = path
    return out


def write_mixed(root: str, seed: int = 0, num_images: int = 8, *, image_size: tuple[int, int] | None = None
                ) -> dict[str, Any]:
    """MDETR GoldG mixed data: ``mdetr_annotations/final_mixed_train_no_coco.json`` (and
    ``final_mixed_train.json``) with images from ``gqa/images/`` (data_source "vg") and
    ``refcoco/train2014/`` (data_source "coco")."""
    rng = np.random.default_rng([seed, 6])
    images, anns = [], []
    out: dict[str, Any] = {"ann_files": {}, "objects": {},
                           "img_dirs": {"vg": os.path.join(root, "gqa", "images"),
                                        "coco": os.path.join(root, "refcoco", "train2014")}}
    for i in range(num_images):
        source = "coco" if i % 3 == 2 else "vg"
        file_name = f"COCO_train2014_{900_000 + i:012d}.jpg" if source == "coco" else f"{2_400_000 + i}.jpg"
        n = int(rng.integers(1, 4))
        image, objects = draw_scene(rng, SHAPE_CLASSES, n, size=image_size)
        _save_image(image, os.path.join(out["img_dirs"][source], file_name))
        out["objects"][file_name] = [(SHAPE_CLASSES[c].name, box) for c, box in objects]
        sentence = _grounded_sentences(objects, SHAPE_CLASSES)[0]
        record, record_anns = _mdetr_records(
            objects, SHAPE_CLASSES, sentence,
            {"file_name": file_name, "height": image.height, "width": image.width, "data_source": source,
             "dataset_name": "mixed"}, i + 1)
        images.append(record)
        anns.extend(record_anns)
    data = {"images": images, "annotations": anns,
            "categories": [{"supercategory": "object", "id": 1, "name": "object"}]}
    for name in ("final_mixed_train_no_coco.json", "final_mixed_train.json"):
        path = os.path.join(root, "mdetr_annotations", name)
        atomic_write_json(path, data)
        out["ann_files"][name] = path
    return out


def write_objects365(root: str, seed: int = 0, num_images: int = 12, num_categories: int = 30, *,
                     image_size: tuple[int, int] | None = None) -> dict[str, Any]:
    """Objects365 in COCO JSON form: images ``Objects365/train/``, annotations
    ``Objects365/annotations/objects365_train.json`` (the catalog's ``object365_grounding_train`` and the JSON
    fallback of ``object365_dt_train``); the shape classes plus filler categories (for negative sampling)."""
    rng = np.random.default_rng([seed, 7])
    num_categories = max(num_categories, len(SHAPE_CLASSES))
    shape_ids = list(range(1, len(SHAPE_CLASSES) + 1))
    cats = [{"id": cid, "name": c.name} for cid, c in zip(shape_ids, SHAPE_CLASSES)]
    cats += [{"id": cid, "name": f"object {cid}"} for cid in range(len(SHAPE_CLASSES) + 1, num_categories + 1)]
    img_dir = os.path.join(root, "Objects365", "train")
    parts, manifest = _coco_split(rng, SHAPE_CLASSES, shape_ids, img_dir, num_images, 1,
                                  file_pattern="objects365_v2_{:08d}.jpg", image_size=image_size)
    path = os.path.join(root, "Objects365", "annotations", "objects365_train.json")
    atomic_write_json(path, {"categories": cats, **parts})
    return {"ann_files": {"train": path}, "img_dirs": {"train": img_dir}, "objects": {"train": manifest},
            "categories": {c["id"]: c["name"] for c in cats}}


def _write_tsv(path: str, rows: Sequence[Sequence[str]]) -> None:
    """Write a TSV and its ``.lineidx`` (byte offset of every row)."""
    offsets, pos = [], 0
    with open(path, "wb") as f:
        for row in rows:
            line = ("\t".join(row) + "\n").encode("utf-8")
            offsets.append(pos)
            f.write(line)
            pos += len(line)
    with open(os.path.splitext(path)[0] + ".lineidx", "w", encoding="utf-8") as f:
        f.write("".join(f"{o}\n" for o in offsets))


def write_objects365_tsv(root: str, json_manifest: dict[str, Any]) -> dict[str, Any]:
    """Objects365 in upstream's TSV form, from the COCO-JSON copy written by :func:`write_objects365`:
    ``Objects365/objects365_train_vgoiv6.cas2000.yaml`` naming ``images.tsv`` (key, base64 JPEG),
    ``train.label.tsv`` (key, JSON list of {"rect": [x1, y1, x2, y2], "class": name}), ``train.hw.tsv``,
    ``train.label.linelist.cas.2000.tsv`` (row numbers; the first row is listed twice, as class-aware
    sampling repeats rows) and ``object365_vgoiv6_class2ind.json`` (name -> index), each TSV with its
    ``.lineidx``.
    """
    folder = os.path.join(root, "Objects365")
    data = load_json(json_manifest["ann_files"]["train"])
    names = {c["id"]: c["name"] for c in data["categories"]}
    anns: dict[int, list[dict[str, Any]]] = {}
    for ann in data["annotations"]:
        x, y, w, h = ann["bbox"]
        anns.setdefault(ann["image_id"], []).append({"rect": [x, y, x + w - 1, y + h - 1],
                                                     "class": names[ann["category_id"]]})
    image_rows, label_rows, hw_rows = [], [], []
    for img in data["images"]:
        key = os.path.splitext(img["file_name"])[0]
        with open(os.path.join(json_manifest["img_dirs"]["train"], img["file_name"]), "rb") as f:
            image_rows.append([key, base64.b64encode(f.read()).decode("ascii")])
        label_rows.append([key, json.dumps(anns.get(img["id"], []))])
        hw_rows.append([key, json.dumps([{"height": img["height"], "width": img["width"]}])])
    _write_tsv(os.path.join(folder, "images.tsv"), image_rows)
    _write_tsv(os.path.join(folder, "train.label.tsv"), label_rows)
    _write_tsv(os.path.join(folder, "train.hw.tsv"), hw_rows)
    linelist = os.path.join(folder, "train.label.linelist.cas.2000.tsv")
    with open(linelist, "w", encoding="utf-8") as f:
        f.write("".join(f"{i}\n" for i in list(range(len(label_rows))) + [0]))
    atomic_write_json(os.path.join(folder, "object365_vgoiv6_class2ind.json"),
                {name: cid for cid, name in sorted(names.items())})
    yaml_file = os.path.join(folder, "objects365_train_vgoiv6.cas2000.yaml")
    with open(yaml_file, "w", encoding="utf-8") as f:
        f.write("img: images.tsv\nlabel: train.label.tsv\nhw: train.hw.tsv\n"
                "linelist: train.label.linelist.cas.2000.tsv\nlabelmap: object365_vgoiv6_class2ind.json\n")
    return {"yaml_file": yaml_file, "num_rows": len(label_rows) + 1,
            "objects": {os.path.splitext(k)[0]: v for k, v in json_manifest["objects"]["train"].items()}}


def make_all(
    root: str,
    seed: int = 0,
    num_images: int = 12,
    lvis_categories: int = 40,
    objects365_categories: int = 30,
    image_size: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Write every synthetic data set under ``root`` (see the module docstring).

    Args:
        root: output folder (created).
        seed: random seed; same seed -> same files.
        num_images: images per split of each data set.
        lvis_categories: LVIS category count (a few hundred exercises chunked prompts).
        objects365_categories: Objects365 category count.
        image_size: (width, height) of every image; None draws random sizes in [128, 200] (both
            orientations, which exercises aspect-ratio grouping).

    Returns:
        Per data set, what its writer returned (annotation files, image folders, drawn objects); also
        written to ``root/manifest.json``.
    """
    os.makedirs(root, exist_ok=True)
    manifest = {
        "root": os.path.abspath(root),
        "coco": write_coco(root, seed, num_images, image_size=image_size),
        "lvis": write_lvis(root, seed, num_images, lvis_categories, image_size=image_size),
        "odinw": write_odinw(root, seed, num_images, image_size=image_size),
        "flickr": write_flickr(root, seed, max(2, num_images // 2), image_size=image_size),
        "refexp": write_refexp(root, seed, max(2, num_images // 3), image_size=image_size),
        "mixed": write_mixed(root, seed, num_images, image_size=image_size),
        "objects365": write_objects365(root, seed, num_images, objects365_categories, image_size=image_size),
    }
    manifest["objects365_tsv"] = write_objects365_tsv(root, manifest["objects365"])
    atomic_write_json(os.path.join(root, "manifest.json"), manifest)
    return manifest
