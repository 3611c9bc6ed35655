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


# SOLVER.TUNING_HIGHLEVEL_OVERRIDE, as upstream's finetune.py sets it (upstream-facts.md 3.3 names the modes;
# the values are those of FIBER fine_grained/tools/finetune.py ``tuning_highlevel_override`` @ 042fb18, the
# same in GLIP tools/finetune.py). Columns: BACKBONE.FREEZE, FPN.FREEZE, RPN.FREEZE, LINEAR_PROB,
# DYHEAD.FUSE_CONFIG.ADD_LINEAR_LAYER, LANGUAGE_BACKBONE.FREEZE.
UPSTREAM_TUNING_TABLE = {
    "full": (False, False, False, False, False, False),
    "linear_prob": (True, True, False, True, False, True),
    "language_prompt_v1": (True, True, True, False, False, False),
    "language_prompt_v2": (True, True, True, False, True, True),
    "language_prompt_v3": (True, True, True, True, False, False),
    "language_prompt_v4": (True, True, True, True, True, True),
}


@pytest.mark.parametrize("mode", sorted(UPSTREAM_TUNING_TABLE))
def test_tuning_modes_set_upstreams_freezing(mode):
    cfg = _cfg()
    cfg.SOLVER.TUNING_HIGHLEVEL_OVERRIDE = mode
    cfg.MODEL.DYHEAD.USE_CHECKPOINT = True
    apply_tuning_mode(cfg)
    got = (cfg.MODEL.BACKBONE.FREEZE, cfg.MODEL.FPN.FREEZE, cfg.MODEL.RPN.FREEZE, cfg.MODEL.LINEAR_PROB,
           cfg.MODEL.DYHEAD.FUSE_CONFIG.ADD_LINEAR_LAYER, cfg.MODEL.LANGUAGE_BACKBONE.FREEZE)
    assert got == UPSTREAM_TUNING_TABLE[mode]
    # upstream turns the DyHead's gradient checkpointing off for linear probing only
    assert cfg.MODEL.DYHEAD.USE_CHECKPOINT == (mode != "linear_prob")


def test_tuning_mode_none_and_unknown():
    cfg = _cfg()
    before = cfg.dump()
    for empty in (None, ""):
        cfg.SOLVER.TUNING_HIGHLEVEL_OVERRIDE = empty
        apply_tuning_mode(cfg)
        cfg.SOLVER.TUNING_HIGHLEVEL_OVERRIDE = None
        assert cfg.dump() == before
    assert set(TUNING_MODES) == set(UPSTREAM_TUNING_TABLE)
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
