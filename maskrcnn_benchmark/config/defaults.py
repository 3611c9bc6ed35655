"""Default configuration (yacs) for the FIBER fine-grained toolkit.

Key names and default values follow upstream FIBER/GLIP's ``maskrcnn_benchmark/config/defaults.py``
(upstream-facts.md 3.2), so upstream YAML files and command lines work unchanged. The FIBER values themselves
come from the YAML files under ``configs/``. Every key has a comment: meaning; unit / valid values; the module
that reads it.

Two groups of keys are special:

* Keys this project adds beyond upstream are marked ``[added]``.
* Keys kept only so that upstream YAMLs and README command lines load — they have no effect in FIBER — are
  defined together at the end of this file, in the section "Inert keys". Their names and the reason are also
  collected in :data:`INERT_KEYS`; merging a file that changes one of them logs the reason instead of silently
  ignoring it.
"""

import os

from maskrcnn_benchmark.config.config_node import CfgNode as CN

__all__ = ["_C", "INERT_KEYS"]

_C = CN()

# ----------------------------------------------------------------------------------------------------------------
# MODEL
# ----------------------------------------------------------------------------------------------------------------
_C.MODEL = CN()
_C.MODEL.RPN_ONLY = False  # True: no ROI heads, the dense head's boxes are the detections (FIBER: True); detector
_C.MODEL.DEVICE = "cuda"  # torch device for training/inference ("cuda", "cpu", "cuda:1"); engine, tools
_C.MODEL.META_ARCHITECTURE = "GeneralizedRCNN"  # META_ARCHITECTURES name (FIBER: "GeneralizedVLRCNN"); detector
_C.MODEL.RPN_ARCHITECTURE = "RPN"  # RPN_ARCHITECTURES name of the dense head (FIBER: "VLDYHEAD"); modeling/rpn
_C.MODEL.WEIGHT = ""  # checkpoint to initialise from (path, resolved like data paths); utils/checkpoint, tools
_C.MODEL.LINEAR_PROB = False  # freeze everything except the head's prediction layers (finetune tuning mode); detector

# ---------------------------------------------------------------------------------------------------- backbone
_C.MODEL.BACKBONE = CN()
_C.MODEL.BACKBONE.CONV_BODY = "R-50-C4"  # BACKBONES name (FIBER: "SWINT-FPN-RETINANET" = Swin + FPN); backbone
_C.MODEL.BACKBONE.FREEZE_CONV_BODY_AT = 2  # Swin: freeze patch_embed (>=0) and stages < this (-1 = none); backbone
_C.MODEL.BACKBONE.FREEZE = False  # freeze the whole image body (re-applied by train()); detector
_C.MODEL.BACKBONE.OUT_CHANNELS = 1024  # channels of every FPN output (FIBER: 256); backbone/fpn, rpn head
_C.MODEL.BACKBONE.USE_CHECKPOINT = False  # activation checkpointing of trainable Swin stages; backbone
_C.MODEL.BACKBONE.FUSION_VERSION = "v1"  # fusion backbone variant: "v2" (COCO/LVIS/pretrain) or "v3" (refexp,
#                                          extra LayerNorm on the image cross-attention query); fusion_backbone

# ---------------------------------------------------------------------------------------------------- language
_C.MODEL.LANGUAGE_BACKBONE = CN()
_C.MODEL.LANGUAGE_BACKBONE.FREEZE = False  # freeze the text encoder (re-applied by train()); detector
# Tokenizer: a HF name ("roberta-base", from the local HF cache) or a local folder; language_backbone/tokenizer
_C.MODEL.LANGUAGE_BACKBONE.TOKENIZER_TYPE = "bert-base-uncased"
_C.MODEL.LANGUAGE_BACKBONE.MODEL_TYPE = "bert-base-uncased"  # LANGUAGE_BACKBONES name (FIBER: "roberta-fused-v2")
_C.MODEL.LANGUAGE_BACKBONE.LANG_DIM = 768  # text hidden size (roberta-base: 768); language_backbone, rpn head
_C.MODEL.LANGUAGE_BACKBONE.MAX_QUERY_LEN = 256  # text length L in tokens (captions padded/truncated); detector, data
_C.MODEL.LANGUAGE_BACKBONE.PAD_MAX = True  # pad captions to MAX_QUERY_LEN (True) or to the longest one; detector
# gradient checkpointing of the RoBERTa layers in training (upstream only sets a transformers flag that its fused
# text layers never use, so FIBER trained without it); language_backbone/roberta
_C.MODEL.LANGUAGE_BACKBONE.USE_CHECKPOINT = False
# [added] RoBERTa architecture numbers (roberta-base values built in, so no config.json download is needed; the
# tiny test configs shrink them); read by language_backbone/roberta:
_C.MODEL.LANGUAGE_BACKBONE.NUM_LAYERS = 12  # [added] number of transformer layers
_C.MODEL.LANGUAGE_BACKBONE.NUM_ATTENTION_HEADS = 12  # [added] attention heads (LANG_DIM must be divisible by it)
_C.MODEL.LANGUAGE_BACKBONE.INTERMEDIATE_SIZE = 3072  # [added] FFN hidden width
_C.MODEL.LANGUAGE_BACKBONE.VOCAB_SIZE = 50265  # [added] token embedding rows (roberta-base BPE vocabulary)
_C.MODEL.LANGUAGE_BACKBONE.MAX_POSITION_EMBEDDINGS = 514  # [added] position embedding rows (positions start at 2)
_C.MODEL.LANGUAGE_BACKBONE.TYPE_VOCAB_SIZE = 1  # [added] token-type embedding rows
_C.MODEL.LANGUAGE_BACKBONE.LAYER_NORM_EPS = 1e-5  # [added] LayerNorm epsilon
_C.MODEL.LANGUAGE_BACKBONE.HIDDEN_DROPOUT_PROB = 0.1  # [added] dropout on embeddings / layer outputs
_C.MODEL.LANGUAGE_BACKBONE.ATTENTION_DROPOUT_PROB = 0.1  # [added] dropout on attention probabilities
_C.MODEL.LANGUAGE_BACKBONE.PAD_TOKEN_ID = 1  # [added] padding id (position ids count from it + 1)

