"""Image + target transforms (upstream-facts.md 1.2).

Every transform is called as ``image, target = t(image, target)``; ``target`` is a ``BoxList`` (xyxy, in the
coordinates of ``image``) or None. Randomness uses the ``random`` module only, so a caller can make one
sample reproducible by seeding (or swapping) that state.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torchvision.transforms.functional as F

from ..image_io import pil_to_rgb

__all__ = [
    "Compose",
    "Resize",
    "RandomHorizontalFlip",
    "ToTensor",
    "Normalize",
    "resized_size",
    "swap_left_right",
]

_LEFT_RIGHT = re.compile(r"\b(left|right|Left|Right|LEFT|RIGHT)\b")
_SWAP = {"left": "right", "right": "left", "Left": "Right", "Right": "Left", "LEFT": "RIGHT", "RIGHT": "LEFT"}


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[Any]):
        self.transforms = list(transforms)

    def __call__(self, image: Any, target: Any = None) -> tuple[Any, Any]:
        for t in self.transforms:
            image, target = t(image, target)
        return image, target

    def __repr__(self) -> str:
        inner = "".join(f"\n    {t!r}" for t in self.transforms)
        return f"{type(self).__name__}({inner}\n)"


def resized_size(width: int, height: int, min_size: int, max_size: int | None) -> tuple[int, int]:
    """Output (height, width) of upstream's resize rule.

    The shorter side becomes ``min_size`` unless the longer side would exceed ``max_size``, in which case
    ``min_size = round(max_size * short / long)``; the other side is ``int(min_size * long / short)``
    (truncated). An image whose shorter side already equals the target keeps its size.

    Beyond upstream: an aspect ratio so extreme that the shorter side would round to 0 pixels (a 3 x 2000
    strip under ``max_size`` 224) keeps 1 pixel there, with the longer side at most ``max_size``, so every
    output has at least one pixel each way.

    Args:
        width, height: input size in pixels (positive).
        min_size: target shorter side.
        max_size: cap on the longer side (None: no cap).

    Returns:
        (out_height, out_width).

    Raises:
        ValueError: a zero or negative width or height.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"cannot resize an image of width {width} and height {height}: it has no pixels")
    size = min_size
    short, long = float(min(width, height)), float(max(width, height))
    if max_size is not None and long / short * size > max_size:
        size = int(round(max_size * short / long))
        if size < 1:
            long_side = max(1, min(int(long / short), int(max_size)))
            return (1, long_side) if height <= width else (long_side, 1)
    if (width <= height and width == size) or (height <= width and height == size):
        return height, width
    if width < height:
        return int(size * height / width), size
    return size, int(size * width / height)


class Resize:
    """Resize so the shorter side is a random choice of ``min_size`` (upstream ``Resize``).

    Args:
        min_size: one size or a tuple to choose from (``AUGMENT.MULT_MIN_SIZE_TRAIN`` / ``INPUT.MIN_SIZE_*``).
        max_size: cap on the longer side (``INPUT.MAX_SIZE_*``).
    """

    def __init__(self, min_size: int | Sequence[int], max_size: int | None):
        if isinstance(min_size, int):
            min_size = (min_size,)
        self.min_size = tuple(int(s) for s in min_size)
        if not self.min_size or min(self.min_size) <= 0:
            raise ValueError(f"Resize: min_size must be positive sizes, got {min_size}")
        self.max_size = max_size

    def __call__(self, image: Any, target: Any = None) -> tuple[Any, Any]:
        width, height = image.size
        size = random.choice(self.min_size)
        out_h, out_w = resized_size(width, height, size, self.max_size)
        if (out_h, out_w) != (height, width):
            image = F.resize(image, [out_h, out_w], interpolation=F.InterpolationMode.BILINEAR)
        if target is not None:
            target = target.resize(image.size)
        return image, target

    def __repr__(self) -> str:
        return f"Resize(min_size={self.min_size}, max_size={self.max_size})"


