"""The one loader of inference weights: evaluation, the Predictor, fine-tuning's evaluations, tools/demo.py.

Policy (the same everywhere a model is run for its outputs):

* the file is read safely (``weights_only``) through the explicit key map
  (:func:`maskrcnn_benchmark.utils.checkpoint.load_checkpoint_file` and the key map of
  :mod:`maskrcnn_benchmark.utils.key_map`); the ``model_ema`` weights with ``use_ema``;
* a file with a NaN or infinite value is refused, naming the first such tensor (a diverged run's weights
  give meaningless detections);
* a file that does not fit the config (shape mismatches, unexpected keys, keys missing from a training
  checkpoint) is refused with the grouped key report and its hints;
* a partial file that fits but leaves trainable parts of the detector at their random initialisation - a
  coarse-stage checkpoint (no FPN / DyHead / box head), a Swin ImageNet or a roberta-base file - is refused
  with the module groups it leaves untrained, unless ``allow_untrained=True`` (then a warning names them).

The model is not touched when a file is refused. Training start weights (``MODEL.WEIGHT`` for training or
fine-tuning, e.g. from ``fiber_coarse_init.pt``) are a different case: the training checkpointer accepts
partial files and logs the same grouped report, since training initialises the missing parts on purpose.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import torch

from maskrcnn_benchmark.utils.checkpoint import extract_state_dict, load_checkpoint_file
from maskrcnn_benchmark.utils.distributed import unwrap_model
from maskrcnn_benchmark.utils.key_map import DERIVED_BUFFER_PATTERN
from maskrcnn_benchmark.utils.model_serialization import (
    LoadReport,
    group_keys,
    load_state_dict,
    plan_state_dict_load,
)
from maskrcnn_benchmark.utils.training_state import non_finite_tensors  # re-exported (one NaN/inf check)

__all__ = ["DETECTOR_PARTS", "load_inference_weights", "non_finite_tensors", "untrained_parts"]

logger = logging.getLogger(__name__)

#: The detector's parts by state-dict prefix, as messages name them.
DETECTOR_PARTS = (
    ("fusion_backbone.backbone.body.", "Swin image backbone"),
    ("fusion_backbone.backbone.fpn.", "FPN"),
    ("fusion_backbone.language_backbone.", "RoBERTa text backbone"),
    ("rpn.head.", "DyHead and VL box head"),
)
_SHOWN_GROUPS = 3


def untrained_parts(keys: Sequence[str]) -> list[str]:
    """Model keys grouped by detector part: ``"FPN (16 tensors: fusion_backbone.backbone.fpn.{...}...)"``.

    Args:
        keys: our state-dict keys that a file leaves at their initial values.

    Returns:
        One description per part (parts in :data:`DETECTOR_PARTS` order, other modules after them).
    """
    by_part: dict[str, list[str]] = {}
    for key in keys:
        part = next((name for prefix, name in DETECTOR_PARTS if key.startswith(prefix)), None)
        by_part.setdefault(part or key.split(".")[0], []).append(key)
    order = [name for _, name in DETECTOR_PARTS] + sorted(set(by_part) - {name for _, name in DETECTOR_PARTS})
    out = []
    for part in [p for p in order if p in by_part]:
        groups = group_keys(by_part[part])
        shown = ", ".join(groups[:_SHOWN_GROUPS]) + (", ..." if len(groups) > _SHOWN_GROUPS else "")
        out.append(f"{part} ({len(by_part[part])} tensors: {shown})")
    return out


def _read_state_dict(path: str, use_ema: bool) -> Mapping[str, torch.Tensor]:
    state_dict = extract_state_dict(load_checkpoint_file(path), use_ema=use_ema, source=path)
    bad = non_finite_tensors(state_dict)
    if bad:
        raise ValueError(f"weight file {path}: tensor {bad[0]} holds NaN or infinite values ({len(bad)} of "
                         f"{len(state_dict)} tensors do); these weights would give meaningless detections (did "
                         f"the training diverge?): use an earlier checkpoint")
    return state_dict


def _check_fit(path: str, report: LoadReport, allow_untrained: bool) -> None:
    if not report.is_clean:
        raise ValueError(f"weight file {path} does not fit this config (was it trained with another config?):\n"
                         + report.format())
    untrained = [k for k in report.expected_missing if not DERIVED_BUFFER_PATTERN.search(k)]
    if not untrained:
        return
    parts = "; ".join(untrained_parts(untrained))
    if not allow_untrained:
        raise ValueError(f"weight file {path} is a {report.kind!r} checkpoint: it would leave {len(untrained)} "
                         f"tensors of the detector at their random initialisation: {parts}. Use a fine-grained "
                         f"FIBER checkpoint for inference (or allow untrained parts explicitly: "
                         f"Predictor(..., allow_untrained=True), --allow-untrained-weights)")
    logger.warning("%s (%r checkpoint): running with untrained parts, as allowed: %s", path, report.kind, parts)


def load_inference_weights(model: torch.nn.Module, weight: str | None, use_ema: bool = False,
                           allow_untrained: bool = False) -> LoadReport | None:
    """Loads the weights a model is run with (see the module docstring for the policy).

    Args:
        model: the detector (a DDP wrapper is unwrapped).
        weight: checkpoint path, found as given or under the data roots (``MODEL/...``); None / "": keep the
            model's current weights (with a warning).
        use_ema: load the file's ``model_ema`` weights (``TEST.USE_EMA_WEIGHTS``).
        allow_untrained: accept a partial file that leaves detector parts at their initialisation.

    Returns:
        The key report (None when no weight was given).

    Raises:
        FileNotFoundError: the file does not exist. ValueError: non-finite values, a file that does not fit,
        or untrained parts without ``allow_untrained`` (the model is left unchanged). KeyError: ``use_ema`` and
        the file has no ``model_ema``.
    """
    if not weight:
        logger.warning("no weight file given: the model keeps its current (e.g. random) weights")
        return None
    from maskrcnn_benchmark.engine.runner import resolve_weight_path

    path = resolve_weight_path(weight)
    state_dict = _read_state_dict(path, use_ema)
    source = f"{path} [{'model_ema' if use_ema else 'model'}]"
    core = unwrap_model(model)
    plan = plan_state_dict_load({k: tuple(v.shape) for k, v in state_dict.items()},
                                {k: tuple(v.shape) for k, v in core.state_dict().items()}, source=source)
    _check_fit(path, plan.report, allow_untrained)
    return load_state_dict(core, state_dict, source=source, strict=True)