# ---------------------------------------------------------------------------------------------------- swin
_C.MODEL.SWINT = CN()
_C.MODEL.SWINT.EMBED_DIM = 96  # patch-embedding width C (FIBER-B: 128); backbone/swin
_C.MODEL.SWINT.OUT_CHANNELS = (96, 192, 384, 768)  # widths of the 4 stages (C, 2C, 4C, 8C); backbone/fpn
_C.MODEL.SWINT.DEPTHS = (2, 2, 6, 2)  # blocks per stage (FIBER-B: (2, 2, 18, 2)); backbone/swin
_C.MODEL.SWINT.NUM_HEADS = (3, 6, 12, 24)  # attention heads per stage (FIBER-B: (4, 8, 16, 32)); backbone/swin
_C.MODEL.SWINT.WINDOW_SIZE = 7  # attention window side in tokens (FIBER-B: 12); backbone/swin
_C.MODEL.SWINT.MLP_RATIO = 4  # MLP hidden width / C; backbone/swin
_C.MODEL.SWINT.DROP_PATH_RATE = 0.2  # stochastic depth, linear over all blocks up to this (FIBER: 0.4); swin
_C.MODEL.SWINT.APE = False  # absolute position embedding (FIBER: False; only False is supported); backbone/swin
_C.MODEL.SWINT.VERSION = "v1"  # Swin variant; FIBER uses "fusion" (image-text fusion in the backbone); backbone
# [added] number of fused (image<->text cross-attention) blocks at the END of Swin stage 3; all stage-4 blocks are
# fused too, each paired with one of the last FUSION_BLOCKS_STAGE3 + DEPTHS[3] text layers (upstream hard-codes
# 4: stage-3 blocks 14..17 of 18); fusion_backbone, language_backbone
_C.MODEL.SWINT.FUSION_BLOCKS_STAGE3 = 4

# ---------------------------------------------------------------------------------------------------- fpn
_C.MODEL.FPN = CN()
_C.MODEL.FPN.FREEZE = False  # freeze the FPN (re-applied by train()); detector
_C.MODEL.FPN.USE_GN = False  # GroupNorm in FPN convs; backbone/fpn
_C.MODEL.FPN.USE_RELU = False  # ReLU after FPN convs; backbone/fpn
_C.MODEL.FPN.DROP_BLOCK = True  # DropBlock on merged P4/P3 in training (inherited from GLIP); backbone/fpn
_C.MODEL.FPN.DROP_PROB = 0.3  # DropBlock drop probability; backbone/fpn
_C.MODEL.FPN.DROP_SIZE = 3  # DropBlock block side in pixels; backbone/fpn

# ---------------------------------------------------------------------------------------------------- group norm
_C.MODEL.GROUP_NORM = CN()
_C.MODEL.GROUP_NORM.DIM_PER_GP = -1  # channels per group (-1: use NUM_GROUPS); rpn head
_C.MODEL.GROUP_NORM.NUM_GROUPS = 16  # number of GroupNorm groups in the DyHead; rpn head
_C.MODEL.GROUP_NORM.EPSILON = 1e-5  # GroupNorm epsilon; rpn head

# ---------------------------------------------------------------------------------------------------- anchors
_C.MODEL.RPN = CN()
_C.MODEL.RPN.USE_FPN = False  # one anchor size per FPN level (FIBER: True); rpn/anchor_generator
_C.MODEL.RPN.ANCHOR_SIZES = (32, 64, 128, 256, 512)  # anchor side in pixels per level (FIBER: 64..1024); anchors
_C.MODEL.RPN.ANCHOR_STRIDE = (16,)  # stride per FPN level in pixels (FIBER: 8..128); anchors
_C.MODEL.RPN.ASPECT_RATIOS = (0.5, 1.0, 2.0)  # anchor aspect ratios h/w (FIBER: (1.0,)); anchors
_C.MODEL.RPN.OCTAVE = 2.0  # octave base for SCALES_PER_OCTAVE; anchors
_C.MODEL.RPN.SCALES_PER_OCTAVE = 3  # anchor scales per octave (FIBER: 1); anchors
_C.MODEL.RPN.FREEZE = False  # freeze the dense head (re-applied by train()); detector

