"""Image/target transforms and their builder."""

from .build import build_transforms
from .transforms import (
    Compose,
    Normalize,
    RandomHorizontalFlip,
    Resize,
    ToTensor,
    resized_size,
    swap_left_right,
)

__all__ = [
    "build_transforms",
    "Compose",
    "Normalize",
    "RandomHorizontalFlip",
    "Resize",
    "ToTensor",
    "resized_size",
    "swap_left_right",
]