def swap_left_right(
    caption: str, spans: Sequence[Sequence[Sequence[int]]]
) -> tuple[str, list[list[list[int]]]]:
    """Swap the words "left" and "right" in a caption and move character spans accordingly.

    Args:
        caption: the text.
        spans: per box (or phrase), a list of [start, end) spans into ``caption``.

    Returns:
        (new_caption, new_spans) with spans pointing at the same words in the new caption.
    """
    pieces: list[str] = []
    # old offset -> new offset, piecewise: (old_start, old_end, new_start, new_end)
    edits: list[tuple[int, int, int, int]] = []
    last = 0
    shift = 0
    for m in _LEFT_RIGHT.finditer(caption):
        pieces.append(caption[last : m.start()])
        new_word = _SWAP[m.group(0)]
        pieces.append(new_word)
        edits.append((m.start(), m.end(), m.start() + shift, m.start() + shift + len(new_word)))
        shift += len(new_word) - len(m.group(0))
        last = m.end()
    if not edits:
        return caption, [[list(s) for s in box] for box in spans]
    pieces.append(caption[last:])

    def move(pos: int, is_end: bool) -> int:
        delta = 0
        for old_s, old_e, new_s, new_e in edits:
            if pos <= old_s:
                break
            if pos < old_e or (is_end and pos == old_e):
                return new_e if is_end else new_s
            delta = new_e - old_e
        return pos + delta

    new_spans = [[[move(s, False), move(e, True)] for s, e in box] for box in spans]
    return "".join(pieces), new_spans


class RandomHorizontalFlip:
    """Flip image and boxes left-right with probability ``prob`` (+1 convention: x1' = W - x2 - 1).

    Args:
        prob: flip probability (``AUGMENT.FLIP_PROB_TRAIN``).
        swap_left_right: also swap "left"/"right" in the target's "caption" and move its "tokens_positive"
            spans (``INPUT.FLIP_SWAP_LEFT_RIGHT``; upstream does not, so the default is False).
    """

    def __init__(self, prob: float = 0.5, swap_left_right: bool = False):
        self.prob = float(prob)
        self.swap_left_right = bool(swap_left_right)

    def __call__(self, image: Any, target: Any = None) -> tuple[Any, Any]:
        if self.prob <= 0 or random.random() >= self.prob:
            return image, target
        image = F.hflip(image)
        if target is not None:
            target = target.transpose(0)
            if self.swap_left_right and target.has_field("caption"):
                self._swap_caption(target)
        return image, target

    @staticmethod
    def _swap_caption(target: Any) -> None:
        original = target.get_field("caption")
        for name in ("tokens_positive", "tokens_positive_eval"):
            if target.has_field(name):
                _, moved = swap_left_right(original, target.get_field(name))
                target.add_field(name, moved)
        target.add_field("caption", swap_left_right(original, [])[0])

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(prob={self.prob}, swap_left_right={self.swap_left_right})"


class ToTensor:
    """PIL image -> float32 tensor [3, H, W] in [0, 1] (RGB), like ``torchvision`` ``to_tensor``.

    Computed with numpy (bit-identical to ``to_tensor``: the same float32 division), which avoids the
    intra-op thread pool for these small per-image operations.
    """

    def __call__(self, image: Any, target: Any = None) -> tuple[torch.Tensor, Any]:
        if isinstance(image, torch.Tensor):
            return image, target
        array = np.asarray(pil_to_rgb(image) if image.mode != "RGB" else image, dtype=np.uint8)
        chw = np.ascontiguousarray(array.transpose(2, 0, 1)).astype(np.float32) / np.float32(255)
        return torch.from_numpy(chw), target

    def __repr__(self) -> str:
        return "ToTensor()"


class Normalize:
    """(x - mean) / std per channel; with ``to_bgr255`` the RGB [0, 1] input becomes BGR [0, 255] first.

    Same float32 arithmetic as upstream's ``image[[2, 1, 0]] * 255`` then ``F.normalize`` (done in numpy).

    Args:
        mean: ``INPUT.PIXEL_MEAN`` (in the channel order after the optional BGR swap).
        std: ``INPUT.PIXEL_STD``.
        to_bgr255: ``INPUT.TO_BGR255`` (FIBER weights expect True).
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], to_bgr255: bool = True):
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f"Normalize: mean and std need 3 values, got {list(mean)} and {list(std)}")
        if min(std) <= 0:
            raise ValueError(f"Normalize: std must be positive, got {list(std)}")
        self.mean = [float(m) for m in mean]
        self.std = [float(s) for s in std]
        self.to_bgr255 = bool(to_bgr255)

    def __call__(self, image: torch.Tensor, target: Any = None) -> tuple[torch.Tensor, Any]:
        array = image.detach().cpu().numpy().astype(np.float32, copy=False)
        if self.to_bgr255:
            array = array[[2, 1, 0]] * np.float32(255)
        mean = np.asarray(self.mean, dtype=np.float32).reshape(3, 1, 1)
        std = np.asarray(self.std, dtype=np.float32).reshape(3, 1, 1)
        return torch.from_numpy(np.ascontiguousarray((array - mean) / std)), target

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std}, to_bgr255={self.to_bgr255})"
