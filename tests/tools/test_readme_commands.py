"""Upstream README commands (task-configs.md 4) parse unchanged: every flag is known, every key merges."""

import importlib.util
import shlex

import pytest
from _tool_helpers import REPO, TOOLS

PRETRAIN = "configs/pretrain/mixed_nococo_flickr_objects365.yaml"
COCO_FT = "configs/e2e_dyhead_SwinT_B_FPN_coco_finetuning_fusion_backbone.yaml"
LVIS_FT = "configs/e2e_dyhead_SwinT_B_FPN_lvis_finetuning_fusion_backbone.yaml"
ODINW = "configs/odinw/Aquarium_Aquarium_Combined.v2-raw-1024.coco.yaml"

COMMANDS = [
    ("train_net.py", f"--config-file {PRETRAIN} --skip-test --use-tensorboard --override_output_dir OUT "
                     "MODEL.WEIGHT MODEL/fiber_coarse_init.pt", None),
    ("test_grounding_net.py", f"--config-file {COCO_FT} --weight W.pth TEST.IMS_PER_BATCH 1 TEST.EVAL_TASK detection "
                              "OUTPUT_DIR OUT", None),
    ("test_grounding_net.py", f"--config-file {PRETRAIN} --task_config configs/lvis/minival.yaml --weight W.pth "
                              "TEST.EVAL_TASK detection OUTPUT_DIR OUT TEST.CHUNKED_EVALUATION 40  "
                              "TEST.IMS_PER_BATCH 4 "
                              "SOLVER.IMS_PER_BATCH 4 TEST.MDETR_STYLE_AGGREGATE_CLASS_NUM 3000 "
                              "MODEL.RETINANET.DETECTIONS_PER_IMG 300 MODEL.FCOS.DETECTIONS_PER_IMG 300 "
                              "MODEL.ATSS.DETECTIONS_PER_IMG 300 MODEL.ROI_HEADS.DETECTIONS_PER_IMG 300",
     "configs/lvis/minival.yaml"),
    ("test_grounding_net.py", f"--config-file {PRETRAIN} --weight W.pth --task_config {ODINW} TEST.IMS_PER_BATCH 1 "
                              "SOLVER.IMS_PER_BATCH 1 TEST.EVAL_TASK detection DATASETS.TRAIN_DATASETNAME_SUFFIX "
                              "_grounding DATALOADER.DISTRIBUTE_CHUNK_AMONG_NODE False DATASETS.USE_OVERRIDE_CATEGORY "
                              "True DATASETS.USE_CAPTION_PROMPT True", ODINW),
    ("test_grounding_net.py", f"--config-file {PRETRAIN} "
                              "--task_config configs/flickr/test.yaml,configs/flickr/val.yaml "
                              "--weight W.pth OUTPUT_DIR OUT TEST.IMS_PER_BATCH 1 SOLVER.IMS_PER_BATCH 1 "
                              "TEST.MDETR_STYLE_AGGREGATE_CLASS_NUM 100 TEST.EVAL_TASK grounding",
     "configs/flickr/val.yaml"),
    ("train_net.py", f"--config-file {COCO_FT} --skip-test MODEL.WEIGHT W.pth \\  ", None),
    ("train_net.py", f"--config-file {LVIS_FT} --skip-test MODEL.WEIGHT W.pth", None),
    ("finetune.py", f"--config-file {PRETRAIN}  --ft-tasks {ODINW} --skip-test "
                    "--custom_shot_and_epoch_and_general_copy 3_200_4 --evaluate_only_best_on_test "
                    "--push_both_val_and_test MODEL.WEIGHT W.pth SOLVER.USE_AMP True TEST.DURING_TRAINING True "
                    "TEST.IMS_PER_BATCH 4 SOLVER.IMS_PER_BATCH 4 SOLVER.WEIGHT_DECAY 0.05 TEST.EVAL_TASK detection "
                    "DATASETS.TRAIN_DATASETNAME_SUFFIX _grounding MODEL.BACKBONE.FREEZE_CONV_BODY_AT 2 "
                    "MODEL.DYHEAD.USE_CHECKPOINT True SOLVER.FIND_UNUSED_PARAMETERS False SOLVER.TEST_WITH_INFERENCE "
                    "True SOLVER.USE_AUTOSTEP True DATASETS.USE_OVERRIDE_CATEGORY True SOLVER.SEED 10 "
                    "DATASETS.SHUFFLE_SEED 3 DATASETS.USE_CAPTION_PROMPT True DATASETS.DISABLE_SHUFFLE True "
                    "SOLVER.STEP_PATIENCE 3 SOLVER.CHECKPOINT_PER_EPOCH 1.0 SOLVER.AUTO_TERMINATE_PATIENCE 8 "
                    "SOLVER.MODEL_EMA 0.0 SOLVER.TUNING_HIGHLEVEL_OVERRIDE full", ODINW),
    ("train_net.py", "--config-file configs/refcoco.yaml --skip-test MODEL.WEIGHT W.pth", None),
    ("test_grounding_net.py", "--config-file configs/refcoco.yaml --task_config configs/refexp/_refcoco_testA.yaml "
                              "--weight W.pth OUTPUT_DIR OUT TEST.IMS_PER_BATCH 1 SOLVER.IMS_PER_BATCH 1 "
                              "TEST.MDETR_STYLE_AGGREGATE_CLASS_NUM -1 TEST.EVAL_TASK grounding "
                              "MODEL.ATSS.PRE_NMS_TOP_N 3000 MODEL.ATSS.DETECTIONS_PER_IMG 100 "
                              "MODEL.ATSS.INFERENCE_TH 0.0",
     "configs/refexp/_refcoco_testA.yaml"),
]


def _parser(tool):
    spec = importlib.util.spec_from_file_location(f"tool_{tool[:-3]}", TOOLS / tool)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_parser()


@pytest.mark.parametrize("tool,command,task", COMMANDS, ids=[f"{t}:{i}" for i, (t, _, _) in enumerate(COMMANDS)])
def test_readme_command_parses_and_merges(tool, command, task, monkeypatch):
    from maskrcnn_benchmark.config import load_config
    from maskrcnn_benchmark.config.task_config import prepare_task_config
    from maskrcnn_benchmark.engine.finetune import parse_shot_epoch_copy
    from maskrcnn_benchmark.engine.runner import apply_tuning_mode

    monkeypatch.chdir(REPO)
    args = _parser(tool).parse_args(shlex.split(command))
    if not (REPO / args.config_file).is_file():
        pytest.skip(f"{args.config_file} is absent")
    base = load_config(args.config_file, args.opts)
    if task is not None:
        cfg = load_config(args.config_file, args.opts, task_configs=[task])
        if tool == "test_grounding_net.py":
            prepare_task_config(base, cfg, task)  # only allowed MODEL keys differ
        if tool == "finetune.py":
            assert parse_shot_epoch_copy(args.custom_shot_and_epoch_and_general_copy) == (3, 200, 4)
            apply_tuning_mode(cfg)
            assert cfg.SOLVER.SEED == 10 and cfg.DATASETS.SHUFFLE_SEED == 3


def test_launcher_local_rank_flags_are_accepted():
    for flag in ("--local_rank=1", "--local-rank=1", "--local_rank", "--local-rank"):
        argv = [flag] if "=" in flag else [flag, "1"]
        args = _parser("train_net.py").parse_args(argv + ["--config-file", "x.yaml"])
        assert args.local_rank == 1
