"""Every shipped YAML merges into the defaults; merge errors name the key and the file; validation works."""

import json
import logging
import re
from pathlib import Path

import pytest
from _published import PUBLISHED_TRAINING_YAMLS

from maskrcnn_benchmark.config import (
    INERT_KEYS,
    ConfigTypeError,
    UnknownConfigKeyError,
    get_cfg,
    load_config,
    validate_config,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIGS = REPO_ROOT / "configs"
SPEC = REPO_ROOT / ".." / "shared" / "spec"
TASK_DIRS = {"lvis", "flickr", "refexp", "odinw", "odinw_13", "odinw_35"}
PRETRAIN = CONFIGS / "pretrain" / "mixed_nococo_flickr_objects365.yaml"

ALL_YAMLS = sorted(CONFIGS.rglob("*.yaml"))
TASK_YAMLS = [p for p in ALL_YAMLS if p.relative_to(CONFIGS).parts[0] in TASK_DIRS]
MODEL_YAMLS = [p for p in ALL_YAMLS if p not in TASK_YAMLS]
UPSTREAM_MODEL_YAMLS = PUBLISHED_TRAINING_YAMLS
UPSTREAM_TASK_YAMLS = [
    "lvis/minival.yaml",
    "lvis/val.yaml",
    "flickr/test.yaml",
    "flickr/val.yaml",
    "refexp/_refcoco_testA.yaml",
    "refexp/_refcoco_testB.yaml",
    "refexp/_refcoco+_testA.yaml",
    "refexp/_refcoco+_testB.yaml",
    "refexp/_refcocog_test.yaml",
    "odinw/Aquarium_Aquarium_Combined.v2-raw-1024.coco.yaml",
]


def _rel(path):
    return str(path.relative_to(REPO_ROOT))


def test_upstream_config_files_exist():
    missing = [p for p in UPSTREAM_MODEL_YAMLS + UPSTREAM_TASK_YAMLS if not (CONFIGS / p).is_file()]
    assert not missing


@pytest.mark.parametrize("path", MODEL_YAMLS, ids=_rel)
def test_model_yaml_merges_and_validates(path):
    cfg = get_cfg()
    cfg.merge_from_file(str(path))
    validate_config(cfg)


@pytest.mark.parametrize("path", TASK_YAMLS, ids=_rel)
def test_task_yaml_merges_on_model_yaml(path):
    """As test_grounding_net does: model config, then the task config, then command-line opts."""
    cfg = load_config(str(PRETRAIN), task_configs=[str(path)], opts=["TEST.IMS_PER_BATCH", "1"])
    assert cfg.TEST.IMS_PER_BATCH == 1
    assert len(cfg.DATASETS.TEST) >= 1


def test_fiber_values_after_merge():
    refcoco = load_config(str(CONFIGS / "refcoco.yaml"))
    assert refcoco.MODEL.BACKBONE.FUSION_VERSION == "v3"
    assert refcoco.AUGMENT.FLIP_PROB_TRAIN == 0.0
    assert refcoco.MODEL.SWINT.DEPTHS == (2, 2, 18, 2)
    assert refcoco.MODEL.RPN.ASPECT_RATIOS == (1.0,)
    assert refcoco.DATASETS.TRAIN == ("refcoco_train",)
    assert refcoco.SOLVER.BASE_LR == pytest.approx(1e-5)
    assert refcoco.INPUT.PIXEL_STD == [57.375, 57.120, 58.395]
    pretrain = load_config(str(PRETRAIN))
    assert pretrain.MODEL.BACKBONE.FUSION_VERSION == "v2"
    assert pretrain.DATASETS.CONTROL_PROB == (0.05, 0.05, 0.5, 0.2)
    assert pretrain.DATASETS.TRAIN == ("mixed_train_no_coco", "flickr30k_train", "object365_dt_train")
    assert pretrain.SOLVER.MAX_ITER == 800000 and pretrain.SOLVER.CLIP_GRADIENTS.ENABLED is True
    assert pretrain.MODEL.BACKBONE.FREEZE_CONV_BODY_AT == 2  # default kept
    clean = load_config(str(CONFIGS / "pretrain" / "mixed_nococo_flickr_objects365_refexpclean.yaml"))
    assert clean.MODEL.BACKBONE.FUSION_VERSION == "v3" and clean.SOLVER.WARMUP_ITERS == 5000
    lvis_ft = load_config(str(CONFIGS / "e2e_dyhead_SwinT_B_FPN_lvis_finetuning_fusion_backbone.yaml"))
    assert lvis_ft.DATASETS.SPECIAL_SAFEGUARD_FOR_COCO_GROUNDING is True
    assert lvis_ft.DATASETS.TEST == ()


def test_caption_prompt_string_is_literal_evaluated():
    cfg = load_config(str(PRETRAIN), task_configs=[str(CONFIGS / "odinw" /
                                                       "Aquarium_Aquarium_Combined.v2-raw-1024.coco.yaml")])
    prompt = cfg.DATASETS.CAPTION_PROMPT
    assert isinstance(prompt, list) and len(prompt) == 7
    assert prompt[0] == {"prefix": " ", "name": "fish", "suffix": ""}
    assert prompt[3]["suffix"] == " with orange beaks "
    assert cfg.DATASETS.REGISTER.train.img_dir == "odinw/Aquarium/Aquarium Combined.v2-raw-1024.coco/train"
    assert cfg.DATASETS.GENERAL_COPY == 16 and cfg.DATASETS.TRAIN == ("train",)


def test_lvis_task_registers_both_names():
    cfg = load_config(str(PRETRAIN), task_configs=[str(CONFIGS / "lvis" / "minival.yaml")])
    assert set(cfg.DATASETS.REGISTER) >= {"lvis_evaluation_mini_val", "lvis_evaluation_val"}
    assert cfg.DATASETS.TEST == ("lvis_evaluation_mini_val",)


README_OPTS = {
    "coco_eval": ["TEST.IMS_PER_BATCH", "1", "TEST.EVAL_TASK", "detection", "OUTPUT_DIR", "out"],
    "lvis_eval": ["TEST.EVAL_TASK", "detection", "OUTPUT_DIR", "out", "TEST.CHUNKED_EVALUATION", "40",
                  "TEST.IMS_PER_BATCH", "4", "SOLVER.IMS_PER_BATCH", "4", "TEST.MDETR_STYLE_AGGREGATE_CLASS_NUM",
                  "3000", "MODEL.RETINANET.DETECTIONS_PER_IMG", "300", "MODEL.FCOS.DETECTIONS_PER_IMG", "300",
                  "MODEL.ATSS.DETECTIONS_PER_IMG", "300", "MODEL.ROI_HEADS.DETECTIONS_PER_IMG", "300"],
    "odinw_eval": ["TEST.IMS_PER_BATCH", "1", "SOLVER.IMS_PER_BATCH", "1", "TEST.EVAL_TASK", "detection",
                   "DATASETS.TRAIN_DATASETNAME_SUFFIX", "_grounding", "DATALOADER.DISTRIBUTE_CHUNK_AMONG_NODE",
                   "False", "DATASETS.USE_OVERRIDE_CATEGORY", "True", "DATASETS.USE_CAPTION_PROMPT", "True"],
    "flickr_eval": ["OUTPUT_DIR", "out", "TEST.IMS_PER_BATCH", "1", "SOLVER.IMS_PER_BATCH", "1",
                    "TEST.MDETR_STYLE_AGGREGATE_CLASS_NUM", "100", "TEST.EVAL_TASK", "grounding",
                    "MODEL.DYHEAD.FUSE_CONFIG.MLM_LOSS", "False"],
    "odinw_finetune": ["MODEL.WEIGHT", "w.pth", "SOLVER.USE_AMP", "True", "TEST.DURING_TRAINING", "True",
                       "TEST.IMS_PER_BATCH", "4", "SOLVER.IMS_PER_BATCH", "4", "SOLVER.WEIGHT_DECAY", "0.05",
                       "TEST.EVAL_TASK", "detection", "DATASETS.TRAIN_DATASETNAME_SUFFIX", "_grounding",
                       "MODEL.BACKBONE.FREEZE_CONV_BODY_AT", "2", "MODEL.DYHEAD.USE_CHECKPOINT", "True",
                       "SOLVER.FIND_UNUSED_PARAMETERS", "False", "SOLVER.TEST_WITH_INFERENCE", "True",
                       "SOLVER.USE_AUTOSTEP", "True", "DATASETS.USE_OVERRIDE_CATEGORY", "True", "SOLVER.SEED", "10",
                       "DATASETS.SHUFFLE_SEED", "3", "DATASETS.USE_CAPTION_PROMPT", "True",
                       "DATASETS.DISABLE_SHUFFLE", "True", "SOLVER.STEP_PATIENCE", "3",
                       "SOLVER.CHECKPOINT_PER_EPOCH", "1.0", "SOLVER.AUTO_TERMINATE_PATIENCE", "8",
                       "SOLVER.MODEL_EMA", "0.0", "SOLVER.TUNING_HIGHLEVEL_OVERRIDE", "full",
                       "DATASETS.FEW_SHOT", "3", "SOLVER.MAX_EPOCH", "200", "DATASETS.GENERAL_COPY", "4"],
    "refexp_eval": ["OUTPUT_DIR", "out", "TEST.IMS_PER_BATCH", "1", "SOLVER.IMS_PER_BATCH", "1",
                    "TEST.MDETR_STYLE_AGGREGATE_CLASS_NUM", "-1", "TEST.EVAL_TASK", "grounding",
                    "MODEL.ATSS.PRE_NMS_TOP_N", "3000", "MODEL.ATSS.DETECTIONS_PER_IMG", "100",
                    "MODEL.ATSS.INFERENCE_TH", "0.0"],
}


@pytest.mark.parametrize("name", sorted(README_OPTS))
def test_readme_command_line_overrides_merge(name):
    cfg = load_config(str(PRETRAIN), opts=README_OPTS[name])
    if name == "odinw_finetune":
        assert cfg.SOLVER.TUNING_HIGHLEVEL_OVERRIDE == "full" and cfg.SOLVER.WEIGHT_DECAY == pytest.approx(0.05)
        assert cfg.SOLVER.CHECKPOINT_PER_EPOCH == 1.0 and cfg.DATASETS.TRAIN_DATASETNAME_SUFFIX == "_grounding"
    if name == "lvis_eval":
        assert cfg.MODEL.ATSS.DETECTIONS_PER_IMG == 300 and cfg.TEST.CHUNKED_EVALUATION == 40


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_unknown_key_names_key_and_file(tmp_path):
    path = _write(tmp_path, "bad.yaml", "MODEL:\n  SWINT:\n    EMBED_DIMS: 128\n")
    cfg = get_cfg()
    with pytest.raises(UnknownConfigKeyError) as info:
        cfg.merge_from_file(path)
    message = str(info.value)
    assert path in message and "MODEL.SWINT.EMBED_DIMS" in message and "EMBED_DIM" in message
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)
    top = _write(tmp_path, "top.yaml", "FOO: 1\n")
    with pytest.raises(KeyError, match=r"top\.yaml: unknown config key FOO"):
        get_cfg().merge_from_file(top)
    with pytest.raises(KeyError, match="command line: unknown config key MODEL.FOO.BAR"):
        get_cfg().merge_from_list(["MODEL.FOO.BAR", "1"])