# ---------------------------------------------------------------------------------------------------- ATSS
_C.MODEL.ATSS = CN()
_C.MODEL.ATSS.PRIOR_PROB = 0.01  # prior for the classification bias init; rpn head
_C.MODEL.ATSS.INFERENCE_TH = 0.05  # minimum score of a candidate box at test time (refexp: 0.0); rpn/inference
_C.MODEL.ATSS.NMS_TH = 0.6  # IoU threshold of the class-aware NMS at test time; rpn/inference
_C.MODEL.ATSS.PRE_NMS_TOP_N = 1000  # candidates per level and image before NMS (refexp: 3000); rpn/inference
_C.MODEL.ATSS.TOPK = 9  # ATSS candidate anchors per level and GT box; rpn/loss
_C.MODEL.ATSS.REG_LOSS_WEIGHT = 2.0  # weight of the GIoU regression loss; rpn/loss
_C.MODEL.ATSS.DETECTIONS_PER_IMG = 100  # detections kept per image after NMS (LVIS eval: 300); rpn/inference

# ---------------------------------------------------------------------------------------------------- DyHead
_C.MODEL.DYHEAD = CN()
_C.MODEL.DYHEAD.NUM_CLASSES = 81  # classes + 1; sets the frozen cls_logits width (NUM_CLASSES - 1) and the class
#                                   dimension of test-time scores when MDETR-style aggregation is off; rpn head
_C.MODEL.DYHEAD.PRIOR_PROB = 0.01  # prior for the cls_logits / bias0 initialisation; rpn head
_C.MODEL.DYHEAD.NUM_CONVS = 4  # DyConv blocks in the tower (FIBER: 6); rpn head
_C.MODEL.DYHEAD.CHANNELS = 128  # tower width (FIBER: 256 = BACKBONE.OUT_CHANNELS); rpn head
_C.MODEL.DYHEAD.USE_DFCONV = False  # modulated deformable 3x3 convs in DyConv (FIBER: True); rpn head
# [added] zero-initialise each DyConv's offset conv (offsets 0, masks 0.5: DCNv2's and the original DyHead's init)
# instead of upstream's PyTorch default; only matters for a head trained from scratch (the demo); rpn head
_C.MODEL.DYHEAD.ZERO_INIT_OFFSETS = False
_C.MODEL.DYHEAD.SCORE_AGG = "MEAN"  # token -> class score aggregation at test time: "MEAN" (only); rpn/inference
_C.MODEL.DYHEAD.LOG_SCALE = 0.0  # initial log temperature of the dot-product logits; rpn head
_C.MODEL.DYHEAD.USE_GN = False  # GroupNorm after each DyConv conv (FIBER: True); rpn head
_C.MODEL.DYHEAD.USE_DYFUSE = False  # scale-aware attention across levels (FIBER: True); rpn head
_C.MODEL.DYHEAD.USE_DYRELU = False  # dynamic ReLU after each DyConv (FIBER: True); rpn head

_C.MODEL.DYHEAD.FUSE_CONFIG = CN()
_C.MODEL.DYHEAD.FUSE_CONFIG.EARLY_FUSE_ON = False  # GLIP fusion inside the DyHead (FIBER: False; only False works)
_C.MODEL.DYHEAD.FUSE_CONFIG.TYPE = ""  # GLIP early-fusion type (FIBER: "NONE"; only ""/"NONE" accepted); rpn head
_C.MODEL.DYHEAD.FUSE_CONFIG.USE_DOT_PRODUCT_TOKEN_LOSS = False  # box x token dot-product logits + token focal loss
#                                                                 (FIBER: True); rpn head, rpn/loss
_C.MODEL.DYHEAD.FUSE_CONFIG.TOKEN_GAMMA = 2.0  # focal gamma of the token loss; rpn/loss
_C.MODEL.DYHEAD.FUSE_CONFIG.TOKEN_ALPHA = 0.25  # focal alpha of the token loss; rpn/loss
_C.MODEL.DYHEAD.FUSE_CONFIG.DOT_PRODUCT_TOKEN_LOSS_WEIGHT = 1.0  # weight of the token loss; rpn/loss
_C.MODEL.DYHEAD.FUSE_CONFIG.CLAMP_DOT_PRODUCT = False  # clamp dot-product logits to +-50000 (FIBER: True); rpn head
_C.MODEL.DYHEAD.FUSE_CONFIG.ADD_LINEAR_LAYER = False  # learnable per-position text offsets (prompt tuning,
#                                                       `fusion_backbone.tunable_linear`); fusion_backbone


# ----------------------------------------------------------------------------------------------------------------
# INPUT / AUGMENT
# ----------------------------------------------------------------------------------------------------------------
_C.INPUT = CN()
_C.INPUT.MIN_SIZE_TRAIN = 800  # shorter image side in training, pixels (int or tuple to sample from); transforms
_C.INPUT.MAX_SIZE_TRAIN = 1333  # cap on the longer side in training, pixels; data/transforms
_C.INPUT.MIN_SIZE_TEST = 800  # shorter image side at test time, pixels; data/transforms
_C.INPUT.MAX_SIZE_TEST = 1333  # cap on the longer side at test time, pixels; data/transforms
_C.INPUT.PIXEL_MEAN = [102.9801, 115.9465, 122.7717]  # per-channel mean (BGR order when TO_BGR255; FIBER: ImageNet
#                                                        [103.530, 116.280, 123.675]); data/transforms
_C.INPUT.PIXEL_STD = [1.0, 1.0, 1.0]  # per-channel std (FIBER: [57.375, 57.120, 58.395]); data/transforms
_C.INPUT.TO_BGR255 = True  # feed BGR in 0..255 before normalising (the released weights expect it); transforms
# [added] on a horizontal flip also swap the words "left"/"right" in the caption and move the spans (upstream
# does not: False); data/transforms
_C.INPUT.FLIP_SWAP_LEFT_RIGHT = False

