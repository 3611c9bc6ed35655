"""Runner helpers: tuning presets, task-config key rules, few-shot argument parsing, config globs."""

import pytest

from maskrcnn_benchmark.engine.defaults import expand_config_list
from maskrcnn_benchmark.engine.finetune import parse_shot_epoch_copy
from maskrcnn_benchmark.engine.runner import (
    TUNING_MODES,
    apply_tuning_mode,
    classify_task_model_keys,
    prepare_task_config,
)


def _cfg():
    from maskrcnn_benchmark.config import cfg

    out = cfg.clone()
    out.defrost()
    return out


@pytest.mark.parametrize("mode", sorted(TUNING_MODES))
def test_tuning_modes_set_freezing(mode):
    cfg = _cfg()
    cfg.SOLVER.TUNING_HIGHLEVEL_OVERRIDE = mode
    apply_tuning_mode(cfg)
    preset = TUNING_MODES[mode]
    assert cfg.MODEL.BACKBONE.FREEZE == preset["backbone"]
    assert cfg.MODEL.LANGUAGE_BACKBONE.FREEZE == preset["language"]
    assert cfg.MODEL.RPN.FREEZE == preset["rpn"]
    assert cfg.MODEL.DYHEAD.FUSE_CONFIG.ADD_LINEAR_LAYER == preset["linear_layer"]


def test_tuning_presets_match_upstream_table():
    assert TUNING_MODES["full"] == dict(backbone=False, fpn=False, rpn=False, linear_prob=False, linear_layer=False,
                                        language=False)
    assert TUNING_MODES["language_prompt_v2"]["linear_layer"] and TUNING_MODES["language_prompt_v2"]["language"]
    assert not TUNING_MODES["language_prompt_v1"]["language"]
    cfg = _cfg()
    cfg.SOLVER.TUNING_HIGHLEVEL_OVERRIDE = "prompt_v9"
    with pytest.raises(ValueError, match="prompt_v9"):
        apply_tuning_mode(cfg)


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


def test_shot_epoch_copy_and_globs(tmp_path):
    assert parse_shot_epoch_copy("3_200_4") == (3, 200, 4)
    assert parse_shot_epoch_copy(None) is None
    with pytest.raises(ValueError, match="3_200"):
        parse_shot_epoch_copy("3-200-4")
    for name in ("b.yaml", "a.yaml", "c.txt"):
        (tmp_path / name).write_text("x: 1\n")
    found = expand_config_list(f"{tmp_path}/*.yaml,{tmp_path}/a.yaml", "--task_config")
    assert [p.rsplit("/", 1)[1] for p in found] == ["a.yaml", "b.yaml"]
    with pytest.raises(FileNotFoundError, match="--task_config: .*missing.yaml"):
        expand_config_list(f"{tmp_path}/missing.yaml", "--task_config")
