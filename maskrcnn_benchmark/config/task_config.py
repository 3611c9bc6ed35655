"""What a task config may change on an already built model (tools/test_grounding_net.py ``--task_config``).

A task config (``configs/odinw/*.yaml``, ``configs/lvis/minival.yaml``, ...) is merged on the model config. At
evaluation time the model is built and loaded once, so the MODEL.* keys of a task config fall in three sets:

* applied: post-processing keys (:data:`POSTPROCESSING_KEYS`); the evaluation rebuilds the post-processor;
* ignored (logged): ``NUM_CLASSES`` placeholders, keys of heads FIBER does not have, MODEL.WEIGHT / DEVICE;
* rejected: anything else, which would change the network (an error naming the keys and the file).

Upstream silently ignores every MODEL.* key of a task config; DESIGN.md ("Task configs are honoured").
"""

from __future__ import annotations

import logging
from typing import Any

from maskrcnn_benchmark.config.keys import flatten, get_key, set_key

__all__ = ["POSTPROCESSING_KEYS", "classify_task_model_keys", "prepare_task_config"]

logger = logging.getLogger(__name__)

#: MODEL.* keys a task config may change: they are applied by rebuilding the post-processor of the model.
POSTPROCESSING_KEYS = (
    "MODEL.ATSS.INFERENCE_TH",
    "MODEL.ATSS.NMS_TH",
    "MODEL.ATSS.PRE_NMS_TOP_N",
    "MODEL.ATSS.DETECTIONS_PER_IMG",
    "MODEL.DYHEAD.SCORE_AGG",
)
# MODEL.* keys a task config may carry without effect (logged): upstream's task yamls set NUM_CLASSES
# "placeholders" and echo keys of heads FIBER does not have; the weights file wins over MODEL.WEIGHT.
_IGNORED_PREFIXES = ("MODEL.RETINANET.", "MODEL.FCOS.", "MODEL.ROI_HEADS.", "MODEL.ROI_BOX_HEAD.",
                     "MODEL.ROI_MASK_HEAD.", "MODEL.ROI_KEYPOINT_HEAD.")
_IGNORED_KEYS = ("MODEL.WEIGHT", "MODEL.DEVICE")


def classify_task_model_keys(base_cfg: Any, task_cfg: Any) -> dict[str, list[str]]:
    """Sort the MODEL.* keys whose value differs between the model config and a task config.

    Returns:
        {"applied": post-processing keys that take effect, "ignored": placeholders / inert keys (logged),
        "rejected": keys that would change the network (an error)}, each sorted.
    """
    base, task = flatten(base_cfg.MODEL, "MODEL"), flatten(task_cfg.MODEL, "MODEL")
    result: dict[str, list[str]] = {"applied": [], "ignored": [], "rejected": []}
    for key in sorted(set(base) | set(task)):
        if base.get(key) == task.get(key):
            continue
        if key in POSTPROCESSING_KEYS:
            result["applied"].append(key)
        elif key.endswith(".NUM_CLASSES") or key in _IGNORED_KEYS or key.startswith(_IGNORED_PREFIXES):
            result["ignored"].append(key)
        else:
            result["rejected"].append(key)
    return result


def prepare_task_config(base_cfg: Any, task_cfg: Any, task_name: str) -> Any:
    """Check a task config against the model's and return the config its post-processor is built from.

    The returned config is a mutable copy of ``task_cfg`` with every ignored MODEL.* key reset to the model's
    value (so e.g. a ``DYHEAD.NUM_CLASSES: 8`` placeholder does not shrink the label slots).

    Raises:
        ValueError: the task config changes a key that shapes the network (names the keys and the file).
    """
    keys = classify_task_model_keys(base_cfg, task_cfg)
    if keys["rejected"]:
        details = ", ".join(f"{k}={get_key(task_cfg, k)!r} (model: {get_key(base_cfg, k)!r})"
                            for k in keys["rejected"])
        raise ValueError(f"{task_name}: task config changes model keys that do not fit the loaded model: {details}; "
                         "pass them with the model config instead")
    if keys["ignored"]:
        logger.info("%s: ignoring MODEL keys that do not change the loaded model (placeholders / unused heads): %s",
                    task_name, ", ".join(keys["ignored"]))
    if keys["applied"]:
        logger.info("%s: post-processing keys taking effect: %s", task_name,
                    ", ".join(f"{k}={get_key(task_cfg, k)!r}" for k in keys["applied"]))
    cfg = task_cfg.clone()
    cfg.defrost()
    for key in keys["ignored"]:
        set_key(cfg, key, get_key(base_cfg, key))
    return cfg