_C.AUGMENT = CN()
_C.AUGMENT.FLIP_PROB_TRAIN = 0.5  # horizontal flip probability in training (refexp: 0.0); data/transforms
_C.AUGMENT.MULT_MIN_SIZE_TRAIN = ()  # if non-empty, shorter side sampled from these in training; data/transforms

# ----------------------------------------------------------------------------------------------------------------
# DATASETS
# ----------------------------------------------------------------------------------------------------------------
_C.DATASETS = CN()
_C.DATASETS.TRAIN = ()  # training dataset names (paths catalog / REGISTER); data/build
_C.DATASETS.TEST = ()  # test dataset names, one loader each; data/build, engine/inference
# Extra dataset names: name -> {img_dir, ann_file, ...} (paths relative to a data root); config/paths_catalog
_C.DATASETS.REGISTER = CN(new_allowed=True)
_C.DATASETS.TRAIN_DATASETNAME_SUFFIX = ""  # appended to TRAIN names ("_grounding": COCO json as grounding); build
_C.DATASETS.TEST_DATASETNAME_SUFFIX = ""  # appended to TEST names; data/build
_C.DATASETS.FEW_SHOT = 0  # k > 0: keep a k-shot training subset (greedy over images); data/datasets
_C.DATASETS.SHUFFLE_SEED = 0  # few-shot subset seed ("seeded" subsets): 0 = greedy order over sorted ids, > 0 =
#                               shuffle the order with this seed first; also mixed into the data-order seed; data/build
# [added] which k-shot subset: "seeded" (each SHUFFLE_SEED > 0 its own subset) or "upstream" (upstream's subset:
# greedy over sorted image ids, SHUFFLE_SEED ignored, the same for every seed; for published few-shot numbers);
# data/datasets/few_shot
_C.DATASETS.FEW_SHOT_SUBSET = "seeded"
_C.DATASETS.GENERAL_COPY = -1  # repeat each training set this many times (-1: no repeat wrapper); data/build
_C.DATASETS.GENERAL_COPY_TEST = -1  # repeat each test set this many times (-1: none); data/build
_C.DATASETS.MIXED_COPY = 1  # repeats of "mixed*" training sets; data/build
_C.DATASETS.FLICKR_COPY = 1  # repeats of "flickr*" training sets; data/build
_C.DATASETS.COCO_COPY = 1  # repeats of the training sets coco_grounding_train, coco_dt_train and
#                             COCO_odinw_train_8copy_dt_train (full names, suffix included); data/build
_C.DATASETS.LVIS_COPY = 1  # repeats of the training sets lvis_grounding_train, lvisv1_dt_train and
#                             LVIS_odinw_train_8copy_dt_train (full names, suffix included); data/build
_C.DATASETS.OBJECT365_COPY = 1  # repeats of Objects365 training sets ("object365_odinw_2copy_dt_train"); data/build
_C.DATASETS.RANDOM_SAMPLE_NEG = -1  # max negative class names sampled into a detection caption (FIBER: 85);
#                                     <= 0: none for COCO/LVIS grounding (upstream), 85 for Objects365; data
_C.DATASETS.CONTROL_PROB = ()  # (p_one_neg, p_no_neg, p_full_neg, p_random_neg) of the caption negative sampler;
#                                 FIBER's p_random_neg = 0.2 is treated as 0 (upstream asserts on it); data/datasets
_C.DATASETS.ADD_DET_PROMPT = False  # prefix detection captions with "object detection : "; data/datasets
_C.DATASETS.DISABLE_SHUFFLE = False  # keep class names in id order in detection captions; data/datasets
_C.DATASETS.SEPARATION_TOKENS = " "  # separator between class names in captions (FIBER: ". "); data/prompts
_C.DATASETS.SPECIAL_SAFEGUARD_FOR_COCO_GROUNDING = False  # LVIS fine-tune caption mode (positives + sampled
#                                                           negatives, token budget); data/datasets
_C.DATASETS.OVERRIDE_CATEGORY = None  # categories replacing the json's (Python-literal list of dicts); data
_C.DATASETS.USE_OVERRIDE_CATEGORY = False  # apply OVERRIDE_CATEGORY; data/build
_C.DATASETS.CAPTION_PROMPT = None  # per-class {"prefix","name","suffix"} list (Python literal); data/prompts
_C.DATASETS.USE_CAPTION_PROMPT = False  # apply CAPTION_PROMPT; data/build
_C.DATASETS.FLICKR_GT_TYPE = "separate"  # Flickr30k GT boxes per phrase: "separate" (any-box) or "merged"; eval
# [added] folder of the raw Flickr30k Entities files ({val,test}.txt, Annotations/, Sentences/); "" = upstream's
# <data root>/flickr30k/flickr30k; data/evaluation (flickr)
_C.DATASETS.FLICKR_ENTITIES_ROOT = ""
_C.DATASETS.SUPRESS_QUERY = None  # extra text (str or list of names) appended to detection prompts; data/prompts
_C.DATASETS.USE_SUPRESS_QUERY = False  # apply SUPRESS_QUERY; data/prompts
_C.DATASETS.LVIS_USE_NORMAL_AP = False  # LVIS standard AP (300/image) instead of Fixed AP; evaluation/lvis
_C.DATASETS.USE_CROWD = False  # keep iscrowd boxes in grounding training sets; data/datasets
_C.DATASETS.MAX_BOX = -1  # cap on boxes per training image (-1: none); data/datasets
_C.DATASETS.DISABLE_CLIP_TO_IMAGE = False  # skip clipping GT boxes to the image; data/datasets

