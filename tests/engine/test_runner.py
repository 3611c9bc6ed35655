"""Runner helpers: tuning presets, few-shot argument parsing, config globs."""

import pytest

from maskrcnn_benchmark.engine.defaults import expand_config_list
from maskrcnn_benchmark.engine.finetune import parse_shot_epoch_copy
from maskrcnn_benchmark.engine.runner import TUNING_MODES, apply_tuning_mode


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
