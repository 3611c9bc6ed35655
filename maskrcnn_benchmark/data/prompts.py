"""Prompts: class names -> caption, character spans, token spans, positive maps and chunk plans.

FIBER scores boxes against the tokens of a text prompt. For detection data sets the prompt is the list of
class names joined by ``DATASETS.SEPARATION_TOKENS`` (". " in the FIBER model yamls), optionally with a
per-class ``prefix`` / ``suffix`` (``DATASETS.CAPTION_PROMPT``); a class is scored through the tokens of its
name only (upstream-facts.md 1.16, 1.18). This module builds that prompt once, as a typed, printable object:

* :func:`clean_name` - upstream's class-name cleaning;
* :func:`build_caption` - the caption string and each label's character span;
* :func:`char_span_to_token_indices`, :func:`create_positive_map`, :func:`positive_map_dict` - character
  span -> token indices with upstream's fall-back rules;
* :func:`plan_detection_prompts` / :func:`prompt_plans_from_cfg` - the list of :class:`PromptPlan` chunks
  for a class list (one forward pass each). Over-long lists are chunked, never truncated; a class whose name
  alone does not fit raises ``ValueError`` naming it; a class that gets no token is reported by name;
* the Python API's prompts (:class:`Prompt`): :func:`build_detection_prompts` for a class list and
  :func:`build_grounding_prompt` for a caption, whose phrases come from user spans (:func:`normalise_spans`),
  phrase strings (:func:`locate_phrases`) or the default split at ``.`` ``,`` ``;``
  (:func:`split_caption_into_phrases`).

Unlike upstream, which lets the model silently cut a caption at ``MAX_QUERY_LEN`` tokens (so the classes at
the end can never score), a class list whose caption does not fit is split into several plans (with a
warning) even when ``TEST.CHUNKED_EVALUATION`` is off.
"""

from __future__ import annotations

