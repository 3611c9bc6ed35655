"""``BoxList``: the boxes of one image with their per-box and per-image fields.

Same public API as maskrcnn-benchmark's ``BoxList`` (upstream FIBER/GLIP ``structures/bounding_box.py``), with
validation added. Boxes use the legacy "+1" pixel convention wherever upstream does: in ``xyxy`` mode a box
``[x1, y1, x2, y2]`` covers the pixels ``x1..x2`` inclusive, so its width is ``x2 - x1 + 1`` (``convert``,
``area``, ``transpose`` and ``clip_to_image`` all follow this; ``resize`` and ``crop`` scale/shift
coordinates without it, as upstream).
"""

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["BoxList", "FLIP_LEFT_RIGHT", "FLIP_TOP_BOTTOM", "IMAGE_LEVEL_FIELDS"]

logger = logging.getLogger(__name__)

# transpose methods
FLIP_LEFT_RIGHT = 0
FLIP_TOP_BOTTOM = 1

_MODES = ("xyxy", "xywh")
# maskrcnn-benchmark's legacy pixel convention: a box from x1 to x2 (inclusive) is x2 - x1 + 1 wide.
TO_REMOVE = 1

#: Field names that describe the image rather than each box. They are never length-checked against the boxes
#: and are carried unchanged by indexing (``boxlist[keep]``), as are strings, dicts, scalars and 0-d tensors.
IMAGE_LEVEL_FIELDS = frozenset(
    {
        "caption",  # str: the text prompt of a grounding sample
        "positive_map_eval",  # float[P, L]: one row per evaluated phrase (P need not equal the box count)
        "tokens_positive_eval",  # list per phrase of [start, end) character spans
        "nb_eval",  # int: number of evaluated phrases
        "orig_size",  # (h, w) of the original image
        "size",  # (h, w) after transforms
        "image_id",
        "sentence_id",
        "original_img_id",
        "original_id",
        "task_id",
        "dataset_name",
    }
)

IndexLike = int | slice | torch.Tensor | Sequence[int]


def _as_box_tensor(bbox: Any) -> torch.Tensor:
    """Turn ``bbox`` into a floating tensor of shape [N, 4] or raise naming the bad shape."""
    if isinstance(bbox, torch.Tensor):
        tensor = bbox if bbox.is_floating_point() else bbox.to(torch.float32)
    else:
        try:
            tensor = torch.as_tensor(bbox, dtype=torch.float32)
        except (TypeError, ValueError, RuntimeError) as e:
            raise TypeError(f"BoxList: bbox must be a tensor or a nested list of numbers, got {type(bbox)}") from e
    if tensor.numel() == 0 and tensor.dim() <= 2:
        # Datasets often build empty targets as torch.as_tensor([]); treat any empty input as zero boxes.
        return tensor.reshape(0, 4)
    if tensor.dim() != 2:
        raise ValueError(
            f"BoxList: bbox should have 2 dimensions [N, 4], got {tensor.dim()} (shape {tuple(tensor.shape)})"
        )
    if tensor.size(-1) != 4:
        raise ValueError(
            f"BoxList: last dimension of bbox should have size 4, got {tensor.size(-1)} (shape {tuple(tensor.shape)})"
        )
    return tensor


def _has_geometry_method(value: Any, method: str) -> bool:
    """True for structured fields (e.g. masks) that transform themselves with the boxes.

    Tensors, arrays and plain containers are carried unchanged: their ``resize``/``transpose`` methods mean
    something else.
    """
    plain = (torch.Tensor, np.ndarray, str, bytes, list, tuple, dict, int, float, bool)
    return hasattr(value, method) and not isinstance(value, plain)


