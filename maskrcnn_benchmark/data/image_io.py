"""The one image reader: files, encoded bytes, numpy arrays and PIL images of any mode -> 8-bit RGB.

Every place that turns a user's image into pixels goes through here: the data sets (COCO-style JSON,
MDETR grounding, TSV), ``data.check --open-images``, the :class:`~maskrcnn_benchmark.engine.predictor.Predictor`
and ``tools/demo.py``. So a file gives the same pixels in training, evaluation and inference.

How values become 0..255 (the network takes 8-bit RGB, as upstream's ``PIL.Image.convert("RGB")``):

* 8-bit PIL modes (``1``, ``L``, ``P``, ``RGB``, ``RGBA``, ``CMYK``, ``LA``, ``PA``, ``YCbCr``, ...) go through
  Pillow's own conversion; an alpha channel is dropped (as ``convert("RGB")`` and ``cv2.imread`` do).
* 16-bit images (PIL ``I;16*`` modes, ``uint16`` arrays as ``cv2.imread(..., IMREAD_UNCHANGED)`` returns them)
  are scaled by the 16-bit range: ``v * 255 / 65535``. (``convert("RGB")`` clips them at 255, so nearly every
  pixel of a 16-bit PNG turns white.) PIL's 32-bit ``I`` mode, which older Pillow gives 16-bit files, takes
  the same rule when its values fit 0..65535.
* Other integer arrays (``int32``, ``int64``, ...) by the range their values occupy: 0..255 as they are,
  0..65535 as 16-bit, anything else stretched from the image's minimum to its maximum.
* Float images (PIL ``F``, float arrays): values in 0..1 times 255, values in 0..255 as they are, anything
  else stretched from the minimum to the maximum; NaN and infinite pixels become 0 (with a warning).
* Arrays are ``H x W``, ``H x W x 1``, ``H x W x 3`` or ``H x W x 4`` (BGR/BGRA channel order by default, as
  OpenCV reads them; ``rgb=True`` for RGB/RGBA).

An image with a zero width or height, a directory, or a file that is not an image raises
:class:`ImageReadError` naming the image.
"""

from __future__ import annotations

import io
import logging
import os
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = [
    "ImageReadError",
    "ImageInput",
    "read_image",
    "decode_image_bytes",
    "pil_to_rgb",
    "array_to_rgb",
    "load_image",
]

logger = logging.getLogger(__name__)

ImageInput = str | os.PathLike | np.ndarray | Image.Image

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


class ImageReadError(ValueError, OSError):
    """An image that cannot be read or has no pixels (a ``ValueError`` and, as before, an ``OSError``)."""


def _named(name: str) -> str:
    return name or "image"


# ---------------------------------------------------------------------------------------------------
# Values -> uint8
# ---------------------------------------------------------------------------------------------------


def _round_to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _stretch(values: np.ndarray, low: float, high: float) -> np.ndarray:
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    return _round_to_uint8((values.astype(np.float64) - low) * (255.0 / (high - low)))


def _float_to_uint8(values: np.ndarray, name: str) -> np.ndarray:
    finite = np.isfinite(values)
    if not finite.all():
        logger.warning("%s: %d NaN/infinite pixel values become 0", _named(name), int((~finite).sum()))
        if not finite.any():
            return np.zeros(values.shape, dtype=np.uint8)
    values = np.where(finite, values, 0).astype(np.float64)
    low, high = float(values[finite].min()), float(values[finite].max())
    if low >= 0 and high <= 1:
        return _round_to_uint8(values * 255.0)
    if low >= 0 and high <= 255:
        return _round_to_uint8(values)
    return _stretch(values, low, high)


def _int_to_uint8(values: np.ndarray, sixteen_bit_first: bool = False) -> np.ndarray:
    low, high = int(values.min()), int(values.max())
    if low >= 0 and high <= 255 and not sixteen_bit_first:
        return values.astype(np.uint8)
    if low >= 0 and high <= 65535:
        return _round_to_uint8(values.astype(np.float64) / 257.0)
    return _stretch(values, low, high)


def _to_uint8(values: np.ndarray, name: str, sixteen_bit_first: bool = False) -> np.ndarray:
    """Any numeric array -> uint8 by the rules of the module docstring."""
    if values.dtype == np.uint8:
        return values
    if values.dtype == np.bool_:
        return values.astype(np.uint8) * 255
    if values.dtype == np.uint16:
        return _round_to_uint8(values.astype(np.float64) / 257.0)
    if np.issubdtype(values.dtype, np.integer):
        return _int_to_uint8(values, sixteen_bit_first)
    if np.issubdtype(values.dtype, np.floating):
        return _float_to_uint8(values, name)
    raise ImageReadError(f"{_named(name)}: unsupported pixel type {values.dtype}")


# ---------------------------------------------------------------------------------------------------
# PIL images and arrays -> RGB
# ---------------------------------------------------------------------------------------------------


