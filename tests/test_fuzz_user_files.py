"""Seeded fuzzing of the files users hand us: corrupted COCO / LVIS JSON (annotations and predictions), YAML
configs and checkpoint bytes go through the library entry points the tools call.

Every case must either load (the corruption left a valid file) or raise one of our errors: a ValueError,
FileNotFoundError, KeyError or TypeError, raised by maskrcnn_benchmark's own code (not from inside json, yaml,
torch, pycocotools, ...), whose message names the file. Everything runs in-process and takes seconds.
"""

import copy
import gzip
import json
import os
import random
import traceback
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
PACKAGE = str(REPO / "maskrcnn_benchmark") + os.sep
TINY = REPO / "configs" / "tiny" / "fiber_tiny.yaml"
OUR_ERRORS = (ValueError, FileNotFoundError, KeyError, TypeError)
JUNK = [None, True, -1, 0, 2.5, float("nan"), float("inf"), -1e308, "", "x", "1", [], {}, [1, 2, 3], [[1]],
        {"id": 1}, [None, None, None, None], [1, 2, 3, float("nan")]]


# ---------------------------------------------------------------------------------------------------
# Mutations
# ---------------------------------------------------------------------------------------------------


def _paths(node, prefix=()):
    """Every (container, key) position in a JSON tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield prefix + (key,)
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield prefix + (index,)
            yield from _paths(value, prefix + (index,))


def _mutate_tree(rng, data):
    data = copy.deepcopy(data)
    for _ in range(rng.choice([1, 1, 2, 3])):
        positions = list(_paths(data))
        if not positions:
            return rng.choice(JUNK)
        *parent_path, key = rng.choice(positions)
        parent = data
        for step in parent_path:
            parent = parent[step]
        action = rng.random()
        if action < 0.6:
            parent[key] = copy.deepcopy(rng.choice(JUNK))
        elif action < 0.8:
            del parent[key]
        elif isinstance(parent, list):
            parent.append(copy.deepcopy(parent[key]))  # duplicate (repeated ids)
        else:
            parent[key] = [parent[key]]
    return data


def _mutate_text(rng, text: bytes) -> bytes:
    kind = rng.random()
    if kind < 0.3:
        return text[: rng.randrange(len(text))]
    if kind < 0.6:
        data = bytearray(text)
        for _ in range(rng.choice([1, 2, 5])):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    if kind < 0.75:
        return b""
    if kind < 0.9:
        return gzip.compress(text)[: rng.randrange(5, 40)]
    return bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 200)))


def _write(tmp_path, name, rng, valid_data, text_share=0.35):
    """A corrupted copy of ``valid_data`` as JSON: a tree mutation, or a byte-level one."""
    path = tmp_path / name
    if rng.random() < text_share:
        path.write_bytes(_mutate_text(rng, json.dumps(valid_data).encode()))
    else:
        path.write_text(json.dumps(_mutate_tree(rng, valid_data)))
    return path


def _assert_ours(error: BaseException, path, case):
    frames = traceback.extract_tb(error.__traceback__)
    where = frames[-1].filename if frames else ""
    assert isinstance(error, OUR_ERRORS), f"case {case}: {type(error).__name__} from {where}: {error}"
    assert where.startswith(PACKAGE), f"case {case}: {type(error).__name__} raised inside {where}: {error}"
    message = str(error.args[0] if isinstance(error, KeyError) and error.args else error)
    # (a valid ground truth can make the in-memory predictions wrong: those errors name "predictions")
    assert str(path) in message or message.startswith("predictions: "), \
        f"case {case}: the message does not name {path}: {message}"


def _run_case(function, path, case):
    try:
        function()
    except Exception as error:  # noqa: BLE001 - the test classifies every error
        _assert_ours(error, path, case)
        return type(error).__name__
    return "loaded"


# ---------------------------------------------------------------------------------------------------
# Valid seeds
# ---------------------------------------------------------------------------------------------------


def _coco_gt():
    images = [{"id": i, "file_name": f"{i}.jpg", "width": 64, "height": 48} for i in (1, 2, 3)]
    categories = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]
    annotations = [{"id": k + 1, "image_id": 1 + k % 3, "category_id": 1 + k % 2, "bbox": [2.0 + k, 3.0, 10.0, 12.0],
                    "area": 120.0, "iscrowd": 0} for k in range(5)]
    return {"images": images, "annotations": annotations, "categories": categories}


def _lvis_gt():
    gt = _coco_gt()
    for category, frequency in zip(gt["categories"], "rf"):
        category["frequency"] = frequency
    for image in gt["images"]:
        image.update(neg_category_ids=[2] if image["id"] == 3 else [], not_exhaustive_category_ids=[],
                     coco_url=f"http://x/val2017/{image['id']}.jpg")
    for annotation in gt["annotations"]:
        del annotation["iscrowd"]
    return gt


def _predictions():
    return [{"image_id": 1 + k % 3, "category_id": 1 + k % 2, "bbox": [2.0 + k, 3.0, 10.0, 12.0],
             "score": 0.9 - k / 10} for k in range(6)]


# ---------------------------------------------------------------------------------------------------
# The fuzz cases
# ---------------------------------------------------------------------------------------------------


def test_corrupted_coco_and_lvis_annotation_files(tmp_path):
    from maskrcnn_benchmark.data.datasets import COCODataset, LvisDetection
    from maskrcnn_benchmark.data.evaluation import evaluate_coco_bbox, evaluate_lvis

    rng = random.Random(0)
    outcomes = {}
    for case in range(120):
        lvis = case % 3 == 2
        path = _write(tmp_path, f"ann{case}.json", rng, _lvis_gt() if lvis else _coco_gt())
        if lvis:
            calls = [lambda p=path: LvisDetection(str(p), str(tmp_path)),
                     lambda p=path: evaluate_lvis(str(p), _predictions(), backend=rng.choice(["lvis", "faster"]))]
        else:
            calls = [lambda p=path: COCODataset(str(p), str(tmp_path)),
                     lambda p=path: evaluate_coco_bbox(str(p), _predictions(),
                                                       backend=rng.choice(["pycocotools", "faster"]))]
        for call in calls:
            result = _run_case(call, path, case)
            outcomes[result] = outcomes.get(result, 0) + 1
    assert outcomes.get("ValueError", 0) > 100 and outcomes.get("loaded", 0) > 5, outcomes


def test_corrupted_prediction_files(tmp_path):
    from maskrcnn_benchmark.data.evaluation import evaluate_coco_bbox, evaluate_lvis

    rng = random.Random(1)
    coco_gt, lvis_gt = _coco_gt(), _lvis_gt()
    outcomes = {}
    for case in range(100):
        path = _write(tmp_path, f"bbox{case}.json", rng, _predictions(), text_share=0.25)
        if case % 2:
            call = lambda p=path: evaluate_lvis(lvis_gt, str(p), backend=rng.choice(["lvis", "faster"]))  # noqa: E731
        else:
            call = lambda p=path: evaluate_coco_bbox(coco_gt, str(p),  # noqa: E731
                                                     backend=rng.choice(["pycocotools", "faster"]))
        result = _run_case(call, path, case)
        outcomes[result] = outcomes.get(result, 0) + 1
    assert outcomes.get("ValueError", 0) > 60 and outcomes.get("loaded", 0) > 3, outcomes


def _mutate_yaml(rng, text: str) -> str:
    lines = text.splitlines()
    kind = rng.random()
    if kind < 0.25:  # a value replaced by junk
        index = rng.choice([i for i, line in enumerate(lines) if ":" in line and not line.rstrip().endswith(":")])
        key = lines[index].split(":")[0]
        junk = rng.choice(["", "[", "{a: 1}", "-1", "1e999", "nan", "True", "'x'", "[1, [2]]", "!!python/none",
                           "*alias", "(1, 2", "0x10", "~"])
        lines[index] = f"{key}: {junk}"
    elif kind < 0.4:  # indentation broken
        index = rng.randrange(len(lines))
        lines[index] = " " * rng.choice([1, 3, 7]) + lines[index].lstrip()
    elif kind < 0.55:  # a line removed or duplicated
        index = rng.randrange(len(lines))
        if rng.random() < 0.5:
            del lines[index]
        else:
            lines.insert(index, lines[index])
    elif kind < 0.7:  # an unknown key
        lines.append(rng.choice(["MODEL:\n  NOT_A_KEY: 1", "NOPE: 3", "SOLVER:\n  BASE_LR: [1, 2]",
                                 "INPUT:\n  MIN_SIZE_TEST: -5", "DATASETS:\n  REGISTER: 7"]))
    else:
        data = bytearray("\n".join(lines).encode())
        for _ in range(rng.choice([1, 3, 8])):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return data.decode("utf-8", errors="replace") if rng.random() < 0.5 else data.decode("latin-1")
    return "\n".join(lines) + "\n"


def test_corrupted_yaml_configs(tmp_path):
    if not TINY.is_file():
        pytest.skip(f"{TINY} is absent")
    from maskrcnn_benchmark.config import load_config

    rng = random.Random(2)
    text = TINY.read_text()
    outcomes = {}
    for case in range(100):
        path = tmp_path / f"config{case}.yaml"
        if case % 10 == 9:
            path.write_bytes(_mutate_text(rng, text.encode()))
        else:
            path.write_text(_mutate_yaml(rng, text), encoding="utf-8", errors="surrogateescape")
        result = _run_case(lambda p=path: load_config(str(p)), path, case)
        outcomes[result] = outcomes.get(result, 0) + 1
    assert outcomes.get("loaded", 0) > 5 and sum(v for k, v in outcomes.items() if k != "loaded") > 50, outcomes


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_corrupted_checkpoint_bytes(tmp_path):
    import io

    from maskrcnn_benchmark.utils.checkpoint import extract_state_dict, load_checkpoint_file

    rng = random.Random(3)
    seeds = []
    for zipped in (True, False):
        buffer = io.BytesIO()
        torch.save({"model": {"backbone.weight": torch.arange(12.0).reshape(3, 4), "head.bias": torch.ones(3)},
                    "iteration": 7}, buffer, _use_new_zipfile_serialization=zipped)
        seeds.append(buffer.getvalue())
    outcomes = {}
    for case in range(100):
        path = tmp_path / f"weights{case}.pth"
        path.write_bytes(_mutate_text(rng, seeds[case % 2]) if case % 4 else
                         bytes(rng.getrandbits(8) for _ in range(rng.choice([1, 64, 4096]))))

        def load(p=path):
            extract_state_dict(load_checkpoint_file(str(p)), source=str(p))

        result = _run_case(load, path, case)
        outcomes[result] = outcomes.get(result, 0) + 1
    assert outcomes.get("ValueError", 0) > 50, outcomes