def _index_list(values: Sequence, item: IndexLike, num_boxes: int) -> list:
    """Apply a box index (int, slice, bool mask, index tensor or list) to a Python list of per-box values."""
    if isinstance(item, slice):
        return list(values[item])
    if isinstance(item, int):
        return [values[item]]
    index = torch.as_tensor(item)
    if index.dtype == torch.bool:
        if index.numel() != num_boxes:
            raise IndexError(f"BoxList: boolean mask has {index.numel()} entries for {num_boxes} boxes")
        index = index.nonzero().flatten()
    return [values[i] for i in index.flatten().tolist()]


class BoxList:
    """A set of boxes of one image, with named fields.

    Attributes:
        bbox (Tensor[N, 4]): boxes, floating point (integer input is converted to float32), in ``mode``.
        size (tuple[int, int]): image size as ``(width, height)`` — unpack by name: ``width, height = b.size``.
        mode (str): ``"xyxy"`` (corners, inclusive, +1 convention) or ``"xywh"`` (top-left corner + size, where
            ``w = x2 - x1 + 1``).
        extra_fields (dict): the fields. Per-box fields have N entries along their first dimension.

    Fields in use in this project (per-box unless noted):

    - ``labels`` int64[N]: contiguous class ids (1..K for detection sets, 1..N for grounding), or at test time
      the predicted label (phrase/class index, 1-based).
    - ``scores`` float[N]: detection confidence.
    - ``positive_map`` float[N, L]: per box, the (normalised or binary) text-token map over L = MAX_QUERY_LEN.
    - ``tokens_positive`` list of N lists of ``[start, end)`` character spans into ``caption``.
    - ``caption`` str (per image): the text prompt.
    - ``positive_map_eval`` float[P, L] (per image): one row per evaluated phrase.
    - ``tokens_positive_eval`` list of P span lists (per image); ``nb_eval`` int (per image).
    - ``orig_size`` (per image): original (h, w); ``areas`` float[N]; ``iscrowd`` int64[N];
      ``original_od_label`` int64[N]; ``box_ids`` / ``centerness`` etc. as produced by the heads.

    Tensor fields are per-box (their first dimension must equal N) unless their name is in
    :data:`IMAGE_LEVEL_FIELDS` or ``add_field(..., per_box=False)`` says otherwise. Lists and tuples are per-box
    when their length equals N (or ``per_box=True``). Strings, dicts, scalars and 0-d tensors are per-image.
    Per-image values are carried unchanged by every operation; per-box values are indexed by ``__getitem__``.

    Args:
        bbox: boxes ``[N, 4]`` (tensor or nested lists).
        image_size: ``(width, height)``.
        mode: ``"xyxy"`` or ``"xywh"``.
    """

    def __init__(self, bbox: Any, image_size: Sequence[float], mode: str = "xyxy") -> None:
        if mode not in _MODES:
            raise ValueError(f"BoxList: mode should be one of {_MODES}, got {mode!r}")
        if len(image_size) != 2:
            raise ValueError(f"BoxList: image_size should be (width, height), got {image_size!r}")
        self.bbox = _as_box_tensor(bbox)
        self.size: tuple[float, float] = (image_size[0], image_size[1])  # ints except after a fractional crop
        self.mode = mode
        self.extra_fields: dict[str, Any] = {}
        # field name -> True (per-box) / False (per-image), decided in add_field; fields assigned directly into
        # extra_fields are classified on use with the same rule.
        self._field_kinds: dict[str, bool] = {}

    # ------------------------------------------------------------------------------------------------ fields
    def _is_per_box(self, field: str, field_data: Any, per_box: bool | None) -> bool:
        if per_box is not None:
            return per_box
        if field in IMAGE_LEVEL_FIELDS:
            return False
        if isinstance(field_data, torch.Tensor):
            return field_data.dim() > 0
        if isinstance(field_data, (list, tuple)):
            return len(field_data) == len(self)
        return False

    def add_field(self, field: str, field_data: Any, per_box: bool | None = None) -> None:
        """Set a field (replacing any previous value).

        Args:
            field: the field name.
            field_data: the value. Per-box values need ``len(field_data) == len(self)``.
            per_box: force the field to be per-box (True) or per-image (False); None infers it (see class doc).

        Raises:
            ValueError: a per-box value does not have one entry per box; the message gives both sizes.
        """
        is_per_box = self._is_per_box(field, field_data, per_box)
        if is_per_box:
            if isinstance(field_data, torch.Tensor) and field_data.dim() == 0:
                raise ValueError(f"BoxList: per-box field {field!r} is a 0-d tensor; expected {len(self)} entries")
            length = len(field_data)
            if length != len(self):
                raise ValueError(
                    f"BoxList: field {field!r} has {length} entries along its first dimension but the BoxList has "
                    f"{len(self)} boxes (pass per_box=False for a per-image value)"
                )
        self._field_kinds[field] = is_per_box
        self.extra_fields[field] = field_data

    def get_field(self, field: str) -> Any:
        """Return a field's value; KeyError naming the available fields if absent."""
        try:
            return self.extra_fields[field]
        except KeyError:
            raise KeyError(f"BoxList has no field {field!r}; fields: {sorted(self.extra_fields)}") from None

    def has_field(self, field: str) -> bool:
        return field in self.extra_fields

    def fields(self) -> list[str]:
        return list(self.extra_fields.keys())

    def is_per_box_field(self, field: str) -> bool:
        """True if ``field`` is indexed with the boxes."""
        if field in self._field_kinds:
            return self._field_kinds[field]
        if field not in self.extra_fields:
            raise KeyError(f"BoxList has no field {field!r}; fields: {sorted(self.extra_fields)}")
        return self._is_per_box(field, self.extra_fields[field], None)

    def _copy_extra_fields(self, other: "BoxList") -> None:
        for k, v in other.extra_fields.items():
            self.extra_fields[k] = v
        self._field_kinds = {k: other.is_per_box_field(k) for k in other.extra_fields}

    def _set_field_like(self, source: "BoxList", field: str, value: Any) -> None:
        self.extra_fields[field] = value
        self._field_kinds[field] = source.is_per_box_field(field)

    # ------------------------------------------------------------------------------------------------ modes
    def convert(self, mode: str) -> "BoxList":
        """Return the boxes in ``mode`` (``self`` if already there); fields are shared."""
        if mode not in _MODES:
            raise ValueError(f"BoxList: mode should be one of {_MODES}, got {mode!r}")
        if mode == self.mode:
            return self
        xmin, ymin, xmax, ymax = self._split_into_xyxy()
        if mode == "xyxy":
            bbox = torch.cat((xmin, ymin, xmax, ymax), dim=-1)
        else:
            bbox = torch.cat((xmin, ymin, xmax - xmin + TO_REMOVE, ymax - ymin + TO_REMOVE), dim=-1)
        converted = BoxList(bbox, self.size, mode=mode)
        converted._copy_extra_fields(self)
        return converted

    def _split_into_xyxy(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.mode == "xyxy":
            xmin, ymin, xmax, ymax = self.bbox.split(1, dim=-1)
            return xmin, ymin, xmax, ymax
        xmin, ymin, w, h = self.bbox.split(1, dim=-1)
        return (
            xmin,
            ymin,
            xmin + (w - TO_REMOVE).clamp(min=0),
            ymin + (h - TO_REMOVE).clamp(min=0),
        )

    # ------------------------------------------------------------------------------------------------ geometry
    def resize(self, size: Sequence[int], *args, **kwargs) -> "BoxList":
        """Scale the boxes to a new image size ``(width, height)``.

        Coordinates are multiplied by the per-axis ratios ``new / old`` (no +1 correction, as upstream). Fields
        with a ``resize`` method are resized with the same arguments; every other value is carried unchanged.
        """
        ratios = tuple(float(s) / float(s_orig) for s, s_orig in zip(size, self.size))
        if ratios[0] == ratios[1]:
            resized = BoxList(self.bbox * ratios[0], size, mode=self.mode)
        else:
            ratio_width, ratio_height = ratios
            xmin, ymin, xmax, ymax = self._split_into_xyxy()
            scaled = torch.cat(
                (xmin * ratio_width, ymin * ratio_height, xmax * ratio_width, ymax * ratio_height), dim=-1
            )
            resized = BoxList(scaled, size, mode="xyxy")
        for k, v in self.extra_fields.items():
            if _has_geometry_method(v, "resize"):
                v = v.resize(size, *args, **kwargs)
            resized._set_field_like(self, k, v)
        return resized.convert(self.mode)

    def transpose(self, method: int) -> "BoxList":
        """Flip the boxes horizontally (``FLIP_LEFT_RIGHT``) or vertically (``FLIP_TOP_BOTTOM``).

        Uses the +1 convention: ``x1' = W - x2 - 1``, ``x2' = W - x1 - 1`` (and the same for y), so flipping
        twice gives the original boxes. Fields with a ``transpose`` method are transposed too.
        """
        if method not in (FLIP_LEFT_RIGHT, FLIP_TOP_BOTTOM):
            raise ValueError(
                f"BoxList: only FLIP_LEFT_RIGHT (0) and FLIP_TOP_BOTTOM (1) are implemented, got {method!r}"
            )
        image_width, image_height = self.size
        xmin, ymin, xmax, ymax = self._split_into_xyxy()
        if method == FLIP_LEFT_RIGHT:
            # UPSTREAM-QUIRK: 1.2 (box flip uses the +1 convention: x1' = W - x2 - 1)
            flipped = (image_width - xmax - TO_REMOVE, ymin, image_width - xmin - TO_REMOVE, ymax)
        else:
            # Upstream's vertical flip omits the -1; no FIBER config flips vertically, so we keep the vertical
            # flip consistent with the horizontal one (an involution in the +1 convention).
            flipped = (xmin, image_height - ymax - TO_REMOVE, xmax, image_height - ymin - TO_REMOVE)
        transposed = BoxList(torch.cat(flipped, dim=-1), self.size, mode="xyxy")
        for k, v in self.extra_fields.items():
            if _has_geometry_method(v, "transpose"):
                v = v.transpose(method)
            transposed._set_field_like(self, k, v)
        return transposed.convert(self.mode)

    def crop(self, box: Sequence[float]) -> "BoxList":
        """Crop to the rectangle ``box = (left, top, right, bottom)``.

        Box coordinates are shifted to the crop's origin and clamped to ``[0, right - left]`` /
        ``[0, bottom - top]`` (boxes are not removed, so per-box fields stay aligned). The new size is
        ``(right - left, bottom - top)``. Fields with a ``crop`` method are cropped too.
        """
        if len(box) != 4:
            raise ValueError(f"BoxList.crop: box should be (left, top, right, bottom), got {box!r}")
        left, top, right, bottom = (float(v) for v in box)
        w, h = right - left, bottom - top
        if w < 0 or h < 0:
            raise ValueError(f"BoxList.crop: crop rectangle {box!r} has negative width or height")
        xmin, ymin, xmax, ymax = self._split_into_xyxy()
        cropped_box = torch.cat(
            (
                (xmin - left).clamp(min=0, max=w),
                (ymin - top).clamp(min=0, max=h),
                (xmax - left).clamp(min=0, max=w),
                (ymax - top).clamp(min=0, max=h),
            ),
            dim=-1,
        )
        cropped = BoxList(cropped_box, (box[2] - box[0], box[3] - box[1]), mode="xyxy")
        for k, v in self.extra_fields.items():
            if _has_geometry_method(v, "crop"):
                v = v.crop(box)
            cropped._set_field_like(self, k, v)
        return cropped.convert(self.mode)

    def clip_to_image(self, remove_empty: bool = True) -> "BoxList":
        """Clamp boxes to the image (x in ``[0, W-1]``, y in ``[0, H-1]``), in place, as upstream.

        Args:
            remove_empty: if True, return only boxes with ``x2 > x1`` and ``y2 > y1`` after clamping.

        Returns:
            ``self`` (clamped in place) when ``remove_empty`` is False, else a new BoxList of the kept boxes.
        """
        image_width, image_height = self.size
        if self.mode == "xyxy":
            self.bbox[:, 0].clamp_(min=0, max=image_width - TO_REMOVE)
            self.bbox[:, 1].clamp_(min=0, max=image_height - TO_REMOVE)
            self.bbox[:, 2].clamp_(min=0, max=image_width - TO_REMOVE)
            self.bbox[:, 3].clamp_(min=0, max=image_height - TO_REMOVE)
        else:
            clipped = self.convert("xyxy").clip_to_image(remove_empty=False).convert("xywh")
            self.bbox = clipped.bbox
        if remove_empty:
            xyxy = self.convert("xyxy").bbox
            keep = (xyxy[:, 3] > xyxy[:, 1]) & (xyxy[:, 2] > xyxy[:, 0])
            return self[keep]
        return self

    def area(self) -> torch.Tensor:
        """Box areas, Tensor[N], with the +1 convention in ``xyxy`` mode (``(x2-x1+1)·(y2-y1+1)``)."""
        box = self.bbox
        if self.mode == "xyxy":
            return (box[:, 2] - box[:, 0] + TO_REMOVE) * (box[:, 3] - box[:, 1] + TO_REMOVE)
        return box[:, 2] * box[:, 3]

    # ------------------------------------------------------------------------------------------------ misc
    def to(self, device: str | torch.device, **kwargs) -> "BoxList":
        """Move the boxes and every field that has a ``.to`` method (tensors) to ``device``."""
        moved = BoxList(self.bbox.to(device, **kwargs), self.size, self.mode)
        for k, v in self.extra_fields.items():
            if hasattr(v, "to") and not isinstance(v, str):
                v = v.to(device, **kwargs)
            moved._set_field_like(self, k, v)
        return moved

    def __getitem__(self, item: IndexLike) -> "BoxList":
        """Select boxes by int, slice, bool mask, index tensor or list; per-box fields are indexed alike."""
        if isinstance(item, (int, np.integer)):
            item = [int(item)]
        if isinstance(item, np.ndarray):
            item = torch.from_numpy(item)
        if isinstance(item, (list, tuple)):
            is_mask = len(item) > 0 and all(isinstance(i, (bool, np.bool_)) for i in item)
            item = torch.as_tensor(item, dtype=torch.bool if is_mask else torch.long, device=self.bbox.device)
        if isinstance(item, torch.Tensor) and item.dtype == torch.bool and item.numel() != len(self):
            raise IndexError(f"BoxList: boolean mask has {item.numel()} entries for {len(self)} boxes")
        selected = BoxList(self.bbox[item], self.size, self.mode)
        for k, v in self.extra_fields.items():
            if self.is_per_box_field(k):
                if isinstance(v, torch.Tensor):
                    index = item.to(v.device) if isinstance(item, torch.Tensor) else item
                    v = v[index]
                else:
                    v = _index_list(v, item, len(self))
            selected._set_field_like(self, k, v)
        return selected

    def __len__(self) -> int:
        return self.bbox.shape[0]

    def copy_with_fields(self, fields: str | Iterable[str], skip_missing: bool = False) -> "BoxList":
        """A new BoxList with the same boxes and only the named fields.

        Raises:
            KeyError: a named field is absent and ``skip_missing`` is False.
        """
        copied = BoxList(self.bbox, self.size, self.mode)
        if isinstance(fields, str):
            fields = [fields]
        for field in fields:
            if self.has_field(field):
                copied._set_field_like(self, field, self.get_field(field))
            elif not skip_missing:
                raise KeyError(f"BoxList has no field {field!r}; fields: {sorted(self.extra_fields)}")
        return copied

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(num_boxes={len(self)}, image_width={self.size[0]}, "
            f"image_height={self.size[1]}, mode={self.mode}, fields={self.fields()})"
        )
