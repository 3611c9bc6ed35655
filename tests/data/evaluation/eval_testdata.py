"""Ground-truth and prediction builders shared by the evaluator tests (seeded, small, CPU only)."""

import numpy as np


def make_coco_gt(seed=0, num_images=40, category_ids=(1, 3, 7), crowd_every=17):
    rng = np.random.default_rng(seed)
    images = [{"id": i + 1, "width": 640, "height": 480, "file_name": f"{i + 1}.jpg"} for i in range(num_images)]
    categories = [{"id": c, "name": f"class{c}", "supercategory": "thing"} for c in category_ids]
    annotations = []
    for image in images:
        for _ in range(int(rng.integers(0, 6))):
            x, y = rng.uniform(0, 500), rng.uniform(0, 380)
            w, h = rng.uniform(4, 140, 2)
            annotations.append({
                "id": len(annotations) + 1, "image_id": image["id"], "category_id": int(rng.choice(category_ids)),
                "bbox": [float(x), float(y), float(w), float(h)], "area": float(w * h),
                "iscrowd": int(len(annotations) % crowd_every == 5),
            })
    return {"images": images, "categories": categories, "annotations": annotations}


def make_lvis_gt(seed=0, num_images=50, num_categories=12):
    rng = np.random.default_rng(seed)
    categories = [{"id": c + 1, "name": f"c{c + 1}", "frequency": "rcf"[c % 3], "synset": f"s{c}"}
                  for c in range(num_categories)]
    images, annotations = [], []
    for i in range(num_images):
        present = [int(c) for c in rng.choice(np.arange(1, num_categories + 1), size=3, replace=False)]
        negatives = [c for c in range(1, num_categories + 1) if c not in present][:4]
        images.append({"id": i + 1, "width": 640, "height": 480, "neg_category_ids": negatives,
                       "not_exhaustive_category_ids": [present[0]] if i % 5 == 0 else []})
        for c in present:
            for _ in range(int(rng.integers(1, 4))):
                x, y = rng.uniform(0, 500), rng.uniform(0, 380)
                w, h = rng.uniform(4, 140, 2)
                annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": c,
                                    "bbox": [float(x), float(y), float(w), float(h)], "area": float(w * h)})
    return {"images": images, "categories": categories, "annotations": annotations}


def noisy_predictions(gt, seed=1, per_box=3, noise=5.0, category_ids=None):
    """Jittered copies of every GT box with random categories and scores, plus pure false positives."""
    rng = np.random.default_rng(seed)
    category_ids = category_ids or [c["id"] for c in gt["categories"]]
    predictions = []
    for annotation in gt["annotations"]:
        for _ in range(per_box):
            box = np.asarray(annotation["bbox"]) + rng.normal(0, noise, 4)
            box[2:] = np.abs(box[2:]) + 1
            category = annotation["category_id"] if rng.uniform() < 0.6 else int(rng.choice(category_ids))
            predictions.append({"image_id": annotation["image_id"], "category_id": int(category),
                                "bbox": [float(v) for v in box], "score": float(rng.uniform())})
    for image in gt["images"][::3]:
        predictions.append({"image_id": image["id"], "category_id": int(rng.choice(category_ids)),
                            "bbox": [10.0, 10.0, 30.0, 30.0], "score": float(rng.uniform())})
    return predictions


def perfect_predictions(gt):
    return [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": list(a["bbox"]), "score": 1.0}
            for a in gt["annotations"] if not a.get("iscrowd", 0)]


def one_image_coco_gt():
    """One 100x100 image, two 20x20 boxes of category 5 ("cat")."""
    return {
        "images": [{"id": 1, "width": 100, "height": 100}],
        "categories": [{"id": 5, "name": "cat"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 5, "bbox": [10, 10, 20, 20], "area": 400, "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 5, "bbox": [60, 60, 20, 20], "area": 400, "iscrowd": 0},
        ],
    }


def structured_coco_case():
    """Boxes at exact IoU thresholds, a duplicate, crowd ground truth, >100 detections on one image."""
    gt = one_image_coco_gt()
    gt["annotations"].append({"id": 3, "image_id": 1, "category_id": 5, "bbox": [0, 50, 40, 40], "area": 1600,
                              "iscrowd": 1})
    predictions = []
    for step in range(12):  # shifted copies crossing the 0.5 ... 0.95 IoU thresholds
        predictions.append({"image_id": 1, "category_id": 5, "bbox": [10 + step, 10, 20, 20], "score": 1 - step / 20})
    predictions.append({"image_id": 1, "category_id": 5, "bbox": [10, 10, 20, 20], "score": 0.5})  # duplicate
    predictions.append({"image_id": 1, "category_id": 5, "bbox": [5, 55, 20, 20], "score": 0.95})  # on crowd
    predictions += [{"image_id": 1, "category_id": 5, "bbox": [60, 60, 20, 20], "score": 0.01 * (i % 7)}
                    for i in range(120)]
    return gt, predictions


def single_lvis_gt():
    """One 1000x1000 LVIS image: one box of frequent category 1; rare category 2 is a negative."""
    return {
        "images": [{"id": 1, "width": 1000, "height": 1000, "neg_category_ids": [2],
                    "not_exhaustive_category_ids": []}],
        "categories": [{"id": 1, "name": "a", "frequency": "f"}, {"id": 2, "name": "b", "frequency": "r"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [500, 500, 50, 50], "area": 2500}],
    }