def _check_size(width: int, height: int, name: str) -> None:
    if width <= 0 or height <= 0:
        raise ImageReadError(f"{_named(name)}: the image has no pixels (width {width}, height {height})")


def pil_to_rgb(image: Image.Image, name: str = "") -> Image.Image:
    """A PIL image of any mode -> a new 8-bit RGB image (see the module docstring for the scaling).

    Args:
        image: the image (not modified).
        name: how errors and warnings name it (a path, "row 3 of x.tsv", ...).

    Raises:
        ImageReadError: zero width or height, or a mode Pillow cannot convert.
    """
    _check_size(image.width, image.height, name)
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES or mode in ("I", "F"):
        gray = _to_uint8(np.asarray(image), name, sixteen_bit_first=mode == "I")
        return Image.fromarray(np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2)))
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")  # Pillow warns on P -> RGB with transparency
    try:
        return image.convert("RGB")
    except (ValueError, OSError) as e:
        raise ImageReadError(f"{_named(name)}: cannot convert a {mode} image to RGB ({e})") from e


def array_to_rgb(array: np.ndarray, rgb: bool = False, name: str = "") -> Image.Image:
    """A numpy image -> an 8-bit RGB PIL image.

    Args:
        array: ``H x W``, ``H x W x 1``, ``H x W x 3`` or ``H x W x 4`` of any numeric dtype (uint8, uint16 and
            float as OpenCV returns them, ...).
        rgb: channels are RGB(A) (default BGR(A), as ``cv2.imread`` returns them).
        name: how errors name the image.

    Raises:
        ImageReadError: a shape that is no image, zero width or height, or a non-numeric dtype.
    """
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageReadError(f"{_named(name)}: image arrays must be H x W, H x W x 1, H x W x 3 or H x W x 4, "
                             f"got shape {tuple(array.shape)}")
    _check_size(array.shape[1], array.shape[0], name)
    values = _to_uint8(np.asarray(array), name)
    if values.ndim == 2:
        values = np.repeat(values[:, :, None], 3, axis=2)
    values = values[:, :, :3]
    if not rgb:
        values = values[:, :, ::-1]
    return Image.fromarray(np.ascontiguousarray(values))


# ---------------------------------------------------------------------------------------------------
# Files and bytes
# ---------------------------------------------------------------------------------------------------


def _open_and_convert(source: Any, name: str, what: str) -> Image.Image:
    try:
        with Image.open(source) as handle:
            handle.load()
            return pil_to_rgb(handle, name)
    except ImageReadError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        # Pillow's plugins raise SyntaxError/ValueError on some malformed headers.
        raise ImageReadError(f"{what}: {e}") from e


def read_image(path: str | os.PathLike, where: str = "") -> Image.Image:
    """Reads an image file as 8-bit RGB.

    Args:
        path: the file.
        where: context for messages (e.g. ``"ann.json: image 42"``), put before the path.

    Raises:
        FileNotFoundError: no such file.
        ImageReadError: a directory, or a file that is no readable image.
    """
    path = os.fspath(path)
    prefix = f"{where}: " if where else ""
    if os.path.isdir(path):
        raise ImageReadError(f"{prefix}{path} is a directory, not an image file")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{prefix}image file not found: {path}")
    return _open_and_convert(path, f"{prefix}{path}", f"{prefix}cannot read image {path}")


def decode_image_bytes(data: bytes, name: str) -> Image.Image:
    """Decodes an encoded image (JPEG, PNG, ... bytes) as 8-bit RGB; ``name`` says where the bytes came from."""
    return _open_and_convert(io.BytesIO(data), name, f"{name}: cannot decode the image")


def load_image(image: ImageInput, rgb: bool = False) -> tuple[Image.Image, str]:
    """A path / numpy array / PIL image -> ``(8-bit RGB PIL image, source name)`` (the Predictor's input).

    Args:
        image: a file path, a numpy array (see :func:`array_to_rgb`) or a PIL image of any mode.
        rgb: a numpy array is RGB(A) (default: BGR(A), as ``cv2.imread`` returns).

    Returns:
        ``(image, source)``: source is the path, a PIL image's ``filename``, or "" for arrays.

    Raises:
        FileNotFoundError: a path that does not exist.
        ImageReadError (a ValueError): a directory, a file that is not an image, an array of the wrong shape
            or an image without pixels.
        TypeError: any other input type.
    """
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        return read_image(path), path
    if isinstance(image, np.ndarray):
        return array_to_rgb(image, rgb=rgb, name="image array"), ""
    if isinstance(image, Image.Image):
        source = getattr(image, "filename", "") or ""
        return pil_to_rgb(image, source or "PIL image"), source
    raise TypeError(f"unsupported image type {type(image).__name__}: pass a path, a numpy array or a PIL image")