# ----------------------------------------------------------------------------------------------------------------
# DATALOADER
# ----------------------------------------------------------------------------------------------------------------
_C.DATALOADER = CN()
# DataLoader worker processes per process, capped by the CPUs available to that process
# (os.sched_getaffinity; a log line says when it caps); 0 = load in the main process; data/build
_C.DATALOADER.NUM_WORKERS = 4
_C.DATALOADER.SIZE_DIVISIBILITY = 0  # pad batches to a multiple of this (FIBER: 32, needed by Swin); collate
_C.DATALOADER.ASPECT_RATIO_GROUPING = True  # batch portrait and landscape images separately; data/build

# ----------------------------------------------------------------------------------------------------------------
# SOLVER
# ----------------------------------------------------------------------------------------------------------------
_C.SOLVER = CN()
_C.SOLVER.OPTIMIZER = "SGD"  # "SGD" or "ADAMW" (FIBER: ADAMW); solver/build
_C.SOLVER.MAX_ITER = 40000  # training iterations (derived from MAX_EPOCH when that is > 0); engine, data/build
_C.SOLVER.MAX_EPOCH = 0  # > 0: MAX_ITER = MAX_EPOCH * dataset length // IMS_PER_BATCH; data/build
_C.SOLVER.DATASET_LENGTH = -1  # [added] derived: training set length, written when MAX_EPOCH > 0; data/build
_C.SOLVER.BASE_LR = 0.001  # learning rate of non-text parameters; solver/build
_C.SOLVER.LANG_LR = 1e-5  # learning rate of every "language_backbone" parameter; solver/build
_C.SOLVER.BACKBONE_BODY_LR_FACTOR = 1.0  # LR factor of "backbone.body" (Swin) parameters; solver/build
_C.SOLVER.BIAS_LR_FACTOR = 2  # LR factor of parameters whose name contains "bias"; solver/build
# [added] LR factor of the DyHead's deformable offset/mask convs ("dyhead_tower.*.offset.*"; DCN practice is 0.1 when
# the head trains from scratch, as in the demo); 1.0 = upstream; solver/build
_C.SOLVER.DCN_OFFSET_LR_FACTOR = 1.0
_C.SOLVER.MOMENTUM = 0.9  # SGD momentum; solver/build
_C.SOLVER.WEIGHT_DECAY = 0.0005  # weight decay; solver/build
_C.SOLVER.WEIGHT_DECAY_BIAS = 0.0  # weight decay of "bias" parameters; solver/build
_C.SOLVER.WEIGHT_DECAY_NORM_FACTOR = 1.0  # weight-decay factor of "norm" parameters; solver/build
_C.SOLVER.WEIGHT_DECAY_SCHEDULE = False  # multiply weight decay by GAMMA at RATIO x each milestone; solver
_C.SOLVER.WEIGHT_DECAY_SCHEDULE_RATIO = 0.667  # fraction of each milestone where the decay drops; solver
_C.SOLVER.GAMMA = 0.1  # LR factor at each milestone; solver/lr_scheduler
_C.SOLVER.STEPS = (30000,)  # LR milestones in iterations (values < 1 are fractions of MAX_ITER); solver
_C.SOLVER.USE_COSINE = False  # cosine schedule down to MIN_LR instead of multi-step; solver/lr_scheduler
_C.SOLVER.MIN_LR = 1e-6  # final LR of the cosine schedule; solver/lr_scheduler
_C.SOLVER.WARMUP_FACTOR = 1.0 / 3  # LR factor at iteration 0 of the warm-up; solver/lr_scheduler
_C.SOLVER.WARMUP_ITERS = 500  # warm-up length in iterations; solver/lr_scheduler
_C.SOLVER.WARMUP_METHOD = "linear"  # "linear" or "constant"; solver/lr_scheduler
_C.SOLVER.USE_AUTOSTEP = False  # ReduceLROnPlateau on validation AP instead of fixed steps; engine/trainer
_C.SOLVER.STEP_PATIENCE = 5  # validations without improvement before an auto step; engine/trainer
_C.SOLVER.AUTO_TERMINATE_PATIENCE = -1  # validations without improvement before stopping (-1: never); engine
_C.SOLVER.CHECKPOINT_PERIOD = 2500  # iterations between checkpoints (and validations); engine/trainer
_C.SOLVER.CHECKPOINT_PER_EPOCH = -1.0  # > 0: checkpoint every this many epochs instead; engine/trainer
_C.SOLVER.IMS_PER_BATCH = 16  # images per iteration over all processes; data/build, engine
_C.SOLVER.MAX_NEG_PER_BATCH = 0.1  # skip a batch when more than this fraction of its images have no box; engine
_C.SOLVER.SEED = 0  # random seed (each process adds its rank); tools, engine
_C.SOLVER.USE_AMP = False  # mixed precision training (FIBER: True); engine/trainer
_C.SOLVER.AMP_DTYPE = "float16"  # [added] autocast dtype: "float16" (GradScaler) or "bfloat16"; engine/trainer
_C.SOLVER.GRAD_CLIP = 0.0  # legacy full-model gradient-norm clip (> 0 enables) when CLIP_GRADIENTS is off; engine
_C.SOLVER.MODEL_EMA = 0.0  # EMA decay of a model copy (0: no EMA; FIBER: 0.999); solver/ema, engine
_C.SOLVER.USE_EMA_FOR_MONITOR = False  # validate the EMA weights during training; engine/trainer
_C.SOLVER.FIND_UNUSED_PARAMETERS = True  # DDP find_unused_parameters; engine/trainer
_C.SOLVER.TUNING_HIGHLEVEL_OVERRIDE = None  # finetune mode: "full", "linear_prob", "language_prompt_v1".."v4";
#                                             tools/finetune
_C.SOLVER.CLIP_GRADIENTS = CN()
_C.SOLVER.CLIP_GRADIENTS.ENABLED = False  # clip gradients (FIBER pretraining: True); engine/trainer
_C.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = "full_model"  # "full_model" (one norm over all parameters; only one); engine
_C.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = 0.0  # maximum gradient norm (FIBER: 1.0); engine/trainer
_C.SOLVER.CLIP_GRADIENTS.NORM_TYPE = 2.0  # p of the gradient norm; engine/trainer

