"""``build_transforms(cfg, is_train)``: the image pipeline of upstream-facts.md 1.2."""

from __future__ import annotations

from typing import Any

from .transforms import Compose, Normalize, RandomHorizontalFlip, Resize, ToTensor

__all__ = ["build_transforms"]


def build_transforms(cfg: Any, is_train: bool = True) -> Compose:
    """Resize -> RandomHorizontalFlip -> ToTensor -> Normalize.

    Training: shorter side from ``AUGMENT.MULT_MIN_SIZE_TRAIN`` when non-empty, else ``INPUT.MIN_SIZE_TRAIN``;
    longer side capped at ``INPUT.MAX_SIZE_TRAIN``; flip with ``AUGMENT.FLIP_PROB_TRAIN`` (caption words
    swapped only with ``INPUT.FLIP_SWAP_LEFT_RIGHT``). Test: ``INPUT.MIN_SIZE_TEST`` / ``MAX_SIZE_TEST``, no
    flip. Normalisation: ``INPUT.PIXEL_MEAN``, ``INPUT.PIXEL_STD``, ``INPUT.TO_BGR255``.

    Args:
        cfg: config.
        is_train: training or test pipeline.

    Returns:
        The composed transform.
    """
    if is_train:
        min_size = tuple(cfg.AUGMENT.MULT_MIN_SIZE_TRAIN) or cfg.INPUT.MIN_SIZE_TRAIN
        max_size = cfg.INPUT.MAX_SIZE_TRAIN
        flip_prob = cfg.AUGMENT.FLIP_PROB_TRAIN
    else:
        min_size = cfg.INPUT.MIN_SIZE_TEST
        max_size = cfg.INPUT.MAX_SIZE_TEST
        flip_prob = 0.0
    if isinstance(min_size, (list, tuple)):
        min_size = tuple(int(s) for s in min_size)
    else:
        min_size = int(min_size)
    swap = bool(getattr(cfg.INPUT, "FLIP_SWAP_LEFT_RIGHT", False))
    return Compose(
        [
            Resize(min_size, int(max_size) if max_size and max_size > 0 else None),
            RandomHorizontalFlip(flip_prob, swap_left_right=swap),
            ToTensor(),
            Normalize(cfg.INPUT.PIXEL_MEAN, cfg.INPUT.PIXEL_STD, to_bgr255=cfg.INPUT.TO_BGR255),
        ]
    )
