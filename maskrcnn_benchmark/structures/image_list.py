"""``ImageList``: a zero-padded batch of images of different sizes, plus each image's true size."""

import logging
import math
from collections.abc import Sequence

import torch

__all__ = ["ImageList", "to_image_list"]

logger = logging.getLogger(__name__)


class ImageList:
    """A batch of images padded to a common size.

    Attributes:
        tensors (Tensor[B, C, H, W]): the padded batch (padding is zero, at the bottom and right).
        image_sizes (list[tuple[int, int]]): the size ``(height, width)`` of each image before padding.
    """

    def __init__(self, tensors: torch.Tensor, image_sizes: Sequence[tuple[int, int]]) -> None:
        if not isinstance(tensors, torch.Tensor) or tensors.dim() != 4:
            shape = tuple(tensors.shape) if isinstance(tensors, torch.Tensor) else type(tensors)
            raise ValueError(f"ImageList: tensors should be a 4-d tensor [B, C, H, W], got {shape}")
        if len(image_sizes) != tensors.shape[0]:
            raise ValueError(
                f"ImageList: {len(image_sizes)} image sizes for a batch of {tensors.shape[0]} images"
            )
        self.tensors = tensors
        self.image_sizes: list[tuple[int, int]] = [(int(h), int(w)) for h, w in image_sizes]

    def to(self, *args, **kwargs) -> "ImageList":
        """Move/cast the batch tensor (same arguments as ``Tensor.to``)."""
        return ImageList(self.tensors.to(*args, **kwargs), self.image_sizes)

    def pin_memory(self) -> "ImageList":
        """The batch in page-locked memory (``DataLoader(pin_memory=True)`` calls this), so that
        ``to("cuda", non_blocking=True)`` copies it asynchronously."""
        return ImageList(self.tensors.pin_memory(), self.image_sizes)

    def __len__(self) -> int:
        return len(self.image_sizes)

    def __repr__(self) -> str:
        return f"ImageList(tensors={tuple(self.tensors.shape)}, image_sizes={self.image_sizes})"


def _round_up(value: int, multiple: int) -> int:
    return int(math.ceil(value / multiple) * multiple) if multiple > 0 else value


def to_image_list(
    tensors: ImageList | torch.Tensor | Sequence[torch.Tensor], size_divisible: int = 0
) -> ImageList:
    """Batch images into an :class:`ImageList`, zero-padding at the bottom/right.

    Args:
        tensors: an ``ImageList`` (returned unchanged), a tensor ``[C, H, W]`` or ``[B, C, H, W]``, or a
            list/tuple of ``[C, H_i, W_i]`` tensors.
        size_divisible: if > 0, the padded height and width are rounded up to a multiple of it (FIBER uses 32,
            required by Swin's patch merging).

    Returns:
        ImageList whose ``image_sizes`` are the unpadded ``(H_i, W_i)``.

    Raises:
        TypeError: unsupported input type. ValueError: images of different channel counts or wrong rank.
    """
    if isinstance(tensors, ImageList):
        return tensors
    if size_divisible < 0:
        raise ValueError(f"to_image_list: size_divisible must be >= 0, got {size_divisible}")
    if isinstance(tensors, torch.Tensor):
        if tensors.dim() == 3:
            tensors = [tensors]
        elif tensors.dim() == 4:
            height, width = tensors.shape[-2:]
            padded_h, padded_w = _round_up(height, size_divisible), _round_up(width, size_divisible)
            if (padded_h, padded_w) == (height, width):
                return ImageList(tensors, [(height, width)] * tensors.shape[0])
            tensors = list(tensors.unbind(0))
        else:
            raise ValueError(f"to_image_list: expected a 3-d or 4-d tensor, got shape {tuple(tensors.shape)}")
    if not isinstance(tensors, (list, tuple)):
        raise TypeError(f"to_image_list: unsupported input type {type(tensors)}")
    if len(tensors) == 0:
        raise ValueError("to_image_list: got an empty list of images")
    for i, img in enumerate(tensors):
        if not isinstance(img, torch.Tensor) or img.dim() != 3:
            shape = tuple(img.shape) if isinstance(img, torch.Tensor) else type(img)
            raise ValueError(f"to_image_list: image {i} should be a [C, H, W] tensor, got {shape}")
        if img.shape[0] != tensors[0].shape[0]:
            raise ValueError(
                f"to_image_list: image {i} has {img.shape[0]} channels, image 0 has {tensors[0].shape[0]}"
            )
    max_h = _round_up(max(int(img.shape[1]) for img in tensors), size_divisible)
    max_w = _round_up(max(int(img.shape[2]) for img in tensors), size_divisible)
    first = tensors[0]
    batched = first.new_zeros((len(tensors), first.shape[0], max_h, max_w))
    for img, pad_img in zip(tensors, batched):
        pad_img[:, : img.shape[1], : img.shape[2]].copy_(img)
    image_sizes = [(int(img.shape[1]), int(img.shape[2])) for img in tensors]
    return ImageList(batched, image_sizes)
