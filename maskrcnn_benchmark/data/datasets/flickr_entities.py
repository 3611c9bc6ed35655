"""Reader for the raw Flickr30k Entities files (shared by the Flickr30k evaluator).

Layout under a root folder (upstream hard-codes ``DATASET/flickr30k/flickr30k/``; here it is an argument)::

    <root>/train.txt, val.txt, test.txt          one image id per line
    <root>/Sentences/<image_id>.txt              5 annotated sentences per image
    <root>/Annotations/<image_id>.xml            boxes per phrase id (PASCAL-VOC-like XML)

Sentence lines mark phrases as ``[/EN#<phrase id>/<type>[/<type>...] words of the phrase]``, e.g.
``A [/EN#13/people young boy] jumps .`` Box coordinates are converted to 0-based pixel indices (xmin - 1,
...) as the official Flickr30k Entities utilities do.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

__all__ = [
    "Phrase",
    "Sentence",
    "EntityAnnotation",
    "parse_sentence",
    "read_sentences",
    "read_annotation",
    "read_split",
    "FlickrEntities",
    "parse_sentences",
    "parse_annotation",
]

_PHRASE = re.compile(r"\[/EN#(\d+)((?:/[^\s\]]+)*)\s+([^\]]*)\]")


@dataclass(frozen=True)
class Phrase:
    """One annotated phrase of a sentence.

    Attributes:
        phrase_id: the entity id (string, as in the files) linking the phrase to boxes.
        phrase_types: e.g. ("people",) or ("bodyparts", "other").
        text: the phrase words.
        first_word_index: index of its first word in the sentence's whitespace-separated words.
        char_start: start of the phrase in ``Sentence.text``.
        char_end: one past its end.
    """

    phrase_id: str
    phrase_types: tuple
    text: str
    first_word_index: int
    char_start: int
    char_end: int


@dataclass(frozen=True)
class Sentence:
    """A sentence with the bracket markup removed, and its phrases in order."""

    text: str
    phrases: list[Phrase]


@dataclass
class EntityAnnotation:
    """Boxes of one image.

    Attributes:
        width, height, depth: image size from the XML.
        boxes: phrase id -> list of [x1, y1, x2, y2] (0-based, inclusive).
        scene: phrase ids marked as scene.
        nobox: phrase ids marked as having no box.
    """

    width: int
    height: int
    depth: int
    boxes: dict[str, list[list[int]]] = field(default_factory=dict)
    scene: list[str] = field(default_factory=list)
    nobox: list[str] = field(default_factory=list)


def parse_sentence(line: str, where: str = "") -> Sentence:
    """Parse one annotated sentence line.

    Args:
        line: raw line from ``Sentences/<id>.txt``.
        where: file/line, for the error message.

    Returns:
        The clean sentence and its phrases.

    Raises:
        ValueError: unbalanced or malformed phrase markup.
    """
    line = line.strip()
    words: list[str] = []
    phrases: list[Phrase] = []
    pos = 0
    for m in _PHRASE.finditer(line):
        before = line[pos : m.start()]
        if "[" in before or "]" in before:
            raise ValueError(f"{where}: malformed phrase markup near {before!r} in {line!r}")
        words.extend(before.split())
        phrase_words = m.group(3).split()
        if not phrase_words:
            raise ValueError(f"{where}: empty phrase {m.group(0)!r} in {line!r}")
        start_word = len(words)
        words.extend(phrase_words)
        types = tuple(t for t in m.group(2).split("/") if t)
        phrases.append(Phrase(m.group(1), types, " ".join(phrase_words), start_word, -1, -1))
        pos = m.end()
    rest = line[pos:]
    if "[" in rest or "]" in rest:
        raise ValueError(f"{where}: malformed phrase markup near {rest!r} in {line!r}")
    words.extend(rest.split())
    # character offsets of every word in " ".join(words)
    offsets = []
    cursor = 0
    for w in words:
        offsets.append(cursor)
        cursor += len(w) + 1
    located = []
    for p in phrases:
        start = offsets[p.first_word_index]
        located.append(
            Phrase(p.phrase_id, p.phrase_types, p.text, p.first_word_index, start, start + len(p.text))
        )
    return Sentence(" ".join(words), located)


def read_sentences(path: str) -> list[Sentence]:
    """All sentences of one ``Sentences/<id>.txt`` file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Flickr30k Entities sentence file not found: {path}")
    with open(path, encoding="utf-8") as f:
        lines = [line for line in f.read().split("\n") if line.strip()]
    return [parse_sentence(line, f"{path}:{i + 1}") for i, line in enumerate(lines)]


