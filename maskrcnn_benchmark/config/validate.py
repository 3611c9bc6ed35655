"""Cross-key checks run once after all merges (file, task file, command line) and before freezing."""

import logging

from maskrcnn_benchmark.config.keys import get_key

__all__ = ["validate_config", "UNSUPPORTED_FLAGS"]

logger = logging.getLogger(__name__)

#: Boolean options upstream has but this implementation does not: True is an error, never silently ignored.
UNSUPPORTED_FLAGS = {
    "MODEL.DYHEAD.FUSE_CONFIG.EARLY_FUSE_ON": "GLIP's early fusion inside the DyHead (FIBER fuses in the backbone)",
    "MODEL.DYHEAD.FUSE_CONFIG.USE_FUSED_FEATURES_DOT_PRODUCT": "needs GLIP's early fusion",
    "MODEL.DYHEAD.FUSE_CONFIG.USE_TOKEN_LOSS": "GLIP's token-softmax loss",
    "MODEL.DYHEAD.FUSE_CONFIG.USE_CONTRASTIVE_ALIGN_LOSS": "MDETR's contrastive-align loss",
    "MODEL.DYHEAD.FUSE_CONFIG.MLM_LOSS": "the masked-language-model loss",
    "MODEL.DYHEAD.FUSE_CONFIG.USE_CLASSIFICATION_LOSS": "the frozen class-logit loss (FIBER trains the token loss)",
    "MODEL.LANGUAGE_BACKBONE.MASK_SPECIAL": "masking special tokens out of the text attention",
    "MODEL.MASK_ON": "mask heads",
    "MODEL.KEYPOINT_ON": "keypoint heads",
    "DATASETS.ALTERNATIVE_TRAINING": "alternating-dataset training",
    "DATASETS.MULTISTAGE_TRAINING": "multi-stage training",
}

_SWIN_STRIDE = 32  # patch 4 x three 2x patch mergings


def _check_swin(cfg, problems: list[str]) -> None:
    sw = cfg.MODEL.SWINT
    n = len(sw.DEPTHS)
    if len(sw.NUM_HEADS) != n or len(sw.OUT_CHANNELS) != n:
        problems.append(
            f"MODEL.SWINT.DEPTHS ({len(sw.DEPTHS)}), NUM_HEADS ({len(sw.NUM_HEADS)}) and OUT_CHANNELS "
            f"({len(sw.OUT_CHANNELS)}) must have one entry per stage"
        )
        return
    for i, (channels, heads) in enumerate(zip(sw.OUT_CHANNELS, sw.NUM_HEADS)):
        if channels != sw.EMBED_DIM * 2**i:
            problems.append(f"MODEL.SWINT.OUT_CHANNELS[{i}] = {channels}, expected EMBED_DIM * 2^{i} = "
                            f"{sw.EMBED_DIM * 2**i}")
        if heads <= 0 or channels % heads != 0:
            problems.append(f"MODEL.SWINT.OUT_CHANNELS[{i}] = {channels} is not divisible by NUM_HEADS[{i}] = {heads}")
    if sw.VERSION != "fusion":
        return
    if cfg.MODEL.BACKBONE.FUSION_VERSION not in ("v2", "v3"):
        problems.append(f"MODEL.BACKBONE.FUSION_VERSION must be 'v2' or 'v3' for the fusion backbone, got "
                        f"{cfg.MODEL.BACKBONE.FUSION_VERSION!r}")
    if n != 4:
        problems.append(f"the fusion backbone needs 4 Swin stages, MODEL.SWINT.DEPTHS has {n}")
        return
    fused3 = sw.FUSION_BLOCKS_STAGE3
    if not 0 <= fused3 <= sw.DEPTHS[2]:
        problems.append(f"MODEL.SWINT.FUSION_BLOCKS_STAGE3 = {fused3} must be in [0, DEPTHS[2] = {sw.DEPTHS[2]}]")
    text_layers = cfg.MODEL.LANGUAGE_BACKBONE.NUM_LAYERS
    if fused3 + sw.DEPTHS[3] > text_layers:
        problems.append(
            f"MODEL.SWINT.FUSION_BLOCKS_STAGE3 ({fused3}) + DEPTHS[3] ({sw.DEPTHS[3]}) fused blocks need as many "
            f"text layers, MODEL.LANGUAGE_BACKBONE.NUM_LAYERS is {text_layers}"
        )
    if cfg.DATALOADER.SIZE_DIVISIBILITY % _SWIN_STRIDE != 0:
        logger.warning(
            "DATALOADER.SIZE_DIVISIBILITY = %d is not a multiple of %d; Swin's patch merging needs even sizes "
            "(the released configs use 32)", cfg.DATALOADER.SIZE_DIVISIBILITY, _SWIN_STRIDE,
        )


