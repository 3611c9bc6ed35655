"""Objects365 in upstream's TSV form (``CocoDetectionTSV``, upstream-facts.md 6.1-6.2).

A YAML file (``Objects365/objects365_train_vgoiv6.cas2000.yaml``) names the parts, relative to its folder:

* ``img``: TSV of ``key \\t ... \\t base64 image`` (the last column is the image);
* ``label``: TSV of ``key \\t JSON`` where the JSON is a list of objects ``{"rect": [x1, y1, x2, y2],
  "class": name}`` (or ``{"objects": [...]}``);
* ``hw`` (optional): TSV of ``key \\t JSON [{"height": h, "width": w}]`` (or ``"h w"``), for aspect grouping;
* ``linelist`` (optional): one row number per line (e.g. the class-aware-sampled list), selecting and
  repeating rows;
* ``labelmap`` (or ``jsondict``): JSON ``{name: index}`` (or ``{"label_to_idx": {...}}``), or a TSV of names
  (index = line number, from 1). ``"__background__"`` gets index 0.

Row offsets come from ``<file>.lineidx`` (one byte offset per line) when present, otherwise they are
computed in memory (nothing is written next to the data). Captions are built as for
:class:`~.objects365.Objects365Grounding`.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
from collections.abc import Sequence
from typing import Any

import torch
import yaml
from PIL import Image

from ...structures.bounding_box import BoxList
from ..image_io import ImageReadError, decode_image_bytes
from ..prompts import DEFAULT_MAX_QUERY_LEN
from .coco_grounding import ClassNameCaptions, add_positive_map, resolve_tokenizer

__all__ = ["TSVFile", "CocoDetectionTSV"]

logger = logging.getLogger(__name__)


class TSVFile:
    """Random access to the rows of a TSV file through byte offsets.

    Args:
        path: the ``.tsv`` file.
    """

    def __init__(self, path: str):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"TSV file not found: {path}")
        self.path = path
        self._offsets: list[int] | None = None
        self._fp = None
        self._pid = None

    def _load_offsets(self) -> list[int]:
        if self._offsets is None:
            index = os.path.splitext(self.path)[0] + ".lineidx"
            if os.path.isfile(index):
                with open(index, encoding="utf-8") as f:
                    self._offsets = [int(line) for line in f if line.strip()]
            else:
                offsets, pos = [], 0
                with open(self.path, "rb") as f:
                    for line in f:
                        offsets.append(pos)
                        pos += len(line)
                self._offsets = offsets
        return self._offsets

    def __len__(self) -> int:
        return len(self._load_offsets())

    def row(self, line_no: int) -> list[str]:
        """Columns of row ``line_no``."""
        offsets = self._load_offsets()
        if not 0 <= line_no < len(offsets):
            raise IndexError(f"{self.path}: row {line_no} out of range (0..{len(offsets) - 1})")
        if self._fp is None or self._pid != os.getpid():  # reopen in each DataLoader worker
            self._fp = open(self.path, "rb")
            self._pid = os.getpid()
        self._fp.seek(offsets[line_no])
        return [c.strip() for c in self._fp.readline().decode("utf-8").split("\t")]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_fp"] = None
        return state


def _labelmap(path: str) -> dict[str, int]:
    if path.endswith(".json"):
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        return dict(data.get("label_to_idx", data))
    with open(path, encoding="utf-8") as f:
        return {line.strip(): i for i, line in enumerate((ln for ln in f if ln.strip()), 1)}


class CocoDetectionTSV(ClassNameCaptions, torch.utils.data.Dataset):
    """Objects365 TSV rows -> grounding samples (positives + sampled negative class names).

    Targets: ``labels`` (label-map indices), ``caption``, ``tokens_positive``, ``positive_map``,
    ``orig_size``. Boxes (``rect``, xyxy) are clipped to the image and empty ones removed.

    Args:
        yaml_file: the YAML naming the TSV parts.
        transforms: ``transforms(image, target)``.
        tokenizer: fast tokenizer or name/folder.
        max_query_len: token columns of the positive map.
        separation_tokens, disable_shuffle, add_detection_prompt, random_sample_negative,
            control_probabilities, max_num_labels: caption options, as
            :class:`~.objects365.Objects365Grounding`.
    """

    def __init__(
        self,
        yaml_file: str,
        transforms: Any = None,
        tokenizer: Any = None,
        max_query_len: int = DEFAULT_MAX_QUERY_LEN,
        separation_tokens: str = ". ",
        disable_shuffle: bool = False,
        add_detection_prompt: bool = False,
        random_sample_negative: int = -1,
        control_probabilities: Sequence[float] = (),
        max_num_labels: int = -1,
        **unused: Any,
    ):
        if unused:
            logger.debug("CocoDetectionTSV ignores arguments %s", sorted(unused))
        if not os.path.isfile(yaml_file):
            raise FileNotFoundError(f"TSV data set description not found: {yaml_file}")
        self.yaml_file = str(yaml_file)
        with open(yaml_file, encoding="utf-8") as f:
            spec = yaml.safe_load(f) or {}
        folder = os.path.dirname(self.yaml_file)
        self.img_tsv = TSVFile(self._part(spec, "img", folder, required=True))
        self.label_tsv = TSVFile(self._part(spec, "label", folder, required=True))
        hw = self._part(spec, "hw", folder)
        self.hw_tsv = TSVFile(hw) if hw else None
        linelist = self._part(spec, "linelist", folder)
        self.line_list = self._read_linelist(linelist) if linelist else None
        labelmap = self._part(spec, "labelmap", folder) or self._part(spec, "jsondict", folder)
        if not labelmap:
            raise ValueError(f"{self.yaml_file}: needs a 'labelmap' (or 'jsondict') entry")
        self.class_to_ind = _labelmap(labelmap)
        # UPSTREAM-QUIRK: 6.2 - "__background__" (0) is a class name negatives may be drawn from.
        self.class_to_ind["__background__"] = 0
        self.ind_to_class = {v: k for k, v in self.class_to_ind.items()}
        self._transforms = transforms
        self.tokenizer = resolve_tokenizer(tokenizer)
        self.max_query_len = int(max_query_len)
        self._set_caption_options(separation_tokens, disable_shuffle, add_detection_prompt, random_sample_negative,
                                  control_probabilities, max_num_labels)
        self._sizes: dict[int, dict[str, int]] = {}

    def _part(self, spec: dict[str, Any], key: str, folder: str, required: bool = False) -> str | None:
        name = spec.get(key)
        if not name:
            if required:
                raise ValueError(f"{self.yaml_file}: missing key '{key}'")
            return None
        for candidate in (name, os.path.join(folder, name)):
            if os.path.isfile(candidate):
                return candidate
        raise FileNotFoundError(f"{self.yaml_file}: '{key}' file {name} not found (also looked in {folder})")

    @staticmethod
    def _read_linelist(path: str) -> list[int]:
        with open(path, encoding="utf-8") as f:
            return [int(line.split("\t")[0]) for line in f if line.strip()]

    def __len__(self) -> int:
        return len(self.line_list) if self.line_list is not None else len(self.label_tsv)

    def _line(self, idx: int) -> int:
        return self.line_list[idx] if self.line_list is not None else idx

    def categories(self) -> dict[int, str]:
        """Label-map index -> class name (without "__background__")."""
        return {k: v for k, v in sorted(self.ind_to_class.items()) if k != 0}

    def get_img_info(self, idx: int) -> dict[str, Any]:
        """{"height", "width", "key"} of sample ``idx`` (from the hw TSV, else by decoding the image)."""
        line = self._line(idx)
        if line in self._sizes:
            return self._sizes[line]
        if self.hw_tsv is not None:
            key, value = self.hw_tsv.row(line)[:2]
            try:
                data = json.loads(value)
                data = data[0] if isinstance(data, list) else data
                info = {"height": int(data["height"]), "width": int(data["width"])}
            except json.JSONDecodeError:
                height, width = value.split(" ")[:2]
                info = {"height": int(height), "width": int(width)}
        else:
            image, key = self._image(line)
            info = {"height": image.height, "width": image.width}
        info["key"] = key
        self._sizes[line] = info
        return info

    def _image(self, line: int) -> tuple[Image.Image, str]:
        columns = self.img_tsv.row(line)
        where = f"{self.img_tsv.path}: row {line} (key {columns[0]})"
        try:
            data = base64.b64decode(columns[-1])
        except (binascii.Error, ValueError) as e:
            raise ImageReadError(f"{where}: cannot decode the image: the last column is not base64 ({e})") from e
        return decode_image_bytes(data, where), columns[0]

    def _objects(self, line: int) -> list[dict[str, Any]]:
        columns = self.label_tsv.row(line)
        where = f"{self.label_tsv.path}: row {line} (key {columns[0]})"
        try:
            objects = json.loads(columns[1])
        except (IndexError, json.JSONDecodeError) as e:
            raise ValueError(f"{where}: second column is not a JSON list of objects") from e
        objects = objects.get("objects", []) if isinstance(objects, dict) else objects
        for k, obj in enumerate(objects):
            rect = obj.get("rect") if isinstance(obj, dict) else None
            if not isinstance(rect, list) or len(rect) != 4:
                raise ValueError(f"{where}: object {k} needs 'rect' = [x1, y1, x2, y2], got {obj!r}")
            if obj.get("class") not in self.class_to_ind:
                raise ValueError(f"{where}: object {k} has class {obj.get('class')!r}, not in the label map")
        return objects

    def __getitem__(self, idx: int) -> tuple[Any, BoxList, int]:
        line = self._line(idx)
        image, key = self._image(line)
        objects = self._objects(line)
        boxes = torch.as_tensor([o["rect"] for o in objects], dtype=torch.float32).reshape(-1, 4)
        target = BoxList(boxes, image.size, mode="xyxy")
        target.add_field("labels", torch.tensor([self.class_to_ind[o["class"]] for o in objects], dtype=torch.int64))
        target = target.clip_to_image(remove_empty=True)
        target.add_field("orig_size", (image.height, image.width))
        target = self._caption_with_negatives(target, self.control_probabilities)
        if self._transforms is not None:
            image, target = self._transforms(image, target)
        add_positive_map(target, self.tokenizer, self.max_query_len, f"{self.label_tsv.path}: row {line}")
        return image, target, idx