def _int_child(node: ET.Element, tag: str, where: str) -> int:
    child = node.find(tag)
    if child is None or child.text is None:
        raise ValueError(f"{where}: missing <{tag}>")
    try:
        return int(float(child.text))
    except ValueError as e:
        raise ValueError(f"{where}: <{tag}> is not a number: {child.text!r}") from e


def read_annotation(path: str) -> EntityAnnotation:
    """Parse one ``Annotations/<id>.xml`` file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Flickr30k Entities annotation file not found: {path}")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise ValueError(f"{path}: not valid XML ({e})") from e
    size = root.find("size")
    if size is None:
        raise ValueError(f"{path}: missing <size>")
    anno = EntityAnnotation(
        width=_int_child(size, "width", path),
        height=_int_child(size, "height", path),
        depth=_int_child(size, "depth", path) if size.find("depth") is not None else 3,
    )
    for k, obj in enumerate(root.findall("object")):
        where = f"{path}: object #{k}"
        names = [n.text.strip() for n in obj.findall("name") if n.text]
        if not names:
            raise ValueError(f"{where}: missing <name>")
        box = obj.find("bndbox")
        if box is not None:
            # the official utilities make coordinates 0-based
            coords = [_int_child(box, t, where) - 1 for t in ("xmin", "ymin", "xmax", "ymax")]
            for name in names:
                anno.boxes.setdefault(name, []).append(list(coords))
            continue
        nobox = obj.find("nobndbox")
        scene = obj.find("scene")
        for name in names:
            if nobox is not None and nobox.text and int(nobox.text) > 0:
                anno.nobox.append(name)
            if scene is not None and scene.text and int(scene.text) > 0:
                anno.scene.append(name)
    return anno


def read_split(root: str, split: str) -> list[str]:
    """Image ids listed in ``<root>/<split>.txt``."""
    path = os.path.join(root, f"{split}.txt")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Flickr30k Entities split file not found: {path}")
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


class FlickrEntities:
    """Access to a Flickr30k Entities folder.

    Args:
        root: folder holding ``Annotations/``, ``Sentences/`` and the split lists.
    """

    def __init__(self, root: str):
        self.root = str(root)
        if not os.path.isdir(self.root):
            raise FileNotFoundError(f"Flickr30k Entities folder not found: {self.root}")

    def split(self, name: str) -> list[str]:
        """Image ids of split ``name`` ("train", "val", "test")."""
        return read_split(self.root, name)

    def sentences(self, image_id: str) -> list[Sentence]:
        """The annotated sentences of one image."""
        return read_sentences(os.path.join(self.root, "Sentences", f"{image_id}.txt"))

    def annotation(self, image_id: str) -> EntityAnnotation:
        """The boxes of one image."""
        return read_annotation(os.path.join(self.root, "Annotations", f"{image_id}.xml"))


def parse_sentences(path: str) -> list[dict]:
    """Sentences of one file as plain dicts (the official Flickr30k Entities utility's shape).

    Returns:
        One dict per sentence: {"sentence": str, "phrases": [{"first_word_index": int, "phrase": str,
        "phrase_id": str, "phrase_type": [str, ...], "char_start": int, "char_end": int}, ...]}.
    """
    out = []
    for sentence in read_sentences(path):
        phrases = [
            {
                "first_word_index": p.first_word_index,
                "phrase": p.text,
                "phrase_id": p.phrase_id,
                "phrase_type": list(p.phrase_types),
                "char_start": p.char_start,
                "char_end": p.char_end,
            }
            for p in sentence.phrases
        ]
        out.append({"sentence": sentence.text, "phrases": phrases})
    return out


def parse_annotation(path: str) -> dict:
    """One annotation file as a plain dict: {"width", "height", "depth", "boxes": {phrase id: [[x1, y1, x2,
    y2], ...]}, "scene": [ids], "nobox": [ids]} (0-based coordinates)."""
    anno = read_annotation(path)
    return {
        "width": anno.width,
        "height": anno.height,
        "depth": anno.depth,
        "boxes": anno.boxes,
        "scene": anno.scene,
        "nobox": anno.nobox,
    }