def _check_language(cfg, problems: list[str]) -> None:
    lb = cfg.MODEL.LANGUAGE_BACKBONE
    if lb.MAX_QUERY_LEN <= 0:
        problems.append(f"MODEL.LANGUAGE_BACKBONE.MAX_QUERY_LEN must be > 0, got {lb.MAX_QUERY_LEN}")
    elif lb.MAX_QUERY_LEN + lb.PAD_TOKEN_ID + 1 > lb.MAX_POSITION_EMBEDDINGS:
        problems.append(
            f"MODEL.LANGUAGE_BACKBONE.MAX_QUERY_LEN = {lb.MAX_QUERY_LEN} needs MAX_POSITION_EMBEDDINGS >= "
            f"{lb.MAX_QUERY_LEN + lb.PAD_TOKEN_ID + 1} (RoBERTa positions start after the pad id), got "
            f"{lb.MAX_POSITION_EMBEDDINGS}"
        )
    if lb.NUM_ATTENTION_HEADS <= 0 or lb.LANG_DIM % lb.NUM_ATTENTION_HEADS != 0:
        problems.append(f"MODEL.LANGUAGE_BACKBONE.LANG_DIM = {lb.LANG_DIM} is not divisible by NUM_ATTENTION_HEADS "
                        f"= {lb.NUM_ATTENTION_HEADS}")


def _check_head(cfg, problems: list[str]) -> None:
    rpn = cfg.MODEL.RPN
    if rpn.USE_FPN and len(rpn.ANCHOR_SIZES) != len(rpn.ANCHOR_STRIDE):
        problems.append(
            f"MODEL.RPN.ANCHOR_SIZES has {len(rpn.ANCHOR_SIZES)} entries but ANCHOR_STRIDE has "
            f"{len(rpn.ANCHOR_STRIDE)}; with MODEL.RPN.USE_FPN each FPN level needs one of each"
        )
    if len(rpn.ASPECT_RATIOS) == 0:
        problems.append("MODEL.RPN.ASPECT_RATIOS must not be empty")
    if cfg.MODEL.DYHEAD.NUM_CLASSES < 2:
        problems.append(f"MODEL.DYHEAD.NUM_CLASSES = {cfg.MODEL.DYHEAD.NUM_CLASSES} must be >= 2 (classes + 1)")
    fuse_type = cfg.MODEL.DYHEAD.FUSE_CONFIG.TYPE
    if fuse_type not in ("", "NONE"):
        problems.append(f"MODEL.DYHEAD.FUSE_CONFIG.TYPE = {fuse_type!r}: GLIP early-fusion types are not "
                        "supported (use 'NONE')")
    for key, what in UNSUPPORTED_FLAGS.items():
        if get_key(cfg, key) is True:
            problems.append(f"{key} = True: {what} is not implemented (set it to False)")


