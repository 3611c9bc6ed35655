"""Detection annotations -> grounding captions for training (upstream-facts.md 6.2).

Two recipes, as upstream:

* :func:`convert_od_to_grounding_simple` (COCO / ODinW fine-tuning): the caption holds every class name,
  shuffled per sample unless ``DATASETS.DISABLE_SHUFFLE``; each box points at its class name.
* :func:`convert_od_to_grounding_with_negatives` (Objects365 pre-training, LVIS fine-tuning): the caption
  holds all positive classes of the image plus a random number of sampled negative class names, shuffled,
  within a token budget (254 = MAX_QUERY_LEN - 2). :func:`check_for_positive_overflow` first drops the boxes
  of positive classes that do not fit.

All randomness goes through a ``random.Random``-like ``rng`` argument (default: the ``random`` module), so
the data loader can make a sample's caption reproducible.
"""

from __future__ import annotations

import logging
import random as _random
from collections.abc import Mapping, Sequence
from typing import Any

from ..prompts import DETECTION_PROMPT_PREFIX, PromptEntry, build_caption, clean_name

__all__ = [
    "TOKEN_BUDGET",
    "convert_od_to_grounding_simple",
    "check_for_positive_overflow",
    "sample_num_negatives",
    "convert_od_to_grounding_with_negatives",
]

logger = logging.getLogger(__name__)

TOKEN_BUDGET = 254  # MAX_QUERY_LEN (256) - <s> - </s>: upstream's max_seq_length for these captions
_P3_WARNED = False


def convert_od_to_grounding_simple(
    labels: Sequence[int],
    ind_to_class: Mapping[int, str],
    disable_shuffle: bool = True,
    add_detection_prompt: bool = False,
    separation_tokens: str = ". ",
    caption_prompt: Sequence[Mapping[str, str]] | None = None,
    rng: Any = _random,
) -> tuple[str, list[list[tuple[int, int]]], dict[int, tuple[int, int]]]:
    """Caption of ALL class names; each box's span is its class name's span.

    Args:
        labels: class label of each box (N entries).
        ind_to_class: label -> class name for every class of the data set.
        disable_shuffle: keep label order (else shuffle the class order for this sample).
        add_detection_prompt: start the caption with "object detection : ".
        separation_tokens: text between class entries.
        caption_prompt: optional per-class prefix/name/suffix (aligned with sorted labels); names are
            cleaned. Upstream forbids it together with shuffling.
        rng: source of randomness (``shuffle``).

    Returns:
        (caption, tokens_positive, label_spans): ``tokens_positive[i] = [(start, end)]`` for box i,
        ``label_spans[label] = (start, end)``.

    Raises:
        ValueError: caption_prompt with shuffling, or a box label not in ``ind_to_class``.
    """
    order = sorted(ind_to_class)
    if caption_prompt is not None and not disable_shuffle:
        raise ValueError(
            "DATASETS.CAPTION_PROMPT cannot be combined with shuffled captions: set DATASETS.DISABLE_SHUFFLE True"
        )
    if caption_prompt is not None and len(caption_prompt) != len(order):
        raise ValueError(
            f"DATASETS.CAPTION_PROMPT has {len(caption_prompt)} entries for {len(order)} categories"
        )
    entries = []
    for i, label in enumerate(order):
        if caption_prompt is None:
            entries.append(PromptEntry(label, clean_name(ind_to_class[label])))
        else:
            item = caption_prompt[i]
            entries.append(PromptEntry(label, clean_name(item["name"]), item["prefix"], item["suffix"]))
    if not disable_shuffle:
        rng.shuffle(entries)
    prefix = DETECTION_PROMPT_PREFIX if add_detection_prompt else ""
    caption, spans = build_caption(entries, separation_tokens, prefix)
    tokens_positive = []
    for label in labels:
        label = int(label)
        if label not in spans:
            raise ValueError(f"box label {label} is not one of the data set's classes {order[:10]}...")
        tokens_positive.append([spans[label]])
    return caption, tokens_positive, spans


def check_for_positive_overflow(
    labels: Sequence[int],
    ind_to_class: Mapping[int, str],
    tokenizer: Any,
    max_seq_length: int = TOKEN_BUDGET,
    rng: Any = _random,
) -> tuple[list[int], int]:
    """Keep only the boxes of positive classes whose names fit in the token budget.

    The set of positive classes is shuffled; each class costs ``len(tokenize(clean_name(name) + ". "))``
    tokens; classes are kept while the running total stays <= ``max_seq_length``.

    Args:
        labels: label of each box (N).
        ind_to_class: label -> class name.
        tokenizer: fast tokenizer (``tokenize``).
        max_seq_length: token budget.
        rng: randomness source.

    Returns:
        (keep, length): indices of the boxes to keep, and the tokens used by the kept positive names.
        (Upstream also counts the first class that overflowed; we count only what is kept.)
    """
    positives = sorted({int(x) for x in labels})
    rng.shuffle(positives)
    kept = set()
    length = 0
    for label in positives:
        cost = len(tokenizer.tokenize(clean_name(ind_to_class[label]) + ". "))
        if length + cost > max_seq_length:
            logger.debug("positive class %d (%r) overflows the caption budget", label, ind_to_class[label])
            break
        length += cost
        kept.add(label)
    keep = [i for i, label in enumerate(labels) if int(label) in kept]
    return keep, length


