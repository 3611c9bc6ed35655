"""The accumulator protocol shared by every evaluator, and the helpers they all use.

An evaluator collects the detections of an inference loop (:meth:`DatasetEvaluator.update`), gathers them
from every process (:meth:`DatasetEvaluator.synchronize`), writes them as JSON (:meth:`write_predictions`)
and scores them (:meth:`summarize`). Boxes arrive as ``BoxList`` objects in the coordinates of the resized
network input; the evaluator maps them back to the original image size given by the data set's
``get_img_info(idx)`` record, as upstream's ``inference`` does before scoring.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from maskrcnn_benchmark.utils.atomic_io import atomic_write_json
from maskrcnn_benchmark.utils.json_io import read_json_file

__all__ = [
    "DatasetEvaluator",
    "ImageInfo",
    "read_json",
    "boxlist_to_original_xyxy",
    "image_info_getter",
]

logger = logging.getLogger(__name__)

# idx (dataset index, as the collator returns it) -> the data set's image record ({"id", "height", "width", ...}).
ImageInfo = Callable[[int], Mapping[str, Any]]


def read_json(path: str) -> Any:
    """Load a JSON (or gzip JSON) file, with an error naming the file when it is missing or malformed."""
    return read_json_file(path)


def image_info_getter(dataset: Any) -> ImageInfo:
    """Return ``idx -> image record`` for a data set exposing ``get_img_info(idx)``."""
    getter = getattr(dataset, "get_img_info", None)
    if getter is None:
        raise TypeError(
            f"{type(dataset).__name__} has no get_img_info(idx); the evaluators need the original image size"
        )
    return getter


def boxlist_to_original_xyxy(boxlist: Any, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scale a ``BoxList`` from network-input to original-image coordinates.

    The scaling is upstream's ``BoxList.resize((width, height))``: x multiplied by width / input width,
    y by height / input height (no +1 correction).

    Args:
        boxlist: a ``BoxList`` with fields "scores" and "labels"; ``boxlist.size`` is the (w, h) of the input.
        width, height: original image size.

    Returns:
        boxes float64 [N, 4] xyxy in original pixels, scores float64 [N], labels int64 [N].
    """
    if getattr(boxlist, "mode", "xyxy") != "xyxy":
        boxlist = boxlist.convert("xyxy")
    boxes = boxlist.bbox.detach().cpu().to(dtype=_torch_float64()).numpy().reshape(-1, 4)
    scores = boxlist.get_field("scores").detach().cpu().to(dtype=_torch_float64()).numpy().reshape(-1)
    labels = boxlist.get_field("labels").detach().cpu().numpy().astype(np.int64).reshape(-1)
    in_width, in_height = boxlist.size
    scale = np.array([width / in_width, height / in_height, width / in_width, height / in_height], dtype=np.float64)
    return boxes * scale, scores, labels


def _torch_float64():
    import torch

    return torch.float64


class DatasetEvaluator:
    """Base class: accumulate predictions, gather them across processes, write them, score them.

    Subclasses keep their state in ``self._state`` (a picklable object) and implement ``_add`` (one image),
    ``_merge`` (combine the states gathered from all ranks) and ``_score``; ``_predictions_json`` returns what
    :meth:`write_predictions` writes.

    Args:
        image_info: ``idx -> {"id", "height", "width", ...}`` (usually ``dataset.get_img_info``).
        output_dir: folder for predictions/metrics files (None: write nothing unless a path is given).
    """

    predictions_file = "predictions.json"
    metrics_file = "metrics.json"

    def __init__(self, image_info: ImageInfo | None = None, output_dir: str | None = None):
        self.image_info = image_info
        self.output_dir = output_dir
        self.reset()

    # -- protocol -----------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget every prediction seen so far."""
        self._state = self._empty_state()

    def update(self, image_ids: Sequence[int], predictions: Sequence[Any]) -> None:
        """Add the predictions of one batch (or one chunk of a batch).

        Args:
            image_ids: dataset indices (the third item of each dataset sample, as the collator returns them).
            predictions: one ``BoxList`` per index, in resized-input coordinates, with "scores" and "labels".
                Calling update again for the same index (another prompt chunk) adds to that image's boxes.
        """
        if len(image_ids) != len(predictions):
            raise ValueError(f"update got {len(image_ids)} image ids but {len(predictions)} predictions")
        if self.image_info is None:
            raise TypeError(f"{type(self).__name__} was built without image_info; use update_records instead")
        for idx, boxlist in zip(image_ids, predictions):
            info = self.image_info(int(idx))
            boxes, scores, labels = boxlist_to_original_xyxy(boxlist, int(info["width"]), int(info["height"]))
            self._add(info, boxes, scores, labels)

    def synchronize(self) -> None:
        """Gather the state of every process; afterwards rank 0 holds all predictions (no-op for one process)."""
        from maskrcnn_benchmark.utils.distributed import all_gather, get_world_size

        if get_world_size() == 1:
            return
        self._state = self._merge(all_gather(self._state))

    def summarize(self) -> dict[str, Any]:
        """Score the accumulated predictions; writes ``metrics.json`` to ``output_dir`` when set."""
        metrics = self._score()
        if self.output_dir:
            atomic_write_json(os.path.join(self.output_dir, self.metrics_file), metrics)
        return metrics

    def write_predictions(self, path: str | None = None) -> str | None:
        """Write the accumulated predictions as JSON (atomically); returns the path or None if nowhere to write."""
        if path is None:
            if not self.output_dir:
                return None
            path = os.path.join(self.output_dir, self.predictions_file)
        return atomic_write_json(path, self._predictions_json())

    def evaluate(self) -> dict[str, Any]:
        """synchronize + (rank 0) write_predictions + summarize; other ranks return an empty dict."""
        from maskrcnn_benchmark.utils.distributed import is_main_process

        self.synchronize()
        if not is_main_process():
            return {}
        self.write_predictions()
        return self.summarize()

    # -- hooks ----------------------------------------------------------------------------------------------
    def _empty_state(self) -> Any:
        raise NotImplementedError

    def _add(self, info: Mapping[str, Any], boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> None:
        raise NotImplementedError

    def _merge(self, states: list[Any]) -> Any:
        raise NotImplementedError

    def _score(self) -> dict[str, Any]:
        raise NotImplementedError

    def _predictions_json(self) -> Any:
        raise NotImplementedError