def _check_data_and_solver(cfg, problems: list[str]) -> None:
    control = cfg.DATASETS.CONTROL_PROB
    if len(control) not in (0, 4) or any(p < 0 for p in control):
        problems.append(f"DATASETS.CONTROL_PROB must be empty or 4 non-negative probabilities, got {control!r}")
    if not 0.0 <= cfg.AUGMENT.FLIP_PROB_TRAIN <= 1.0:
        problems.append(f"AUGMENT.FLIP_PROB_TRAIN = {cfg.AUGMENT.FLIP_PROB_TRAIN} must be in [0, 1]")
    if cfg.AUGMENT.VERTICAL_FLIP_PROB_TRAIN != 0.0:
        problems.append(f"AUGMENT.VERTICAL_FLIP_PROB_TRAIN = {cfg.AUGMENT.VERTICAL_FLIP_PROB_TRAIN}: vertical "
                        "flipping is not implemented (set it to 0.0)")
    if not cfg.DATASETS.SAFEGUARD_POSITIVE_CAPTION:
        problems.append("DATASETS.SAFEGUARD_POSITIVE_CAPTION = False is not supported: positives that overflow the "
                        "caption token budget are always dropped")
    steps = list(cfg.SOLVER.STEPS)
    if steps != sorted(steps):
        problems.append(f"SOLVER.STEPS must be increasing, got {tuple(steps)}")
    if cfg.SOLVER.OPTIMIZER not in ("SGD", "ADAMW"):
        problems.append(f"SOLVER.OPTIMIZER must be 'SGD' or 'ADAMW', got {cfg.SOLVER.OPTIMIZER!r}")
    if cfg.SOLVER.WARMUP_METHOD not in ("constant", "linear"):
        problems.append(f"SOLVER.WARMUP_METHOD must be 'constant' or 'linear', got {cfg.SOLVER.WARMUP_METHOD!r}")
    if not 0.0 <= cfg.SOLVER.MODEL_EMA < 1.0:
        problems.append(f"SOLVER.MODEL_EMA = {cfg.SOLVER.MODEL_EMA} must be in [0, 1)")
    if cfg.SOLVER.IMS_PER_BATCH <= 0 or cfg.TEST.IMS_PER_BATCH <= 0:
        problems.append(f"SOLVER.IMS_PER_BATCH ({cfg.SOLVER.IMS_PER_BATCH}) and TEST.IMS_PER_BATCH "
                        f"({cfg.TEST.IMS_PER_BATCH}) must be > 0")
    if cfg.TEST.EVAL_TASK not in ("", "detection", "grounding"):
        problems.append(f"TEST.EVAL_TASK must be '', 'detection' or 'grounding', got {cfg.TEST.EVAL_TASK!r}")
    chunk = cfg.TEST.CHUNKED_EVALUATION
    if chunk == 0 or chunk < -1:
        problems.append(f"TEST.CHUNKED_EVALUATION must be -1 (off) or a positive class count, got {chunk}")
    if cfg.TEST.CHUNK_BATCH < 0:
        problems.append(f"TEST.CHUNK_BATCH must be >= 0 (0: from the free memory), got {cfg.TEST.CHUNK_BATCH}")
    if cfg.TEST.PRECISION not in ("fp32", "tf32", "bf16", "fp16"):
        problems.append(f"TEST.PRECISION must be 'fp32', 'tf32', 'bf16' or 'fp16', got {cfg.TEST.PRECISION!r}")
    if cfg.TEST.COCO_EVAL_BACKEND not in ("faster", "pycocotools"):
        problems.append(f"TEST.COCO_EVAL_BACKEND must be 'faster' or 'pycocotools', got {cfg.TEST.COCO_EVAL_BACKEND!r}")
    if cfg.TEST.LVIS_EVAL_BACKEND not in ("faster", "lvis"):
        problems.append(f"TEST.LVIS_EVAL_BACKEND must be 'faster' or 'lvis', got {cfg.TEST.LVIS_EVAL_BACKEND!r}")
    if cfg.DATASETS.FEW_SHOT_SUBSET not in ("seeded", "upstream"):
        problems.append("DATASETS.FEW_SHOT_SUBSET must be 'seeded' or 'upstream', got "
                        f"{cfg.DATASETS.FEW_SHOT_SUBSET!r}")
    if cfg.TEST.COMPILE not in ("", "default", "reduce-overhead", "max-autotune"):
        problems.append(f"TEST.COMPILE must be '', 'default', 'reduce-overhead' or 'max-autotune', got "
                        f"{cfg.TEST.COMPILE!r}")
    if cfg.DATASETS.FLICKR_GT_TYPE not in ("separate", "merged"):
        problems.append(f"DATASETS.FLICKR_GT_TYPE must be 'separate' or 'merged', got {cfg.DATASETS.FLICKR_GT_TYPE!r}")


def validate_config(cfg) -> None:
    """Check relations between keys that a single-key type check cannot see.

    Checks include: one anchor size per anchor stride with FPN; MAX_QUERY_LEN > 0 and within the position
    table; Swin stage widths/heads consistent; FUSION_VERSION in {v2, v3} for the fusion backbone and enough text
    layers for the fused blocks; unimplemented upstream options not switched on; value ranges of probabilities,
    optimizer/warm-up names, EMA decay, batch sizes, TEST.EVAL_TASK, TEST.CHUNKED_EVALUATION, TEST.CHUNK_BATCH,
    TEST.PRECISION and TEST.COMPILE.

    Args:
        cfg: a merged config (frozen or not; it is not modified).

    Raises:
        ValueError: listing every problem found, one per line.
    """
    problems: list[str] = []
    _check_swin(cfg, problems)
    _check_language(cfg, problems)
    _check_head(cfg, problems)
    _check_data_and_solver(cfg, problems)
    if problems:
        raise ValueError("invalid configuration:\n  - " + "\n  - ".join(problems))