def sample_num_negatives(control_probabilities: Sequence[float], full_negative: int, rng: Any = _random) -> int:
    """How many negative classes a caption gets (upstream ``generate_control_options_given_probabilities``).

    With ``(p0, p1, p2, p3) = control_probabilities`` and r uniform in [0, 1): r < p0 -> 1 negative;
    r < p0+p1 -> 0 negatives ("one positive": positives are all kept anyway, as upstream); r < p0+p1+p2 ->
    ``full_negative``; otherwise a uniform random number in [1, full_negative - 1] (at least 1).

    ``p3`` ("drop positives") is not implemented upstream: it asserts p3 == 0, which FIBER's released
    pre-training yaml (0.05, 0.05, 0.5, 0.2) violates. We treat p3 as 0 - it takes nothing from the other
    cases, which keep their probabilities - and say so once in the log.

    Args:
        control_probabilities: ``DATASETS.CONTROL_PROB`` (4 numbers; empty -> always full negatives).
        full_negative: the maximum number of negatives.
        rng: randomness source.

    Returns:
        Number of negatives (0 <= n <= full_negative).
    """
    global _P3_WARNED
    if not control_probabilities:
        return full_negative
    if len(control_probabilities) != 4:
        raise ValueError(f"DATASETS.CONTROL_PROB must have 4 values, got {tuple(control_probabilities)}")
    p0, p1, p2, p3 = (float(p) for p in control_probabilities)
    if p3 != 0 and not _P3_WARNED:
        # UPSTREAM-QUIRK: 6.2 - upstream asserts p3 == 0; p3 has no other effect, so we ignore it.
        logger.warning("DATASETS.CONTROL_PROB p3=%s is not used (upstream requires 0); treating it as 0", p3)
        _P3_WARNED = True
    r = rng.random()
    if r < p0:
        return min(1, full_negative)
    if r < p0 + p1:
        return 0
    if r < p0 + p1 + p2:
        return full_negative
    if full_negative <= 0:
        return 0
    return max(1, rng.randrange(full_negative))


def convert_od_to_grounding_with_negatives(
    labels: Sequence[int],
    ind_to_class: Mapping[int, str],
    tokenizer: Any,
    random_sample_negative: int = 85,
    control_probabilities: Sequence[float] = (0.0, 0.0, 1.0, 0.0),
    separation_tokens: str = ". ",
    max_seq_length: int = TOKEN_BUDGET,
    positive_caption_length: int = 0,
    disable_shuffle: bool = False,
    add_detection_prompt: bool = False,
    max_num_labels: int = -1,
    rng: Any = _random,
) -> tuple[str, list[list[tuple[int, int]]], dict[int, tuple[int, int]]]:
    """Caption = all positive class names + sampled negative class names (upstream ``..._optimized_for_od``).

    Negatives are drawn without replacement from every label of ``ind_to_class`` (an O365 label map's
    "__background__" included, as upstream), positives removed, then shuffled and kept while the tokens of
    ``name + ". "`` fit in ``max_seq_length - positive_caption_length``. All positives are always kept.

    Args:
        labels: label of each (kept) box.
        ind_to_class: label -> class name.
        tokenizer: fast tokenizer.
        random_sample_negative: the "full" number of negatives (``DATASETS.RANDOM_SAMPLE_NEG``), capped by
            the number of classes.
        control_probabilities: ``DATASETS.CONTROL_PROB`` (see :func:`sample_num_negatives`).
        separation_tokens: text between class names.
        max_seq_length: token budget (254).
        positive_caption_length: tokens already used by the positives (from
            :func:`check_for_positive_overflow`).
        disable_shuffle: keep negatives first then positives in label order.
        add_detection_prompt: start with "object detection : ".
        max_num_labels: if > 0, at most this many classes in total
            (``TEST.MDETR_STYLE_AGGREGATE_CLASS_NUM`` upstream).
        rng: randomness source.

    Returns:
        (caption, tokens_positive per box, label spans).
    """
    positives = sorted({int(x) for x in labels})
    full_negative = random_sample_negative
    if max_num_labels > 0:
        full_negative = min(full_negative, max_num_labels - len(positives))
    full_negative = max(0, min(full_negative, len(ind_to_class)))
    num_negatives = sample_num_negatives(control_probabilities, full_negative, rng)
    candidates = sorted(ind_to_class)
    drawn = rng.sample(candidates, min(num_negatives, len(candidates)))
    positive_set = set(positives)
    negatives = [label for label in drawn if label not in positive_set]
    rng.shuffle(negatives)
    budget = max_seq_length - positive_caption_length
    screened = []
    for label in negatives:
        budget -= len(tokenizer.tokenize(clean_name(ind_to_class[label]) + ". "))
        if budget <= 0:
            break
        screened.append(label)
    order = screened + positives
    if not disable_shuffle:
        rng.shuffle(order)
    entries = [PromptEntry(label, clean_name(ind_to_class[label])) for label in order]
    prefix = DETECTION_PROMPT_PREFIX if add_detection_prompt else ""
    caption, spans = build_caption(entries, separation_tokens, prefix)
    tokens_positive = [[spans[int(label)]] for label in labels]
    return caption, tokens_positive, spans