# ----------------------------------------------------------------------------------------------------------------
# TEST
# ----------------------------------------------------------------------------------------------------------------
_C.TEST = CN()
_C.TEST.DURING_TRAINING = False  # validate on DATASETS.TEST during training; engine/trainer
_C.TEST.IMS_PER_BATCH = 16  # test images per batch over all processes (grounding eval needs 1 per process); data
_C.TEST.EVAL_TASK = ""  # "detection", "grounding" or "" (decided by the dataset); engine/inference
_C.TEST.SUBSET = -1  # evaluate only the first n batches (-1: all); engine/inference
_C.TEST.CHUNKED_EVALUATION = -1  # class names per prompt chunk for long class lists (LVIS: 40; -1: one prompt);
#                                  engine/inference, data/prompts
_C.TEST.MDETR_STYLE_AGGREGATE_CLASS_NUM = -1  # > 0: score K = this many label slots from the positive map (LVIS:
#                                               3000, Flickr: 100); -1: K = DYHEAD.NUM_CLASSES - 1; rpn/inference
# [added] COCO / ODinW box AP back end: "faster" (faster-coco-eval; the same numbers, several times faster) or
# "pycocotools" (upstream's, the reference); the metrics and tables name the one used; data/evaluation
_C.TEST.COCO_EVAL_BACKEND = "faster"
# [added] LVIS AP back end: "faster" (faster-coco-eval's LVIS mode; equal to 1e-4) or "lvis" (the lvis package,
# upstream's, the reference); data/evaluation
_C.TEST.LVIS_EVAL_BACKEND = "faster"
_C.TEST.USE_EMA_WEIGHTS = False  # [added] evaluate the checkpoint's "model_ema" weights instead of "model";
#                                  utils/checkpoint, tools
_C.TEST.REUSE_IMAGE_PREFIX = True  # [added] chunked prompts: run the caption-independent image prefix once per
# batch and only the fused rest per chunk (same results, ~1.8x fewer FLOPs for LVIS); engine/inference
_C.TEST.CHUNK_BATCH = 0  # [added] prompt chunks run together as one batch after the shared image prefix (0: as
#                          many as fit in half the free memory, at most 8 on a CPU); detector detect_prompts
_C.TEST.PRECISION = "fp32"  # [added] inference precision: "fp32" (strict), "tf32" (CUDA TF32 matmuls), "bf16" or
#                             "fp16" (autocast; sensitive parts stay fp32); detector detect_prompts, Predictor
_C.TEST.COMPILE = ""  # [added] torch.compile mode for the backbone passes of detect_prompts: "" (off), "default",
#                        "reduce-overhead" (CUDA graphs) or "max-autotune"; detector detect_prompts

# ----------------------------------------------------------------------------------------------------------------
# Misc
# ----------------------------------------------------------------------------------------------------------------
_C.OUTPUT_DIR = "OUTPUT"  # where checkpoints, logs and predictions go (env AMLT_OUTPUT_DIR overrides); tools

# ================================================================================================================
# Inert keys: accepted ONLY so that upstream FIBER/GLIP YAML files and README command lines load unchanged.
# They have no effect in this implementation (as in upstream FIBER, unless said otherwise). Merging a file that
# sets one to a non-default value logs the reason below.
# ================================================================================================================
INERT_KEYS = {}


def _inert(node: CN, key: str, default, full_key: str, reason: str) -> None:
    setattr(node, key, default)
    INERT_KEYS[full_key] = reason


_PLACEHOLDER = "class count of a head FIBER does not build; task yamls set it as a placeholder"
_GLIP_ONLY = "GLIP option that FIBER's configs set but its model never reads"
_CAPTION_GEN = "caption-generation option of GLIP's pseudo-caption / VQA data, unused by FIBER's data sets"

