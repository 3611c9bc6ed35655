"""Python inference API: run a FIBER model on your own images with class names or a caption.

Example::

    from maskrcnn_benchmark.engine.predictor import Predictor

    predictor = Predictor("configs/e2e_dyhead_SwinT_B_FPN_coco_finetuning_fusion_backbone.yaml",
                          weight="MODEL/fiber_coco.pth")        # or Predictor(cfg_node, weight=..., device="cuda")
    dets = predictor.predict("street.jpg", ["person", "bicycle", "car"], threshold=0.5)
    print(dets.boxes, dets.scores, dets.names)                  # boxes: xyxy in the original image's pixels

Prompts:

* **detection**: a list of class names (or ``{label: name}``). The caption is built by
  :mod:`maskrcnn_benchmark.data.prompts` exactly as evaluation builds it (``DATASETS.SEPARATION_TOKENS``,
  upstream's name cleaning); a list too long for ``MODEL.LANGUAGE_BACKBONE.MAX_QUERY_LEN`` tokens is split
  into several prompts (``TEST.CHUNKED_EVALUATION`` sets the chunk size; the model shares the image's
  caption-independent work among them, ``GeneralizedVLRCNN.detect_prompts``) and the detections of all chunks
  are merged. Labels are 1..K in list order; ``names`` are the names given.
* **grounding**: a caption string. Its phrases are given as ``spans`` (one entry per phrase: a
  ``(start, end)`` character span or a list of them) or as ``phrases`` (substrings, located left to right).
  With neither, the caption is split into phrases at ``.``, ``,`` and ``;`` (each piece stripped of
  surrounding spaces; empty pieces dropped) - a plain rule, no NLTK and no downloads. Phrase ``i`` gets
  label ``i + 1``; ``names`` are the phrase texts. Both kinds are built by :mod:`maskrcnn_benchmark.data.prompts`.

Results are :class:`Detections`; :mod:`maskrcnn_benchmark.utils.visualizer` draws them.

Images: file paths, numpy arrays (``H x W``, ``H x W x 3`` or ``H x W x 4``, uint8, 16-bit or float; BGR by
default, as OpenCV reads them; ``rgb=True`` for RGB) or ``PIL.Image`` objects of any mode, all read by
:mod:`maskrcnn_benchmark.data.image_io` (16-bit and float images scaled by their range). Images of different
sizes are batched (``batch_size`` per forward pass).

Padding and batching: FIBER has no padding mask (upstream-facts.md 1.2): padded pixels take part in window
attention, in the text-to-image cross-attention and in the DyHead's global pooling, so an image's scores
depend on how much padding its batch adds (by about 0.02 for a trained tiny model). ``pad_mode`` chooses:

* ``"exact"`` (default): each image is padded only to a multiple of ``DATALOADER.SIZE_DIVISIBILITY``; images
  whose padded sizes are equal share a forward pass (up to ``batch_size``), others run separately. Results
  equal one-image-at-a-time inference (upstream's ``TEST.IMS_PER_BATCH 1``, the published COCO protocol).
* ``"batch"``: each batch is padded to its largest image, as upstream's evaluation with several images per
  GPU; fastest for mixed sizes, but an image's scores depend on its batch mates.
* ``"canvas"``: every image is padded to one fixed canvas (``canvas_size``, default a square of
  ``INPUT.MAX_SIZE_TEST``): any mix of sizes shares a pass and results do not depend on batching, at the
  cost of computing the whole canvas.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

# Prompt, split_caption_into_phrases (data/prompts.py), color_for_label and draw_detections
# (utils/visualizer.py) stay importable from here: users' scripts import them from this module.
from maskrcnn_benchmark.config import clean_opts, load_config
from maskrcnn_benchmark.data.image_io import ImageInput, load_image  # load_image: re-exported (public)
from maskrcnn_benchmark.data.prompts import (
    Prompt,
    build_detection_prompts,
    build_grounding_prompt,
    split_caption_into_phrases,
)
from maskrcnn_benchmark.engine.weights import load_inference_weights
from maskrcnn_benchmark.modeling.detector.chunked_prompts import PRECISIONS
from maskrcnn_benchmark.structures.bounding_box import BoxList
from maskrcnn_benchmark.structures.image_list import ImageList
from maskrcnn_benchmark.utils.distributed import unwrap_model
from maskrcnn_benchmark.utils.visualizer import color_for_label, draw_detections

__all__ = ["Detections", "Prompt", "Predictor", "split_caption_into_phrases", "load_image", "color_for_label",
           "draw_detections"]

logger = logging.getLogger(__name__)

_PAD_MODES = ("exact", "batch", "canvas")


# ---------------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------------


@dataclass
class Detections:
    """Detections of one image, in the original image's pixel coordinates.

    Attributes:
        boxes (Tensor[N, 4] float32): ``x1, y1, x2, y2`` (maskrcnn-benchmark's +1 convention: the box covers
            pixels x1..x2 inclusive; width in COCO JSON = x2 - x1 + 1, as upstream's evaluation writes it).
        scores (Tensor[N] float32): detection scores, sorted in decreasing order.
        labels (Tensor[N] int64): class labels (1..K in prompt order) or phrase labels (phrase index + 1).
        names (list of str): the class name / phrase of each box.
        image_size (tuple): (width, height) of the original image.
        source (str): file name, or "" for arrays and PIL images.
    """

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor
    names: list[str]
    image_size: tuple[int, int]
    source: str = ""

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def to_boxlist(self) -> BoxList:
        """A ``BoxList`` (xyxy, original size) with fields "scores", "labels" (what the evaluators take)."""
        boxlist = BoxList(self.boxes.clone(), self.image_size, mode="xyxy")
        boxlist.add_field("scores", self.scores.clone())
        boxlist.add_field("labels", self.labels.clone())
        return boxlist

    def to_coco_json(self, image_id: Any = None, category_ids: Mapping[int, int] | None = None
                     ) -> list[dict[str, Any]]:
        """COCO result records ``{"image_id", "category_id", "bbox": [x, y, w, h], "score", "name"}``.

        Written by the evaluators' record writer (``data/evaluation/coco.py``), with upstream's +1 width.

        Args:
            image_id: the COCO image id to write.
            category_ids: label -> COCO category id (default: the label itself).

        Raises:
            ValueError: ``category_ids`` lacks a label that occurs in the detections.
        """
        from maskrcnn_benchmark.data.evaluation.coco import coco_records_from_arrays

        if category_ids is not None:
            unmapped = sorted(set(self.labels.tolist()) - set(category_ids))
            if unmapped:
                raise ValueError(f"category_ids has no COCO category id for label(s) {unmapped}")
        return coco_records_from_arrays(image_id, self.boxes.numpy(), self.scores.numpy(), self.labels.numpy(),
                                        category_ids, plus_one=True, names=self.names, box_digits=3, score_digits=5)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"source", "width", "height", "detections": [{"box", "score", "label", "name"}]}``."""
        width, height = self.image_size
        return {
            "source": self.source, "width": int(width), "height": int(height),
            "detections": [{"box": [round(float(v), 3) for v in box], "score": round(float(score), 5),
                            "label": int(label), "name": name}
                           for box, score, label, name in zip(self.boxes.tolist(), self.scores.tolist(),
                                                              self.labels.tolist(), self.names)],
        }


# ---------------------------------------------------------------------------------------------------
# The predictor
# ---------------------------------------------------------------------------------------------------


class Predictor:
    """Runs a FIBER model on images with detection or grounding prompts.

    Args:
        cfg: a config (``CfgNode``) or the path of a YAML file (merged onto the defaults).
        weight: checkpoint to load, through the inference weight loader
            (:func:`maskrcnn_benchmark.engine.weights.load_inference_weights`): it must fit the config exactly
            (otherwise ``ValueError`` with the key report), hold only finite values and train every part of the
            detector (a coarse-stage, Swin or RoBERTa file is refused, naming the parts it lacks). None: keep
            ``model``'s / random weights.
        model: an existing model to use instead of building one from ``cfg``.
        device: "cpu", "cuda", ... (default: ``MODEL.DEVICE`` if available, else CPU).
        use_ema: load the ``model_ema`` weights of ``weight`` (default ``TEST.USE_EMA_WEIGHTS``).
        amp: autocast to float16 on CUDA (default True on CUDA; ignored on CPU): ``precision="fp16"``.
        precision: "fp32", "tf32", "bf16" or "fp16" (default: "fp16" with ``amp``, else ``TEST.PRECISION``);
            see ``GeneralizedVLRCNN.detect_prompts``.
        batch_size: images per forward pass.
        pad_mode: "exact", "batch" or "canvas" (see the module docstring).
        canvas_size: (height, width) of the canvas for ``pad_mode="canvas"``; default: a square of
            ``INPUT.MAX_SIZE_TEST`` rounded up to the size divisibility.
        opts: ``[KEY, VALUE, ...]`` config overrides (e.g. ``["MODEL.ATSS.INFERENCE_TH", "0.1"]``).
        reuse_prefix: compute the caption-independent part of the backbone once per batch, each prompt's
            pre-fusion text layers once (cached by the model) and ``TEST.CHUNK_BATCH`` prompt chunks per pass
            (same results as ``False``, the naive schedule of one full forward pass per prompt chunk).
        allow_untrained: accept a ``weight`` file that leaves detector parts at their random initialisation
            (a warning names them).

    The model can be any object with ``eval()``, ``to(device)`` and the ``detect_prompts(images, prompts, *,
    reuse_prefix, chunk_batch, precision, check_label_slots)`` method of ``GeneralizedVLRCNN``.
    """

    def __init__(self, cfg, weight: str | None = None, model: torch.nn.Module | None = None,
                 device: str | torch.device | None = None, use_ema: bool | None = None,
                 amp: bool | None = None, batch_size: int = 4, pad_mode: str = "exact",
                 canvas_size: tuple[int, int] | None = None, opts: Sequence[str] | None = None,
                 reuse_prefix: bool = True, allow_untrained: bool = False, precision: str | None = None):
        self.cfg = self._as_cfg(cfg, opts)
        if pad_mode not in _PAD_MODES:
            raise ValueError(f"pad_mode must be one of {_PAD_MODES}, got {pad_mode!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device) if device is not None else self._default_device()
        self.amp = (self.device.type == "cuda") if amp is None else (bool(amp) and self.device.type == "cuda")
        self.precision = precision or ("fp16" if self.amp else str(self.cfg.TEST.PRECISION))
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        self.batch_size = int(batch_size)
        self.pad_mode = pad_mode
        self.reuse_prefix = bool(reuse_prefix)
        self.size_divisible = int(self.cfg.DATALOADER.SIZE_DIVISIBILITY)
        self.canvas_size = tuple(canvas_size) if canvas_size else self._default_canvas()
        if model is None:
            from maskrcnn_benchmark.modeling.detector import build_detection_model

            model = build_detection_model(self.cfg)
        self.model = model
        if weight is not None:
            if use_ema is None:
                use_ema = bool(getattr(self.cfg.TEST, "USE_EMA_WEIGHTS", False))
            load_inference_weights(self.model, weight, use_ema=use_ema, allow_untrained=allow_untrained)
        self.model.eval().to(self.device)
        from maskrcnn_benchmark.data.transforms import build_transforms

        self.transforms = build_transforms(self.cfg, is_train=False)

    # -- set-up --------------------------------------------------------------------------------------

    @staticmethod
    def _as_cfg(cfg, opts: Sequence[str] | None):
        """A YAML path goes through the config loader; a CfgNode is copied (``opts`` merged into the copy)."""
        if isinstance(cfg, (str, os.PathLike)):
            return load_config(cfg, opts)
        cfg = cfg.clone()
        overrides = clean_opts(opts)
        if overrides:
            cfg.defrost()
            cfg.merge_from_list(overrides)
        return cfg

    def _default_device(self) -> torch.device:
        wanted = str(getattr(self.cfg.MODEL, "DEVICE", "cpu"))
        if wanted.startswith("cuda") and not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device(wanted)

    def _default_canvas(self) -> tuple[int, int]:
        side = int(self.cfg.INPUT.MAX_SIZE_TEST)
        if self.size_divisible > 0:
            side = int(math.ceil(side / self.size_divisible) * self.size_divisible)
        return side, side

    @property
    def tokenizer(self):
        """The model's tokenizer (``MODEL.LANGUAGE_BACKBONE.TOKENIZER_TYPE``)."""
        core = unwrap_model(self.model)
        return core.tokenizer

    # -- prompts -------------------------------------------------------------------------------------

    def detection_prompts(self, classes: Sequence[str] | Mapping[int, str]) -> list[Prompt]:
        """Prompts (chunked when needed) for a class list; labels 1..K in list order (or the mapping's)."""
        return build_detection_prompts(classes, self.tokenizer, separation_tokens=self.cfg.DATASETS.SEPARATION_TOKENS,
                                       chunk_size=int(self.cfg.TEST.CHUNKED_EVALUATION),
                                       max_query_len=int(self.cfg.MODEL.LANGUAGE_BACKBONE.MAX_QUERY_LEN))

    def grounding_prompt(self, caption: str, spans: Sequence[Any] | None = None,
                         phrases: Sequence[str] | None = None) -> Prompt:
        """The prompt of a caption; phrases from ``spans``, ``phrases`` or the default split rule."""
        return build_grounding_prompt(caption, self.tokenizer, int(self.cfg.MODEL.LANGUAGE_BACKBONE.MAX_QUERY_LEN),
                                      spans=spans, phrases=phrases)

    def _prompts(self, prompts, spans, phrases) -> list[Prompt]:
        if isinstance(prompts, Prompt):
            return [prompts]
        if isinstance(prompts, str):
            return [self.grounding_prompt(prompts, spans=spans, phrases=phrases)]
        if spans is not None or phrases is not None:
            raise ValueError("spans / phrases go with a caption string, not with a class list")
        if isinstance(prompts, Mapping) or (isinstance(prompts, Sequence) and not isinstance(prompts, bytes)):
            return self.detection_prompts(prompts)
        raise TypeError(f"prompts must be a list of class names or a caption string, got {type(prompts).__name__}")

    # -- images --------------------------------------------------------------------------------------

    def _prepare(self, images: Sequence[ImageInput], rgb: bool):
        tensors, sizes, sources = [], [], []
        for image in images:
            pil, source = load_image(image, rgb=rgb)
            tensor, _ = self.transforms(pil, None)
            tensors.append(tensor)
            sizes.append(pil.size)  # (width, height)
            sources.append(source)
        return tensors, sizes, sources

    def _padded_size(self, tensor: torch.Tensor) -> tuple[int, int]:
        if self.pad_mode == "canvas":
            return self.canvas_size
        height, width = int(tensor.shape[1]), int(tensor.shape[2])
        if self.size_divisible > 0:
            height = int(math.ceil(height / self.size_divisible) * self.size_divisible)
            width = int(math.ceil(width / self.size_divisible) * self.size_divisible)
        return height, width

    def _batches(self, tensors: Sequence[torch.Tensor]) -> list[list[int]]:
        """Indices of the images of each forward pass, following ``pad_mode``."""
        if self.pad_mode != "exact":
            order = list(range(len(tensors)))
            return [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        groups: dict[tuple[int, int], list[int]] = {}
        for index, tensor in enumerate(tensors):
            groups.setdefault(self._padded_size(tensor), []).append(index)
        return [members[i:i + self.batch_size] for members in groups.values()
                for i in range(0, len(members), self.batch_size)]

    def _batch(self, tensors: Sequence[torch.Tensor]) -> ImageList:
        sizes = [self._padded_size(t) for t in tensors]
        height, width = max(h for h, _ in sizes), max(w for _, w in sizes)
        batch = tensors[0].new_zeros((len(tensors), 3, height, width))
        for i, tensor in enumerate(tensors):
            if tensor.shape[1] > height or tensor.shape[2] > width:
                raise ValueError(f"image of size {tuple(tensor.shape[1:])} after resizing exceeds the canvas "
                                 f"{(height, width)}; raise canvas_size")
            batch[i, :, : tensor.shape[1], : tensor.shape[2]] = tensor
        return ImageList(batch, [(int(t.shape[1]), int(t.shape[2])) for t in tensors])

    # -- running -------------------------------------------------------------------------------------

    def _detect(self, batch: ImageList, prompts: Sequence[Prompt]) -> list[BoxList]:
        """One merged BoxList per image of the batch (every prompt, global labels), on the CPU."""
        outputs = self.model.detect_prompts(batch, prompts, reuse_prefix=self.reuse_prefix,
                                            chunk_batch=int(self.cfg.TEST.CHUNK_BATCH), precision=self.precision,
                                            check_label_slots=False)
        return [output.to("cpu") for output in outputs]

    def predict(self, images: ImageInput | Sequence[ImageInput],
                prompts: str | Sequence[str] | Mapping[int, str] | Prompt, threshold: float | None = None,
                rgb: bool = False, spans: Sequence[Any] | None = None,
                phrases: Sequence[str] | None = None) -> Detections | list[Detections]:
        """Detects the prompt's classes / phrases in each image.

        Args:
            images: one image or a list (paths, numpy arrays, PIL images; see :func:`load_image`).
            prompts: a list of class names / ``{label: name}`` (detection) or a caption (grounding).
            threshold: keep detections with score >= threshold (None: everything the post-processor keeps,
                i.e. ``MODEL.ATSS.INFERENCE_TH`` on the raw probability and ``DETECTIONS_PER_IMG``).
            rgb: numpy arrays are RGB (default BGR).
            spans, phrases: the caption's phrases (grounding only).

        Returns:
            A :class:`Detections` per image (a single one when a single image was given), scores sorted in
            decreasing order.
        """
        single = isinstance(images, (str, os.PathLike, np.ndarray)) or not isinstance(images, Sequence)
        image_list = [images] if single else list(images)
        if not image_list:
            raise ValueError("no image given")
        prompt_list = self._prompts(prompts, spans, phrases)
        tensors, sizes, sources = self._prepare(image_list, rgb)
        names = {label: name for prompt in prompt_list for label, name in prompt.names.items()}
        results: list[Detections | None] = [None] * len(tensors)
        for indices in self._batches(tensors):
            outputs = self._detect(self._batch([tensors[i] for i in indices]), prompt_list)
            for index, boxlist in zip(indices, outputs):
                results[index] = self._to_detections(boxlist, names, sizes[index], sources[index], threshold)
        return results[0] if single else results

    @staticmethod
    def _to_detections(boxlist: BoxList, names: Mapping[int, str], size: tuple[int, int], source: str,
                       threshold: float | None) -> Detections:
        boxlist = boxlist.resize(size).convert("xyxy")
        box_t = boxlist.bbox.float()
        score_t = boxlist.get_field("scores").float()
        label_t = boxlist.get_field("labels").long()
        keep = torch.argsort(score_t, descending=True, stable=True)
        if threshold is not None:
            keep = keep[score_t[keep] >= threshold]
        kept_labels = label_t[keep]
        return Detections(box_t[keep], score_t[keep], kept_labels,
                          [names.get(int(label), str(int(label))) for label in kept_labels.tolist()],
                          (int(size[0]), int(size[1])), source)
