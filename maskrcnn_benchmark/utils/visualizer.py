"""Drawing boxes on images: detections, ground truth, anything with boxes and labels.

One colour per class / phrase label (the same in every image), an outline per box and a filled tag with the
box's name (and score, when there is one). Works on its own, without a model::

    from maskrcnn_benchmark.utils.visualizer import draw_boxes
    picture = draw_boxes(image, gt.bbox, gt.get_field("labels"), names=["person", "car"])  # ground truth

and for the Predictor's results: ``draw_detections(image, detections)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["PALETTE", "color_for_label", "draw_boxes", "draw_detections"]

#: Distinct, saturated RGB colours; label k (1-based) always gets ``PALETTE[(k - 1) % len(PALETTE)]``.
PALETTE = (
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
    (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255), (170, 110, 40),
    (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128),
)

Rect = tuple[int, int, int, int]


def color_for_label(label: int) -> tuple[int, int, int]:
    """The RGB colour of a class / phrase label (the same in every image)."""
    return PALETTE[(int(label) - 1) % len(PALETTE)]


def _overlap(a: Rect, b: Rect) -> bool:
    return not (a[2] < b[0] or b[2] < a[0] or a[3] < b[1] or b[3] < a[1])


def _rgb_copy(image: Any, rgb: bool):
    """A new 8-bit RGB ``PIL.Image`` of ``image`` (path, array or PIL image of any mode), via the one image reader."""
    from maskrcnn_benchmark.data.image_io import load_image

    return load_image(image, rgb=rgb)[0]


def _as_list(values: Any, count: int, what: str) -> list:
    items = values.tolist() if hasattr(values, "tolist") else list(values)
    if len(items) != count:
        raise ValueError(f"{what} has {len(items)} entries for {count} boxes")
    return items


def _tag_text(names: list | None, scores: list | None, labels: list, index: int) -> str:
    name = names[index] if names is not None else str(int(labels[index]))
    return name if scores is None else f"{name} {float(scores[index]):.2f}"


def _place_tag(box: list[int], size: tuple[int, int], line_width: int, image_height: int, placed: list[Rect]
               ) -> Rect:
    """Just above the box, else just inside its top, else just below it: the first place overlapping no tag."""
    x1, y1, _, y2 = box
    tag_w, tag_h = size
    tag_x = x1 + line_width
    candidates = [y for y in (y1 - tag_h, y1 + line_width, y2 + 1) if 0 <= y <= image_height - tag_h]
    candidates = candidates or [max(0, min(y1, image_height - tag_h))]
    rects = [(tag_x, y, tag_x + tag_w, y + tag_h - 1) for y in candidates]
    return next((r for r in rects if not any(_overlap(r, other) for other in placed)), rects[0])


def draw_boxes(image: Any, boxes: Any, labels: Any, names: Sequence[str] | None = None,
               scores: Any | None = None, line_width: int = 2, rgb: bool = False):
    """Draws boxes and their tags on a copy of ``image``.

    Boxes are drawn from the lowest to the highest score (the best box ends on top; without scores, in the
    given order), with the outline on the box's pixels ``x1..x2`` / ``y1..y2`` (rounded), in the colour of its
    label. Then each tag ("name score", or "name" without scores), best first, goes on a filled rectangle in
    the box colour: just above the box, else just inside its top, else just below it, taking the first place
    that overlaps no tag already drawn.

    Args:
        image: a ``PIL.Image``, an ``H x W x 3`` uint8 array (BGR unless ``rgb``) or an image path.
        boxes (Tensor[N, 4] or array-like): ``x1, y1, x2, y2`` in ``image``'s pixels.
        labels (Tensor[N] int or array-like): class / phrase labels (1-based); they pick the colours.
        names: the tag text of each box (default: its label number).
        scores (Tensor[N] float, optional): appended to the tags and used for the drawing order.
        line_width: outline width in pixels.
        rgb: a numpy ``image`` is RGB (default BGR, as OpenCV reads it).

    Returns:
        ``PIL.Image`` (RGB); ``image`` itself is not modified.
    """
    from PIL import ImageDraw, ImageFont

    canvas = _rgb_copy(image, rgb)
    box_list = [[int(round(float(v))) for v in box] for box in (boxes.tolist() if hasattr(boxes, "tolist")
                                                                   else boxes)]
    label_list = _as_list(labels, len(box_list), "labels")
    name_list = _as_list(names, len(box_list), "names") if names is not None else None
    score_list = _as_list(scores, len(box_list), "scores") if scores is not None else None
    order = (torch.argsort(torch.tensor(score_list, dtype=torch.float64), stable=True).tolist()
             if score_list is not None else list(range(len(box_list))))  # ascending: best drawn last
    draw = ImageDraw.Draw(canvas)
    for index in order:
        draw.rectangle(box_list[index], outline=color_for_label(label_list[index]), width=line_width)
    font = ImageFont.load_default()
    placed: list[Rect] = []
    for index in reversed(order):
        color = color_for_label(label_list[index])
        text = _tag_text(name_list, score_list, label_list, index)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        rect = _place_tag(box_list[index], (right - left + 4, bottom - top + 2), line_width, canvas.height, placed)
        placed.append(rect)
        draw.rectangle(rect, fill=color)
        brightness = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
        draw.text((rect[0] + 2, rect[1] + 1 - top), text, fill=(0, 0, 0) if brightness > 128 else (255, 255, 255),
                  font=font)
    return canvas


def draw_detections(image: Any, detections: Any, line_width: int = 2, rgb: bool = False):
    """Draws a :class:`~maskrcnn_benchmark.engine.predictor.Detections` ("name score" tags) on a copy of ``image``.

    Args:
        image: as for :func:`draw_boxes`.
        detections: anything with ``boxes`` (xyxy), ``labels``, ``names`` and ``scores``.
        line_width: outline width in pixels.
        rgb: a numpy ``image`` is RGB (default BGR).

    Returns:
        ``PIL.Image`` (RGB).
    """
    return draw_boxes(image, detections.boxes, detections.labels, names=detections.names,
                      scores=detections.scores, line_width=line_width, rgb=rgb)
