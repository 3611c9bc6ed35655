"""Task-config rules at evaluation time: which MODEL.* keys apply, which are ignored, which are refused."""

import pytest

from maskrcnn_benchmark.config import get_cfg
from maskrcnn_benchmark.config.keys import flatten, get_key, set_key
from maskrcnn_benchmark.config.task_config import classify_task_model_keys, prepare_task_config


def _cfg():
    return get_cfg()


def test_key_helpers():
    cfg = _cfg()
    set_key(cfg, "MODEL.ATSS.NMS_TH", 0.25)
    assert get_key(cfg, "MODEL.ATSS.NMS_TH") == 0.25 == cfg.MODEL.ATSS.NMS_TH
    flat = flatten(cfg.MODEL.ATSS, "MODEL.ATSS")
    assert flat["MODEL.ATSS.NMS_TH"] == 0.25 and all(k.startswith("MODEL.ATSS.") for k in flat)
    assert "MODEL.SWINT.EMBED_DIM" in flatten(cfg.MODEL, "MODEL")
    with pytest.raises(KeyError):
        get_key(cfg, "MODEL.ATSS.NOPE")


def test_task_config_keys_applied_ignored_rejected():
    base = _cfg()
    task = _cfg()
    task.MODEL.DYHEAD.NUM_CLASSES = 8
    task.MODEL.FCOS.NUM_CLASSES = 8
    task.MODEL.ATSS.INFERENCE_TH = 0.3
    task.MODEL.ATSS.DETECTIONS_PER_IMG = 300
    task.MODEL.RETINANET.DETECTIONS_PER_IMG = 300
    keys = classify_task_model_keys(base, task)
    assert keys["applied"] == ["MODEL.ATSS.DETECTIONS_PER_IMG", "MODEL.ATSS.INFERENCE_TH"]
    assert set(keys["ignored"]) == {"MODEL.DYHEAD.NUM_CLASSES", "MODEL.FCOS.NUM_CLASSES",
                                    "MODEL.RETINANET.DETECTIONS_PER_IMG"}
    assert keys["rejected"] == []
    prepared = prepare_task_config(base, task, "task.yaml")
    assert prepared.MODEL.DYHEAD.NUM_CLASSES == base.MODEL.DYHEAD.NUM_CLASSES  # placeholder not applied
    assert prepared.MODEL.ATSS.INFERENCE_TH == 0.3
    task.MODEL.SWINT.EMBED_DIM = 64
    with pytest.raises(ValueError, match=r"task.yaml: .*MODEL.SWINT.EMBED_DIM=64"):
        prepare_task_config(base, task, "task.yaml")

