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
