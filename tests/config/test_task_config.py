"""Task-config rules at evaluation time: which MODEL.* keys apply, which are ignored, which are refused."""

from pathlib import Path

import pytest

from maskrcnn_benchmark.config import get_cfg
from maskrcnn_benchmark.config.keys import flatten, get_key, set_key
from maskrcnn_benchmark.config.task_config import classify_task_model_keys, prepare_task_config

REPO = Path(__file__).resolve().parents[2]


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


def test_upstream_task_configs_sort_their_model_keys():
    """configs/lvis/minival.yaml sets four NUM_CLASSES "placeholders" (task-configs.md 1.1) and the README's
    LVIS command adds DETECTIONS_PER_IMG 300 for four heads (task-configs.md 4.4): only ATSS's takes effect
    (DESIGN.md "Task configs are honoured"), the rest cannot change the loaded FIBER model."""
    base = get_cfg()
    base.merge_from_file(str(REPO / "configs" / "e2e_dyhead_SwinT_B_FPN_lvis_finetuning_fusion_backbone.yaml"))
    task = base.clone()
    task.merge_from_file(str(REPO / "configs" / "lvis" / "minival.yaml"))
    task.merge_from_list(["MODEL.RETINANET.DETECTIONS_PER_IMG", 300, "MODEL.FCOS.DETECTIONS_PER_IMG", 300,
                          "MODEL.ATSS.DETECTIONS_PER_IMG", 300, "MODEL.ROI_HEADS.DETECTIONS_PER_IMG", 300])
    keys = classify_task_model_keys(base, task)
    assert keys == {
        "applied": ["MODEL.ATSS.DETECTIONS_PER_IMG"],
        "ignored": ["MODEL.ATSS.NUM_CLASSES", "MODEL.DYHEAD.NUM_CLASSES", "MODEL.FCOS.DETECTIONS_PER_IMG",
                    "MODEL.FCOS.NUM_CLASSES", "MODEL.RETINANET.DETECTIONS_PER_IMG", "MODEL.ROI_BOX_HEAD.NUM_CLASSES",
                    "MODEL.ROI_HEADS.DETECTIONS_PER_IMG"],
        "rejected": [],
    }
    prepared = prepare_task_config(base, task, "configs/lvis/minival.yaml")
    assert prepared.MODEL.DYHEAD.NUM_CLASSES == 81  # upstream-facts.md 2.1: the model keeps its 80 slots
    assert prepared.MODEL.ATSS.DETECTIONS_PER_IMG == 300


def test_refexp_post_processing_keys_take_effect():
    # task-configs.md 4.11: the RefExp evaluation passes MODEL.ATSS.{PRE_NMS_TOP_N 3000, DETECTIONS_PER_IMG 100,
    # INFERENCE_TH 0.0} on top of the task yaml
    base = get_cfg()
    base.merge_from_file(str(REPO / "configs" / "e2e_dyhead_SwinT_B_FPN_coco_finetuning_fusion_backbone.yaml"))
    task = base.clone()
    task.merge_from_file(str(REPO / "configs" / "refexp" / "_refcoco_testA.yaml"))
    task.merge_from_list(["MODEL.ATSS.PRE_NMS_TOP_N", 3000, "MODEL.ATSS.DETECTIONS_PER_IMG", 100,
                          "MODEL.ATSS.INFERENCE_TH", 0.0])
    prepared = prepare_task_config(base, task, "_refcoco_testA.yaml")
    assert (prepared.MODEL.ATSS.PRE_NMS_TOP_N, prepared.MODEL.ATSS.DETECTIONS_PER_IMG,
            prepared.MODEL.ATSS.INFERENCE_TH) == (3000, 100, 0.0)
    assert classify_task_model_keys(base, task)["applied"] == ["MODEL.ATSS.INFERENCE_TH",
                                                                "MODEL.ATSS.PRE_NMS_TOP_N"]  # 100 is the default