import logging
import numbers
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = [
    "DEFAULT_MAX_QUERY_LEN",
    "PromptEntry",
    "PromptPlan",
    "clean_name",
    "build_caption",
    "caption_entries",
    "char_span_to_token_indices",
    "create_positive_map",
    "truncated_at",
    "count_long_captions",
    "positive_map_dict",
    "validate_char_spans",
    "plan_detection_prompts",
    "prompt_plans_from_cfg",
    "describe_plans",
    "Prompt",
    "split_caption_into_phrases",
    "normalise_spans",
    "locate_phrases",
    "caption_phrase_spans",
    "build_grounding_prompt",
    "build_detection_prompts",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_QUERY_LEN = 256  # MODEL.LANGUAGE_BACKBONE.MAX_QUERY_LEN in every FIBER config
DETECTION_PROMPT_PREFIX = "object detection : "  # DATASETS.ADD_DET_PROMPT


def clean_name(name: str) -> str:
    """Clean a class name the way upstream does before putting it in a caption.

    Removes everything from the first "(" to the last ")" (greedy), turns "_" into " ", then replaces
    double spaces by one space in a single pass. ``"bow_(weapon)"`` -> ``"bow "`` (trailing space kept).

    Args:
        name: raw category name from the annotation file.

    Returns:
        The cleaned name.
    """
    # UPSTREAM-QUIRK: 1.18 - greedy parenthesis removal and a single "  " -> " " pass, trailing space kept.
    name = re.sub(r"\(.*\)", "", name)
    name = name.replace("_", " ")
    return name.replace("  ", " ")


@dataclass(frozen=True)
class PromptEntry:
    """One class in a caption: ``prefix + name + suffix``; only ``name`` is scored.

    Attributes:
        label: the class id the boxes of this class carry (global, never chunk-local).
        name: text whose tokens represent the class.
        prefix: text written before the name (not scored).
        suffix: text written after the name (not scored).
    """

    label: int
    name: str
    prefix: str = ""
    suffix: str = ""


def build_caption(
    entries: Sequence[PromptEntry], separation_tokens: str = ". ", caption_prefix: str = ""
) -> tuple[str, dict[int, tuple[int, int]]]:
    """Join prompt entries into a caption.

    Args:
        entries: classes in caption order.
        separation_tokens: text between two entries (none after the last one).
        caption_prefix: text at the very start (e.g. "object detection : ").

    Returns:
        (caption, spans) with ``spans[label] = (start, end)``, the half-open character span of the entry's
        name in the caption.
    """
    parts = [caption_prefix]
    length = len(caption_prefix)
    spans: dict[int, tuple[int, int]] = {}
    for i, entry in enumerate(entries):
        if i > 0:
            parts.append(separation_tokens)
            length += len(separation_tokens)
        parts.append(entry.prefix)
        length += len(entry.prefix)
        spans[entry.label] = (length, length + len(entry.name))
        parts.append(entry.name)
        parts.append(entry.suffix)
        length += len(entry.name) + len(entry.suffix)
    return "".join(parts), spans


def caption_entries(
    categories: Mapping[int, str],
    caption_prompt: Sequence[Mapping[str, str]] | None = None,
    clean: bool = True,
    clean_prompt_names: bool = False,
) -> list[PromptEntry]:
    """Turn ``{label: name}`` (sorted by label) into prompt entries.

    Args:
        categories: contiguous (or global) label -> class name.
        caption_prompt: optional list aligned with the sorted labels, each a dict with "prefix", "name",
            "suffix" (``DATASETS.CAPTION_PROMPT``). Its "name" replaces the category name.
        clean: apply :func:`clean_name` to category names.
        clean_prompt_names: apply :func:`clean_name` to ``caption_prompt`` names too (upstream does at
            training time, not at test time).

    Returns:
        One :class:`PromptEntry` per label, in label order.

    Raises:
        ValueError: if ``caption_prompt`` has a different length than ``categories`` or misses a key.
    """
    labels = sorted(categories)
    if caption_prompt is not None and len(caption_prompt) != len(labels):
        raise ValueError(
            f"DATASETS.CAPTION_PROMPT has {len(caption_prompt)} entries but the data set has {len(labels)} "
            f"categories ({[categories[k] for k in labels][:10]}...); they must be aligned one to one"
        )
    entries = []
    for i, label in enumerate(labels):
        if caption_prompt is None:
            name = clean_name(categories[label]) if clean else categories[label]
            entries.append(PromptEntry(int(label), name))
            continue
        item = caption_prompt[i]
        missing = [k for k in ("prefix", "name", "suffix") if k not in item]
        if missing:
            raise ValueError(f"DATASETS.CAPTION_PROMPT entry {i} ({dict(item)}) misses key(s) {missing}")
        name = clean_name(item["name"]) if clean_prompt_names else item["name"]
        entries.append(PromptEntry(int(label), name, item["prefix"], item["suffix"]))
    return entries


def _char_to_token(encoding: Any, char_index: int) -> int | None:
    if char_index < 0:
        return None
    try:
        return encoding.char_to_token(char_index)
    except (IndexError, TypeError, ValueError):
        return None


def char_span_to_token_indices(encoding: Any, start: int, end: int) -> list[int]:
    """Map a half-open character span to the inclusive range of token indices covering it.

    Upstream's fall-back (upstream-facts.md 1.16): if ``start`` falls on no token (a space), try ``start+1``
    then ``start+2``; if ``end-1`` falls on no token, try ``end-2`` then ``end-3``; a span still unmapped
    gets no token.

    Args:
        encoding: a fast tokenizer's ``BatchEncoding`` of ONE caption (with special tokens).
        start: first character of the span.
        end: one past the last character.

    Returns:
        Token indices ``[beg, ..., last]`` (empty if the span maps to no token).
    """
    beg = _char_to_token(encoding, start)
    if beg is None:
        beg = _char_to_token(encoding, start + 1)
        if beg is None:
            beg = _char_to_token(encoding, start + 2)
    last = _char_to_token(encoding, end - 1)
    if last is None:
        last = _char_to_token(encoding, end - 2)
        if last is None:
            last = _char_to_token(encoding, end - 3)
    if beg is None or last is None or last < beg:
        return []
    return list(range(beg, last + 1))


def validate_char_spans(caption: str, spans: Sequence[Sequence[int]], where: str) -> None:
    """Check that every ``[start, end)`` span is non-empty and lies inside ``caption``.

    Args:
        caption: the text the spans index.
        spans: list of [start, end) pairs.
        where: context for the error message (file + record).

    Raises:
        ValueError: naming ``where``, the span and the caption length.
    """
    for span in spans:
        if len(span) != 2:
            raise ValueError(f"{where}: character span {span!r} is not a [start, end) pair")
        start, end = span
        if not (isinstance(start, int) and isinstance(end, int)):
            raise ValueError(f"{where}: character span {span!r} has non-integer bounds")
        if not 0 <= start < end <= len(caption):
            raise ValueError(
                f"{where}: character span {list(span)} is empty or outside the caption "
                f"(length {len(caption)}): {caption!r}"
            )


def truncated_at(encoding: Any) -> int | None:
    """Where a truncated encoding's text stops: the end character of its last kept token (None if nothing was
    cut). Works with fast tokenizers' ``BatchEncoding`` of one text (``encoding.encodings[0].overflowing``)."""
    encodings = getattr(encoding, "encodings", None)
    if not encodings or not encodings[0].overflowing:
        return None
    ends = [span.end for index in range(len(encoding["input_ids"]))
            if (span := encoding.token_to_chars(index)) is not None]
    return max(ends, default=0)


def count_long_captions(tokenizer: Any, captions: Sequence[str], max_len: int) -> tuple[int, int, int]:
    """How many captions need more than ``max_len`` tokens (special tokens included).

    Only captions that could be that long are tokenized: every token covers at least one byte of text, so a
    caption of ``n`` UTF-8 bytes has at most ``n + 2`` tokens.

    Returns:
        ``(count, index of the first long caption or -1, its number of tokens)``.
    """
    candidates = [i for i, caption in enumerate(captions) if len(caption.encode("utf-8")) + 2 > max_len]
    count, first, first_length = 0, -1, 0
    for start in range(0, len(candidates), 256):
        chunk = candidates[start:start + 256]
        lengths = [len(ids) for ids in tokenizer([captions[i] for i in chunk], add_special_tokens=True)["input_ids"]]
        for index, length in zip(chunk, lengths):
            if length > max_len:
                count += 1
                if first < 0:
                    first, first_length = index, length
    return count, first, first_length


def create_positive_map(
    encoding: Any,
    tokens_positive: Sequence[Sequence[Sequence[int]]],
    max_len: int = DEFAULT_MAX_QUERY_LEN,
    normalize: bool = True,
) -> torch.Tensor:
    """Dense box/phrase -> token map (upstream-facts.md 1.16).

    Args:
        encoding: ``BatchEncoding`` of the caption (special tokens added, truncated at ``max_len``).
        tokens_positive: for each of N rows, a list of [start, end) character spans.
        max_len: number of token columns L.
        normalize: divide each row by (its sum + 1e-6), as upstream stores it in the targets (the
            collator binarises it again).

    Returns:
        Tensor[N, L] float32. A span that reaches past the truncation point of the caption maps to no token
        (never to the part of it that was kept, nor to tokens that were cut off).
    """
    positive_map = torch.zeros((len(tokens_positive), max_len), dtype=torch.float32)
    cut = truncated_at(encoding)
    for row, spans in enumerate(tokens_positive):
        for start, end in spans:
            if cut is not None and int(end) > cut:
                continue
            indices = [i for i in char_span_to_token_indices(encoding, int(start), int(end)) if i < max_len]
            if indices:
                positive_map[row, indices[0] : indices[-1] + 1] = 1.0
    if normalize:
        positive_map = positive_map / (positive_map.sum(-1, keepdim=True) + 1e-6)
    return positive_map


def positive_map_dict(
    encoding: Any, label_spans: Mapping[int, Sequence[Sequence[int]]]
) -> dict[int, list[int]]:
    """Test-time positive map: label -> token indices (upstream ``create_positive_dict``).

    Args:
        encoding: ``BatchEncoding`` of the caption (not truncated).
        label_spans: label -> list of [start, end) character spans.

    Returns:
        label -> sorted token indices; labels whose spans map to no token are left out.
    """
    result: dict[int, list[int]] = {}
    for label, spans in label_spans.items():
        indices: list[int] = []
        for start, end in spans:
            indices.extend(char_span_to_token_indices(encoding, int(start), int(end)))
        if indices:
            result[int(label)] = sorted(set(indices))
    return result


@dataclass
class PromptPlan:
    """One forward pass worth of classes: a caption and how each class maps onto its tokens.

    Attributes:
        caption: the text given to the model.
        labels: the classes in this caption, in caption order (global label ids).
        names: label -> the scored text of the class.
        char_spans: label -> list of [start, end) character spans of its name in ``caption``.
        token_map: label -> token indices (with special tokens; what the model's post-processor takes as
            its ``positive_map`` at test time). Labels absent here cannot score (see ``labels_without_tokens``).
        num_tokens: tokens of the caption including <s> and </s>.
        chunk_index: position of this plan in the list of plans of one class list.
        labels_without_tokens: labels whose span maps to no token (e.g. a name that cleans to blank).
    """

    caption: str
    labels: list[int]
    names: dict[int, str]
    char_spans: dict[int, list[tuple[int, int]]]
    token_map: dict[int, list[int]]
    num_tokens: int
    chunk_index: int = 0
    labels_without_tokens: list[int] = field(default_factory=list)

    def dense_positive_map(self, max_len: int = DEFAULT_MAX_QUERY_LEN) -> torch.Tensor:
        """Binary map ``Tensor[len(labels), max_len]``, rows in ``labels`` order."""
        out = torch.zeros((len(self.labels), max_len), dtype=torch.float32)
        for row, label in enumerate(self.labels):
            for idx in self.token_map.get(label, []):
                if idx < max_len:
                    out[row, idx] = 1.0
        return out

    def __str__(self) -> str:
        lines = [f"chunk {self.chunk_index}: {len(self.labels)} classes, {self.num_tokens} tokens"]
        lines.append(f"  caption: {self.caption!r}")
        for label in self.labels:
            spans = self.char_spans[label]
            lines.append(
                f"  label {label:>5} {self.names[label]!r:<30} chars {spans} tokens {self.token_map.get(label, [])}"
            )
        return "\n".join(lines)


def _make_plan(
    entries: Sequence[PromptEntry],
    tokenizer: Any,
    separation_tokens: str,
    caption_prefix: str,
    extra_text: str,
    chunk_index: int,
) -> PromptPlan:
    caption, spans = build_caption(entries, separation_tokens, caption_prefix)
    if extra_text:
        caption = caption + separation_tokens + extra_text
    encoding = tokenizer(caption, add_special_tokens=True, truncation=False)
    char_spans = {label: [span] for label, span in spans.items()}
    token_map = positive_map_dict(encoding, char_spans)
    labels = [e.label for e in entries]
    missing = [label for label in labels if label not in token_map]
    return PromptPlan(
        caption=caption,
        labels=labels,
        names={e.label: e.name for e in entries},
        char_spans=char_spans,
        token_map=token_map,
        num_tokens=len(encoding["input_ids"]),
        chunk_index=chunk_index,
        labels_without_tokens=missing,
    )


def _fit_by_budget(
    entries: Sequence[PromptEntry],
    tokenizer: Any,
    separation_tokens: str,
    caption_prefix: str,
    extra_text: str,
    max_tokens: int,
) -> list[list[PromptEntry]]:
    """Greedy split of ``entries`` into groups whose caption fits ``max_tokens`` tokens."""
    groups: list[list[PromptEntry]] = []
    current: list[PromptEntry] = []
    for entry in entries:
        candidate = current + [entry]
        plan = _make_plan(candidate, tokenizer, separation_tokens, caption_prefix, extra_text, 0)
        if plan.num_tokens <= max_tokens:
            current = candidate
            continue
        if current:
            groups.append(current)
            plan = _make_plan([entry], tokenizer, separation_tokens, caption_prefix, extra_text, 0)
        if plan.num_tokens > max_tokens:
            raise ValueError(
                f"class {entry.label} ({entry.prefix + entry.name + entry.suffix!r}) alone needs "
                f"{plan.num_tokens} tokens, more than MODEL.LANGUAGE_BACKBONE.MAX_QUERY_LEN={max_tokens}; "
                "shorten its name or CAPTION_PROMPT entry"
            )
        current = [entry]
    if current:
        groups.append(current)
    return groups


def plan_detection_prompts(
    categories: Mapping[int, str],
    tokenizer: Any,
    separation_tokens: str = ". ",
    caption_prompt: Sequence[Mapping[str, str]] | None = None,
    chunk_size: int = -1,
    max_query_len: int = DEFAULT_MAX_QUERY_LEN,
    extra_text: str = "",
    caption_prefix: str = "",
) -> list[PromptPlan]:
    """Build the evaluation prompts for a detection data set (upstream ``create_queries_and_maps``).

    Labels are taken in increasing order; names are cleaned with :func:`clean_name` (CAPTION_PROMPT names
    are used as written, as upstream does at test time).

    Args:
        categories: label -> class name (contiguous ids for COCO/ODinW, LVIS ids for LVIS).
        tokenizer: a Hugging Face fast tokenizer (roberta-style).
        separation_tokens: ``DATASETS.SEPARATION_TOKENS``.
        caption_prompt: ``DATASETS.CAPTION_PROMPT`` when ``USE_CAPTION_PROMPT`` is on, else None.
        chunk_size: ``TEST.CHUNKED_EVALUATION``: classes per chunk (<= 0: as many as fit).
        max_query_len: ``MODEL.LANGUAGE_BACKBONE.MAX_QUERY_LEN``; every plan fits in it.
        extra_text: words appended after the last class, scored by nobody (``SUPRESS_QUERY``).
        caption_prefix: text placed before the first class.

    Returns:
        The plans, in label order; every label appears in exactly one plan.

    Raises:
        ValueError: if a single class does not fit in ``max_query_len`` tokens, or the inputs are invalid.
    """
    if not categories:
        raise ValueError("plan_detection_prompts: the category list is empty")
    if max_query_len <= 2:
        raise ValueError(f"max_query_len must be > 2 (got {max_query_len})")
    entries = caption_entries(categories, caption_prompt, clean=True, clean_prompt_names=False)
    for entry in entries:
        if not entry.name.strip():
            logger.warning(
                "class %d (%r) has a blank name after cleaning: it gets no token and can never be detected",
                entry.label,
                categories[entry.label],
            )
    groups = [entries] if chunk_size <= 0 else [
        list(entries[i : i + chunk_size]) for i in range(0, len(entries), chunk_size)
    ]
    plans: list[PromptPlan] = []
    for group in groups:
        plan = _make_plan(group, tokenizer, separation_tokens, caption_prefix, extra_text, len(plans))
        if plan.num_tokens <= max_query_len:
            plans.append(plan)
            continue
        pieces = _fit_by_budget(group, tokenizer, separation_tokens, caption_prefix, extra_text, max_query_len)
        logger.warning(
            "%d classes (labels %d..%d) need %d tokens > MAX_QUERY_LEN=%d: split into %d prompts instead of "
            "truncating (set TEST.CHUNKED_EVALUATION to choose the chunk size)",
            len(group), group[0].label, group[-1].label, plan.num_tokens, max_query_len, len(pieces),
        )
        for piece in pieces:
            plans.append(_make_plan(piece, tokenizer, separation_tokens, caption_prefix, extra_text, len(plans)))
    for plan in plans:
        for label in plan.labels_without_tokens:
            logger.warning(
                "prompt chunk %d: class %d (%r) maps to no token in %r; it cannot be detected",
                plan.chunk_index, label, plan.names[label], plan.caption,
            )
    return plans


def prompt_plans_from_cfg(cfg: Any, categories: Mapping[int, str], tokenizer: Any) -> list[PromptPlan]:
    """:func:`plan_detection_prompts` with the options of a config.

    Reads ``DATASETS.SEPARATION_TOKENS``, ``DATASETS.USE_CAPTION_PROMPT`` / ``CAPTION_PROMPT``,
    ``DATASETS.USE_SUPRESS_QUERY`` / ``SUPRESS_QUERY``, ``TEST.CHUNKED_EVALUATION`` and
    ``MODEL.LANGUAGE_BACKBONE.MAX_QUERY_LEN``.

    Args:
        cfg: the (task) config.
        categories: label -> class name, e.g. ``dataset.categories()``.
        tokenizer: fast tokenizer.

    Returns:
        The list of prompt plans.
    """
    datasets = cfg.DATASETS
    caption_prompt = None
    if getattr(datasets, "USE_CAPTION_PROMPT", False) and getattr(datasets, "CAPTION_PROMPT", None):
        caption_prompt = datasets.CAPTION_PROMPT
    extra = ""
    supress = getattr(datasets, "SUPRESS_QUERY", None)
    if getattr(datasets, "USE_SUPRESS_QUERY", False) and supress:
        extra = supress if isinstance(supress, str) else datasets.SEPARATION_TOKENS.join(supress)
    return plan_detection_prompts(
        categories,
        tokenizer,
        separation_tokens=datasets.SEPARATION_TOKENS,
        caption_prompt=caption_prompt,
        chunk_size=int(cfg.TEST.CHUNKED_EVALUATION),
        max_query_len=int(cfg.MODEL.LANGUAGE_BACKBONE.MAX_QUERY_LEN),
        extra_text=extra,
    )


def describe_plans(plans: Sequence[PromptPlan]) -> str:
    """Human-readable listing of a chunk plan (for logs and ``--dry-run`` style tools)."""
    total = sum(len(p.labels) for p in plans)
    head = f"{len(plans)} prompt(s) for {total} classes"
    return "\n".join([head] + [str(p) for p in plans])


# ---------------------------------------------------------------------------------------------------
# Prompts of the Python API (Predictor, tools/demo.py): class lists and captions with their phrases
# ---------------------------------------------------------------------------------------------------

_PHRASE_SEPARATORS = re.compile(r"[.,;]")


@dataclass
class Prompt:
    """One forward pass worth of text: a caption and ``{label: [token index]}``.

    Attributes:
        caption: the text given to the model.
        token_map: label -> token indices (with special tokens).
        names: label -> the class name or phrase reported for it.
    """

    caption: str
    token_map: dict[int, list[int]]
    names: dict[int, str] = field(default_factory=dict)


def split_caption_into_phrases(caption: str) -> list[tuple[int, int]]:
    """The default phrase rule: the pieces of ``caption`` between ``.``, ``,`` and ``;``, stripped.

    A plain rule (no NLTK, no downloads), used when a grounding caption comes without spans or phrases.

    Returns:
        ``[(start, end), ...]`` character spans, left to right (empty pieces dropped).
    """
    spans = []
    start = 0
    for match in list(_PHRASE_SEPARATORS.finditer(caption)) + [None]:
        end = match.start() if match is not None else len(caption)
        piece = caption[start:end]
        stripped = piece.strip()
        if stripped:
            offset = start + (len(piece) - len(piece.lstrip()))
            spans.append((offset, offset + len(stripped)))
        if match is not None:
            start = match.end()
    return spans


def normalise_spans(caption: str, spans: Sequence[Any]) -> list[list[tuple[int, int]]]:
    """Checks user-given phrase spans: one entry per phrase, a ``(start, end)`` pair or a list of pairs.

    Returns:
        Per phrase, its list of ``(start, end)`` character spans.

    Raises:
        ValueError: a span that is not a pair, empty, or outside the caption (names the phrase index).
    """
    out = []
    for i, item in enumerate(spans):
        is_pair = len(item) == 2 and all(isinstance(v, numbers.Integral) for v in item)
        checked = []
        for pair in [item] if is_pair else list(item):
            if len(pair) != 2:
                raise ValueError(f"phrase {i}: span {pair!r} is not a (start, end) pair")
            start, end = int(pair[0]), int(pair[1])
            if not 0 <= start < end <= len(caption):
                raise ValueError(f"phrase {i}: span ({start}, {end}) is empty or outside the caption "
                                 f"(length {len(caption)})")
            checked.append((start, end))
        out.append(checked)
    return out


def locate_phrases(caption: str, phrases: Sequence[str]) -> list[list[tuple[int, int]]]:
    """The spans of ``phrases`` in ``caption``, searched left to right (then anywhere, for repeats).

    Raises:
        ValueError: an empty phrase, or one that does not occur in the caption.
    """
    spans, cursor = [], 0
    for phrase in phrases:
        if not phrase or not phrase.strip():
            raise ValueError("empty phrase in 'phrases'")
        index = caption.find(phrase, cursor)
        if index < 0:
            index = caption.find(phrase)
        if index < 0:
            raise ValueError(f"phrase {phrase!r} does not occur in the caption {caption!r}")
        spans.append([(index, index + len(phrase))])
        cursor = index + len(phrase)
    return spans


def caption_phrase_spans(caption: str, spans: Sequence[Any] | None = None,
                         phrases: Sequence[str] | None = None) -> list[list[tuple[int, int]]]:
    """The phrases of a grounding caption: from ``spans``, from ``phrases``, or by :func:`split_caption_into_phrases`.

    Returns:
        Per phrase (phrase ``i`` gets label ``i + 1``), its list of ``(start, end)`` character spans.

    Raises:
        ValueError: an empty caption, both ``spans`` and ``phrases``, bad spans / phrases, or no phrase found.
    """
    if not isinstance(caption, str) or not caption.strip():
        raise ValueError("the caption is empty")
    if spans is not None and phrases is not None:
        raise ValueError("give either spans or phrases, not both")
    if spans is not None:
        label_spans = normalise_spans(caption, spans)
    elif phrases is not None:
        label_spans = locate_phrases(caption, phrases)
    else:
        label_spans = [[span] for span in split_caption_into_phrases(caption)]
    if not label_spans:
        raise ValueError(f"no phrase found in the caption {caption!r}")
    return label_spans


def build_grounding_prompt(caption: str, tokenizer: Any, max_query_len: int, spans: Sequence[Any] | None = None,
                           phrases: Sequence[str] | None = None) -> Prompt:
    """The prompt of a grounding caption (phrases as in :func:`caption_phrase_spans`; labels 1..P).

    Args:
        caption: the caption.
        tokenizer: the model's fast tokenizer.
        max_query_len: ``MODEL.LANGUAGE_BACKBONE.MAX_QUERY_LEN``; a longer caption is refused, never cut.
        spans, phrases: the caption's phrases (see :func:`caption_phrase_spans`).

    Raises:
        ValueError: see :func:`caption_phrase_spans`; a caption of more than ``max_query_len`` tokens.
    """
    label_spans = caption_phrase_spans(caption, spans, phrases)
    encoding = tokenizer(caption, add_special_tokens=True, truncation=False)
    if len(encoding["input_ids"]) > max_query_len:
        raise ValueError(f"the caption has {len(encoding['input_ids'])} tokens, more than "
                         f"MODEL.LANGUAGE_BACKBONE.MAX_QUERY_LEN={max_query_len}; shorten it")
    token_map = positive_map_dict(encoding, {i + 1: s for i, s in enumerate(label_spans)})
    names = {i + 1: " ".join(caption[a:b] for a, b in s) for i, s in enumerate(label_spans)}
    for label in names:
        if label not in token_map:
            logger.warning("phrase %d (%r) maps to no token; it cannot be detected", label, names[label])
    return Prompt(caption, token_map, names)


def build_detection_prompts(classes: Sequence[str] | Mapping[int, str], tokenizer: Any, separation_tokens: str = ". ",
                            chunk_size: int = -1, max_query_len: int = DEFAULT_MAX_QUERY_LEN) -> list[Prompt]:
    """Prompts (chunked when needed, see :func:`plan_detection_prompts`) for a list of class names.

    Args:
        classes: class names (labels 1..K in list order) or ``{label: name}``.
        tokenizer: the model's fast tokenizer.
        separation_tokens: ``DATASETS.SEPARATION_TOKENS``.
        chunk_size: ``TEST.CHUNKED_EVALUATION``.
        max_query_len: ``MODEL.LANGUAGE_BACKBONE.MAX_QUERY_LEN``.

    Raises:
        ValueError: an empty list or an empty name (naming its label).
    """
    categories = dict(classes) if isinstance(classes, Mapping) else {i + 1: n for i, n in enumerate(classes)}
    if not categories:
        raise ValueError("the class list is empty: give at least one class name")
    for label, name in categories.items():
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"class {label}: empty class name {name!r}")
    plans = plan_detection_prompts(categories, tokenizer, separation_tokens=separation_tokens,
                                   chunk_size=chunk_size, max_query_len=max_query_len)
    if len(plans) > 1:
        logger.info("%d classes split into %d prompts (one forward pass each)", len(categories), len(plans))
    return [Prompt(plan.caption, plan.token_map, {label: categories[label] for label in plan.labels})
            for plan in plans]