# Heads FIBER does not build (task yamls and README command lines set their class counts / detection caps).
_C.MODEL.ATSS.NUM_CLASSES = 81  # (inert, see INERT_KEYS)
INERT_KEYS["MODEL.ATSS.NUM_CLASSES"] = _PLACEHOLDER + " (the VL head uses MODEL.DYHEAD.NUM_CLASSES)"
_C.MODEL.FCOS = CN()
_inert(_C.MODEL.FCOS, "NUM_CLASSES", 81, "MODEL.FCOS.NUM_CLASSES", _PLACEHOLDER)
_inert(_C.MODEL.FCOS, "DETECTIONS_PER_IMG", 100, "MODEL.FCOS.DETECTIONS_PER_IMG",
       "FCOS head is not built; README passes it beside MODEL.ATSS.DETECTIONS_PER_IMG (the one that is read)")
_C.MODEL.RETINANET = CN()
_inert(_C.MODEL.RETINANET, "DETECTIONS_PER_IMG", 100, "MODEL.RETINANET.DETECTIONS_PER_IMG",
       "RetinaNet head is not built; README passes it beside MODEL.ATSS.DETECTIONS_PER_IMG (the one that is read)")
_C.MODEL.ROI_HEADS = CN()
_inert(_C.MODEL.ROI_HEADS, "DETECTIONS_PER_IMG", 100, "MODEL.ROI_HEADS.DETECTIONS_PER_IMG",
       "ROI heads are not built (MODEL.RPN_ONLY); README passes it beside MODEL.ATSS.DETECTIONS_PER_IMG")
_C.MODEL.ROI_BOX_HEAD = CN()
_inert(_C.MODEL.ROI_BOX_HEAD, "NUM_CLASSES", 81, "MODEL.ROI_BOX_HEAD.NUM_CLASSES", _PLACEHOLDER)

# DyHead / fusion flags with no effect in FIBER (its DyHead has no early fusion).
_inert(_C.MODEL.DYHEAD, "TOPK", 9, "MODEL.DYHEAD.TOPK", "ATSS uses MODEL.ATSS.TOPK; DYHEAD.TOPK is never read")
_inert(_C.MODEL.DYHEAD, "USE_CHECKPOINT", False, "MODEL.DYHEAD.USE_CHECKPOINT",
       "upstream checkpoints only the early-fusion layers, which FIBER does not have")
_FC = _C.MODEL.DYHEAD.FUSE_CONFIG
_inert(_FC, "USE_LAYER_SCALE", True, "MODEL.DYHEAD.FUSE_CONFIG.USE_LAYER_SCALE", "only used by GLIP early fusion")
for _name in (
    "CLAMP_MIN_FOR_UNDERFLOW",
    "CLAMP_MAX_FOR_OVERFLOW",
    "CLAMP_BERTATTN_MIN_FOR_UNDERFLOW",
    "CLAMP_BERTATTN_MAX_FOR_OVERFLOW",
):
    _inert(_FC, _name, False, f"MODEL.DYHEAD.FUSE_CONFIG.{_name}", "only used by GLIP early fusion")
_inert(_FC, "USE_FUSED_FEATURES_DOT_PRODUCT", False, "MODEL.DYHEAD.FUSE_CONFIG.USE_FUSED_FEATURES_DOT_PRODUCT",
       "needs GLIP early fusion; FIBER uses the backbone's text features (True is rejected by validate_config)")
_inert(_FC, "USE_TOKEN_LOSS", False, "MODEL.DYHEAD.FUSE_CONFIG.USE_TOKEN_LOSS",
       "GLIP token-softmax loss, not implemented (True is rejected by validate_config)")
_inert(_FC, "USE_CONTRASTIVE_ALIGN_LOSS", False, "MODEL.DYHEAD.FUSE_CONFIG.USE_CONTRASTIVE_ALIGN_LOSS",
       "MDETR contrastive-align loss, not implemented (True is rejected by validate_config)")
_inert(_FC, "CONTRASTIVE_HIDDEN_DIM", 64, "MODEL.DYHEAD.FUSE_CONFIG.CONTRASTIVE_HIDDEN_DIM",
       "width of the contrastive-align projection, which is not built")
_inert(_FC, "MLM_LOSS", False, "MODEL.DYHEAD.FUSE_CONFIG.MLM_LOSS",
       "masked-language-model loss, not implemented (GLIP's README passes False; True is rejected)")

_CLS_LOSS = "the class-logit focal loss is 0-weighted in FIBER and emitted as a constant 0 here"
_inert(_FC, "USE_CLASSIFICATION_LOSS", False, "MODEL.DYHEAD.FUSE_CONFIG.USE_CLASSIFICATION_LOSS",
       _CLS_LOSS + " (True is rejected by validate_config)")
_C.MODEL.FOCAL = CN()
_inert(_C.MODEL.FOCAL, "LOSS_ALPHA", 0.25, "MODEL.FOCAL.LOSS_ALPHA", _CLS_LOSS)
_inert(_C.MODEL.FOCAL, "LOSS_GAMMA", 2.0, "MODEL.FOCAL.LOSS_GAMMA", _CLS_LOSS)

# Backbone / text options with a single supported value in FIBER.
_inert(_C.MODEL.BACKBONE, "OUT_FEATURES", ("stage2", "stage3", "stage4", "stage5"), "MODEL.BACKBONE.OUT_FEATURES",
       "the fusion backbone always feeds Swin stages 2-4 to the FPN")