def test_bad_type_names_key_and_file(tmp_path):
    path = _write(tmp_path, "badtype.yaml", "SOLVER:\n  MAX_ITER: lots\n")
    with pytest.raises(ConfigTypeError) as info:
        get_cfg().merge_from_file(path)
    assert path in str(info.value) and "SOLVER.MAX_ITER" in str(info.value)
    with pytest.raises(ValueError, match="MODEL.RPN_ONLY"):
        get_cfg().merge_from_list(["MODEL.RPN_ONLY", "1"])  # int for a bool
    node = _write(tmp_path, "node.yaml", "MODEL:\n  SWINT: 3\n")
    with pytest.raises(TypeError, match="MODEL.SWINT"):
        get_cfg().merge_from_file(node)


def test_empty_values_binary_files_and_cross_key_problems_name_the_file(tmp_path):
    # "BASE_LR:" with nothing after it is null: yacs let it replace a float, and training failed far away.
    path = _write(tmp_path, "empty_value.yaml", "SOLVER:\n  BASE_LR:\n")
    with pytest.raises(ConfigTypeError, match=f"{re.escape(path)}: config key SOLVER.BASE_LR has no value"):
        get_cfg().merge_from_file(path)
    cfg = get_cfg()
    cfg.merge_from_list(["DATASETS.OVERRIDE_CATEGORY", "None"])  # keys whose default is None still take None
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"MODEL:\n  WEIGHT: \xff\xfe\n")
    with pytest.raises(ValueError, match=f"{re.escape(str(binary))}: not a YAML text file"):
        get_cfg().merge_from_file(str(binary))
    heads = _write(tmp_path, "heads.yaml", "MODEL:\n  SWINT:\n    NUM_HEADS: (1, 2)\n")
    with pytest.raises(ValueError, match=f"{re.escape(str(PRETRAIN))} \\+ {re.escape(heads)}: invalid configuration"):
        load_config(str(PRETRAIN), task_configs=heads)


