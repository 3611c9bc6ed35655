"""The published FIBER training configs (paths under configs/), shared by the config and engine tests."""

PUBLISHED_TRAINING_YAMLS = [
    "pretrain/mixed_nococo_flickr_objects365.yaml",
    "pretrain/mixed_nococo_flickr_objects365_refexpclean.yaml",
    "e2e_dyhead_SwinT_B_FPN_coco_finetuning_fusion_backbone.yaml",
    "e2e_dyhead_SwinT_B_FPN_lvis_finetuning_fusion_backbone.yaml",
    "refcoco.yaml",
    "refcocoplus.yaml",
    "refcocog.yaml",
]