_inert(_C.MODEL.BACKBONE, "USE_BN", False, "MODEL.BACKBONE.USE_BN", "FIBER has no BatchNorm buffers to broadcast")
_inert(_C.MODEL.LANGUAGE_BACKBONE, "MASK_SPECIAL", False, "MODEL.LANGUAGE_BACKBONE.MASK_SPECIAL",
       "masking special tokens is not implemented (FIBER: False; True is rejected by validate_config)")
_inert(_C.MODEL.RPN, "STRADDLE_THRESH", 0, "MODEL.RPN.STRADDLE_THRESH",
       "anchor visibility is not used by ATSS")
_inert(_C.AUGMENT, "VERTICAL_FLIP_PROB_TRAIN", 0.0, "AUGMENT.VERTICAL_FLIP_PROB_TRAIN",
       "vertical flipping is not implemented (a non-zero value is rejected by validate_config)")

# Model flags of upstream's other model families.
_inert(_C.MODEL, "BOX_ON", True, "MODEL.BOX_ON", "ROI box head flag; FIBER is RPN_ONLY")
_inert(_C.MODEL, "MASK_ON", False, "MODEL.MASK_ON", "mask head is not implemented")
_inert(_C.MODEL, "KEYPOINT_ON", False, "MODEL.KEYPOINT_ON", "keypoint head is not implemented")

# Data options FIBER's yamls set (mostly to their defaults) that none of its data sets read.
_D = _C.DATASETS
for _name, _default, _reason in (
    ("ADD_DET_PROMPT_ADVANCED", False, _GLIP_ONLY),
    ("ALTERNATIVE_TRAINING", False, "GLIP alternating-dataset training, not implemented"),
    ("MULTISTAGE_TRAINING", False, "GLIP multi-stage training, not implemented"),
    ("BOX_THRESHOLD", 0.1, _CAPTION_GEN),
    ("CAPTION_CONF", 0.9, _CAPTION_GEN),
    ("CAPTION_MIN_BOX", 1, _CAPTION_GEN),
    ("CAPTION_NMS", 0.9, _CAPTION_GEN),
    ("CAPTION_FORMAT_VERSION", "v1", _CAPTION_GEN),
    ("PACK_RANDOM_CAPTION_NUMBER", 0, _CAPTION_GEN),
    ("INFERENCE_CAPTION", False, _CAPTION_GEN),
    ("FULL_QUESTION_PROB", 0.5, _CAPTION_GEN),
    ("NEG_QUESTION_PROB", 0.8, _CAPTION_GEN),
    ("POS_QUESTION_PROB", 0.6, _CAPTION_GEN),
    ("FURTHER_SCREEN", False, _CAPTION_GEN),
    ("CLASS_AGNOSTIC", False, _GLIP_ONLY),
    ("CLASS_CONCAT", False, _GLIP_ONLY),
    ("ONE_HOT", False, _GLIP_ONLY),
    ("NO_MINUS_ONE_FOR_ONE_HOT", False, _GLIP_ONLY),
    ("REPLACE_CLEAN_LABEL", False, _GLIP_ONLY),
    ("PROMPT_LIMIT_NEG", -1, _GLIP_ONLY),
    ("USE_OD_AUG", False, _GLIP_ONLY),
    ("USE_COCO_FORMAT", False, _GLIP_ONLY),
    ("LOCAL_DEBUG", False, "upstream debugging switch"),
    ("PREDOWNLOAD_BING", False, "upstream cluster data staging"),
    ("PREDOWNLOAD_WITH_AZCOPY", False, "upstream cluster data staging"),
    ("VG_COPY", 1, "Visual Genome training sets are not in FIBER's recipes"),
    ("OI_COPY", 1, "OpenImages training sets are not in FIBER's recipes"),
    ("IN_COPY", 1, "ImageNet training sets are not in FIBER's recipes"),
    ("PREDEFINED_TEXT", None, "GLIP ODinW yamls point at a category_description.json that is never read"),
):
    _inert(_D, _name, _default, f"DATASETS.{_name}", _reason)

_inert(_C.DATASETS, "SAFEGUARD_POSITIVE_CAPTION", True, "DATASETS.SAFEGUARD_POSITIVE_CAPTION",
       "positives that overflow the caption token budget are always dropped (upstream's True; False is rejected)")
_inert(_C.SOLVER, "TEST_WITH_INFERENCE", False, "SOLVER.TEST_WITH_INFERENCE",
       "validation during training always runs inference + evaluation (what True selects upstream)")
_inert(_C, "PATHS_CATALOG", os.path.join(os.path.dirname(__file__), "paths_catalog.py"), "PATHS_CATALOG",
       "the catalog is maskrcnn_benchmark.config.paths_catalog; add data sets with DATASETS.REGISTER")
_inert(_C, "TENSORBOARD_EXP", "OUTPUT", "TENSORBOARD_EXP", "TensorBoard files are written to OUTPUT_DIR/tensorboard")
_inert(_C.DATALOADER, "DISTRIBUTE_CHUNK_AMONG_NODE", False, "DATALOADER.DISTRIBUTE_CHUNK_AMONG_NODE",
       "upstream multi-node TSV chunking; the README passes False")
_inert(_C.DATALOADER, "USE_RANDOM_SEED", False, "DATALOADER.USE_RANDOM_SEED",
       "data order is always seeded from SOLVER.SEED for reproducible resume")

del _name, _default, _reason