def test_type_coercions_follow_yacs_and_widen_int(tmp_path):
    cfg = get_cfg()
    cfg.merge_from_list(["SOLVER.BASE_LR", "1", "DATASETS.TRAIN", '["a", "b"]', "INPUT.PIXEL_MEAN", "(1.0, 2.0, 3.0)"])
    assert cfg.SOLVER.BASE_LR == 1.0 and isinstance(cfg.SOLVER.BASE_LR, float)
    assert cfg.DATASETS.TRAIN == ("a", "b") and cfg.INPUT.PIXEL_MEAN == [1.0, 2.0, 3.0]
    cfg.merge_from_list(["DATASETS.OVERRIDE_CATEGORY", '[{"id": 1, "name": "x"}]'])
    assert cfg.DATASETS.OVERRIDE_CATEGORY == [{"id": 1, "name": "x"}]


def test_missing_file_odd_opts_and_frozen(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        get_cfg().merge_from_file(str(tmp_path / "nope.yaml"))
    with pytest.raises(ValueError, match="pairs"):
        get_cfg().merge_from_list(["TEST.IMS_PER_BATCH"])
    frozen = load_config(str(PRETRAIN), freeze=True)
    with pytest.raises(AttributeError, match="frozen"):
        frozen.merge_from_list(["TEST.IMS_PER_BATCH", "2"])
    not_mapping = _write(tmp_path, "list.yaml", "- a\n- b\n")
    with pytest.raises(ValueError, match="mapping"):
        get_cfg().merge_from_file(not_mapping)
    empty = _write(tmp_path, "empty.yaml", "")
    get_cfg().merge_from_file(empty)


def test_register_accepts_new_names(tmp_path):
    text = "DATASETS:\n  REGISTER:\n    my_set:\n      img_dir: a\n      ann_file: b.json\n"
    path = _write(tmp_path, "reg.yaml", text)
    cfg = get_cfg()
    cfg.merge_from_file(path)
    cfg.merge_from_file(path)  # registering twice merges into the same entry
    assert cfg.DATASETS.REGISTER.my_set.ann_file == "b.json"


def test_inert_key_change_is_logged(caplog):
    cfg = get_cfg()
    with caplog.at_level(logging.INFO, logger="maskrcnn_benchmark.config.config_node"):
        cfg.merge_from_file(str(CONFIGS / "lvis" / "minival.yaml"))
    text = caplog.text
    assert "MODEL.FCOS.NUM_CLASSES" in text and "no effect" in text
    assert "MODEL.DYHEAD.NUM_CLASSES = 8" not in text  # read by the head: not inert
    leaves = dict(get_cfg().iter_leaves())
    assert all(key in leaves for key in INERT_KEYS)  # every inert key is a real key with its reason


def _fiber_cfg():
    cfg = get_cfg()
    cfg.merge_from_file(str(PRETRAIN))
    return cfg


@pytest.mark.parametrize(
    "opts, expected",
    [
        (["MODEL.RPN.ANCHOR_STRIDE", "(8, 16)"], "ANCHOR_SIZES has 5 entries but ANCHOR_STRIDE has 2"),
        (["MODEL.LANGUAGE_BACKBONE.MAX_QUERY_LEN", "0"], "MAX_QUERY_LEN must be > 0"),
        (["MODEL.LANGUAGE_BACKBONE.MAX_QUERY_LEN", "600"], "MAX_POSITION_EMBEDDINGS"),
        (["MODEL.BACKBONE.FUSION_VERSION", "v1"], "FUSION_VERSION must be 'v2' or 'v3'"),
        (["MODEL.DYHEAD.FUSE_CONFIG.EARLY_FUSE_ON", "True"], "EARLY_FUSE_ON = True"),
        (["MODEL.DYHEAD.FUSE_CONFIG.MLM_LOSS", "True"], "MLM_LOSS = True"),
        (["MODEL.SWINT.FUSION_BLOCKS_STAGE3", "19"], "FUSION_BLOCKS_STAGE3 = 19"),
        (["MODEL.LANGUAGE_BACKBONE.NUM_LAYERS", "4"], "NUM_LAYERS is 4"),
        (["MODEL.SWINT.OUT_CHANNELS", "(128, 256, 512, 1000)"], "OUT_CHANNELS[3] = 1000"),
        (["SOLVER.STEPS", "(0.9, 0.5)"], "SOLVER.STEPS must be increasing"),
        (["TEST.EVAL_TASK", "segmentation"], "TEST.EVAL_TASK"),
        (["TEST.CHUNKED_EVALUATION", "0"], "CHUNKED_EVALUATION"),
        (["AUGMENT.FLIP_PROB_TRAIN", "1.5"], "FLIP_PROB_TRAIN"),
        (["DATASETS.CONTROL_PROB", "(0.5, 0.5)"], "CONTROL_PROB"),
        (["MODEL.DYHEAD.FUSE_CONFIG.USE_CLASSIFICATION_LOSS", "True"], "USE_CLASSIFICATION_LOSS = True"),
        (["MODEL.LANGUAGE_BACKBONE.MASK_SPECIAL", "True"], "MASK_SPECIAL = True"),
        (["AUGMENT.VERTICAL_FLIP_PROB_TRAIN", "0.5"], "vertical flipping is not implemented"),
        (["MODEL.DYHEAD.FUSE_CONFIG.TYPE", "MHA-B"], "early-fusion types are not supported"),
        (["DATASETS.SAFEGUARD_POSITIVE_CAPTION", "False"], "SAFEGUARD_POSITIVE_CAPTION = False"),
    ],
)
def test_validate_config_rejects(opts, expected):
    cfg = _fiber_cfg()
    cfg.merge_from_list(opts)
    with pytest.raises(ValueError, match=re.escape(expected)):
        validate_config(cfg)


def test_validate_config_lists_every_problem():
    cfg = _fiber_cfg()
    cfg.merge_from_list(["MODEL.LANGUAGE_BACKBONE.MAX_QUERY_LEN", "0", "TEST.EVAL_TASK", "x"])
    with pytest.raises(ValueError) as info:
        validate_config(cfg)
    assert "MAX_QUERY_LEN" in str(info.value) and "TEST.EVAL_TASK" in str(info.value)


def test_every_default_key_is_documented():
    """Each key's assignment in defaults.py carries a comment (same line or the line before), or is inert."""
    source = (REPO_ROOT / "maskrcnn_benchmark" / "config" / "defaults.py").read_text().splitlines()
    undocumented = []
    for key, _ in get_cfg().iter_leaves():
        if key in INERT_KEYS or key.startswith("DATASETS.REGISTER."):
            continue
        pattern = re.compile(r"^_C\." + re.escape(key) + r"\s*=")
        lines = [i for i, line in enumerate(source) if pattern.match(line)]
        documented = any("#" in source[i] or source[i - 1].lstrip().startswith("#") for i in lines)
        if not documented:
            undocumented.append(key)
    assert not undocumented


def _spec_or_skip(name):
    path = SPEC / name
    if not path.is_file():
        pytest.skip(f"spec file {path.resolve()} is absent")
    return path


def test_every_key_in_upstream_yaml_tables_exists():
    """Every YAML key listed in task-configs.md (upstream's model and task yamls) is a default key."""
    text = _spec_or_skip("task-configs.md").read_text()
    keys = set(re.findall(r"^\| `([A-Z_]+(?:\.[A-Za-z0-9_+]+)+)`", text, flags=re.M))
    defaults = {key for key, _ in get_cfg().iter_leaves()}
    missing = sorted(k for k in keys if k not in defaults and not k.startswith("DATASETS.REGISTER."))
    assert len(keys) > 100 and not missing


def test_every_odinw_setting_merges():
    """Every per-dataset setting of GLIP's ODinW yamls (odinw.json) is accepted by the defaults."""
    data = json.loads(_spec_or_skip("odinw.json").read_text())
    for name, entry in data["datasets"].items():
        cfg = get_cfg()
        opts = []
        for key, value in entry.get("settings", {}).items():
            opts += [key, value if isinstance(value, str) else repr(value)]
        opts += ["DATASETS.OVERRIDE_CATEGORY", entry.get("override_category_string") or "None"]
        if entry.get("caption_prompt_string"):
            opts += ["DATASETS.CAPTION_PROMPT", entry["caption_prompt_string"]]
        cfg.merge_from_list(opts, source=f"odinw.json:{name}")
        cfg.merge_from_dict({"DATASETS": {"REGISTER": entry["register"]}}, source=f"odinw.json:{name}")
        assert set(cfg.DATASETS.REGISTER) >= {"train", "val"}


def test_config_cli_shows_changes_and_fails_cleanly(capsys):
    from maskrcnn_benchmark.config.__main__ import main

    lvis = str(CONFIGS / "lvis" / "minival.yaml")
    assert main(["--config-file", str(PRETRAIN), "--task_config", lvis, "TEST.IMS_PER_BATCH", "1"]) == 0
    out = capsys.readouterr().out
    assert "TEST.IMS_PER_BATCH: 1" in out and "configuration is valid" in out
    assert "MODEL.FCOS.NUM_CLASSES: 8  # no effect" in out
    assert "MODEL.SWINT.WINDOW_SIZE: 12" in out and "MODEL.RPN_ONLY: True" in out
    assert "OUTPUT_DIR" not in out  # unchanged keys are not listed without --full
    assert main(["--config-file", str(PRETRAIN), "MODEL.FOO", "1"]) == 1
    assert "unknown config key MODEL.FOO" in capsys.readouterr().err
    assert main(["--config-file", "missing.yaml"]) == 1


def test_dumped_config_merges_back_identically(tmp_path):
    """Tools save the merged config as config.yaml; merging that file into the defaults restores it."""
    aquarium = str(CONFIGS / "odinw" / "Aquarium_Aquarium_Combined.v2-raw-1024.coco.yaml")
    merged = load_config(str(PRETRAIN), task_configs=[aquarium], opts=["DATASETS.USE_CAPTION_PROMPT", "True"])
    path = tmp_path / "config.yaml"
    path.write_text(merged.dump())
    restored = get_cfg()
    restored.merge_from_file(str(path))
    assert dict(restored.iter_leaves()) == dict(merged.iter_leaves())
    assert restored.DATASETS.CAPTION_PROMPT[2]["suffix"] == " , which is black and white"


def test_global_cfg_is_the_defaults_and_get_cfg_is_isolated():
    from maskrcnn_benchmark.config import cfg

    assert cfg.MODEL.META_ARCHITECTURE == "GeneralizedRCNN"  # upstream default, FIBER values come from yamls
    saved = cfg.clone()
    try:
        cfg.merge_from_list(["TEST.IMS_PER_BATCH", "3"])  # upstream scripts merge into the global in place
        assert get_cfg().TEST.IMS_PER_BATCH == 16
    finally:
        cfg.merge_from_other_cfg(saved)
    assert cfg.TEST.IMS_PER_BATCH == 16


@pytest.mark.parametrize("path", ALL_YAMLS, ids=_rel)
def test_dataset_names_of_every_yaml_resolve_in_catalog(path):
    """Every DATASETS.TRAIN/TEST name (with the README's _grounding train suffix for task yamls) has a factory."""
    import copy

    from maskrcnn_benchmark.config.paths_catalog import DatasetCatalog, register_datasets_from_cfg

    is_task = path in TASK_YAMLS
    cfg = get_cfg()
    if is_task:
        cfg.merge_from_file(str(PRETRAIN))
    cfg.merge_from_file(str(path))
    saved = copy.deepcopy(DatasetCatalog.DATASETS)
    try:
        register_datasets_from_cfg(cfg)
        train_suffix = "_grounding" if is_task and "odinw" in path.parts[-2] else cfg.DATASETS.TRAIN_DATASETNAME_SUFFIX
        names = [n + train_suffix for n in cfg.DATASETS.TRAIN] + list(cfg.DATASETS.TEST)
        for name in names:
            info = DatasetCatalog.get(name, resolve=False)
            assert info["factory"]
            assert "ann_file" in info["args"] or "yaml_file" in info["args"]
    finally:
        DatasetCatalog.DATASETS.clear()
        DatasetCatalog.DATASETS.update(saved)
