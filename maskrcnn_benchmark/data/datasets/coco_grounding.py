"""COCO-format detection turned into grounding on the fly (COCO / LVIS / ODinW fine-tuning; upstream-facts 6.2)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch

from ...structures.bounding_box import BoxList
from ..prompts import DEFAULT_MAX_QUERY_LEN, create_positive_map
from .coco import COCODataset
from .od_to_grounding import (
    TOKEN_BUDGET,
    check_for_positive_overflow,
    convert_od_to_grounding_simple,
    convert_od_to_grounding_with_negatives,
)

__all__ = ["CocoGrounding", "ClassNameCaptions", "add_positive_map", "resolve_tokenizer"]

logger = logging.getLogger(__name__)


def resolve_tokenizer(tokenizer: Any) -> Any:
    """A tokenizer object, or a name/folder loaded through ``build_tokenizer``."""
    if tokenizer is None or not isinstance(tokenizer, str):
        return tokenizer
    from ...modeling.language_backbone.tokenizer import build_tokenizer

    return build_tokenizer(tokenizer)


def add_positive_map(target: BoxList, tokenizer: Any, max_query_len: int, where: str) -> BoxList:
    """Tokenize ``target``'s caption and add the row-normalised "positive_map" (Tensor[N, max_query_len]).

    Args:
        target: BoxList with "caption" and per-box "tokens_positive".
        tokenizer: fast tokenizer.
        max_query_len: number of token columns (the caption is truncated there, as the model does).
        where: data set + record, for the log.

    Returns:
        ``target`` (modified in place).
    """
    if tokenizer is None:
        raise ValueError(f"{where}: a tokenizer is needed to build positive maps (pass tokenizer=...)")
    caption = target.get_field("caption")
    encoding = tokenizer(caption, max_length=max_query_len, truncation=True, add_special_tokens=True)
    spans = target.get_field("tokens_positive") if target.has_field("tokens_positive") else []
    positive_map = create_positive_map(encoding, spans, max_len=max_query_len)
    empty = (positive_map.sum(-1) == 0).nonzero().flatten().tolist()
    if empty and len(spans):
        logger.debug("%s: boxes %s map to no token of %r", where, empty, caption)
    target.add_field("positive_map", positive_map, per_box=True)
    return target


class ClassNameCaptions:
    """Mixin: a grounding caption made of class names for a detection target (upstream-facts.md 6.2).

    The data set sets ``ind_to_class`` (label -> class name) and ``tokenizer``, and stores its caption
    options with :meth:`_set_caption_options`. ``RANDOM_SAMPLE_NEG`` <= 0 means ``negatives_when_unset``
    negative names (85 here, Objects365's value; :class:`CocoGrounding` sets 0).
    """

    negatives_when_unset = 85

    def _set_caption_options(self, separation_tokens: str, disable_shuffle: bool, add_detection_prompt: bool,
                             random_sample_negative: int, control_probabilities: Sequence[float],
                             max_num_labels: int) -> None:
        self.separation_tokens = separation_tokens
        self.disable_shuffle = bool(disable_shuffle)
        self.add_detection_prompt = bool(add_detection_prompt)
        value = int(random_sample_negative)
        self.random_sample_negative = value if value > 0 else self.negatives_when_unset
        self.control_probabilities = tuple(control_probabilities)
        self.max_num_labels = int(max_num_labels)

    @staticmethod
    def _add_caption(target: BoxList, caption: str, tokens_positive: Sequence[Sequence[Sequence[int]]]) -> BoxList:
        target.add_field("caption", caption)
        target.add_field("tokens_positive", [[list(s) for s in spans] for spans in tokens_positive], per_box=True)
        return target

    def _caption_with_negatives(self, target: BoxList, control_probabilities: Sequence[float]) -> BoxList:
        """Positive class names plus sampled negative ones; boxes of positive classes that overflow the token
        budget are dropped first (so the returned target may be a subset of ``target``)."""
        labels = target.get_field("labels").tolist()
        keep, positive_length = check_for_positive_overflow(labels, self.ind_to_class, self.tokenizer, TOKEN_BUDGET)
        if len(keep) != len(labels):
            target = target[torch.as_tensor(keep, dtype=torch.int64)]
            labels = [labels[i] for i in keep]
        caption, tokens_positive, _ = convert_od_to_grounding_with_negatives(
            labels,
            self.ind_to_class,
            self.tokenizer,
            random_sample_negative=self.random_sample_negative,
            control_probabilities=control_probabilities,
            separation_tokens=self.separation_tokens,
            max_seq_length=TOKEN_BUDGET,
            positive_caption_length=positive_length,
            disable_shuffle=self.disable_shuffle,
            add_detection_prompt=self.add_detection_prompt,
            max_num_labels=self.max_num_labels,
        )
        return self._add_caption(target, caption, tokens_positive)


class CocoGrounding(ClassNameCaptions, COCODataset):
    """Detection JSON -> grounding samples: caption of class names, spans, positive map.

    Caption modes (upstream-facts.md 6.2):

    * default: all class names (cleaned) joined by ``separation_tokens``, shuffled per sample unless
      ``disable_shuffle``, optional CAPTION_PROMPT prefix/name/suffix and "object detection : " prefix;
    * ``special_safeguard_for_coco_grounding`` (LVIS fine-tuning): drop boxes of positive classes that do not
      fit the token budget, then positives + up to ``random_sample_negative`` negatives, always "full"
      negatives (control probabilities (0, 0, 1, 0)).

    Targets carry ``labels`` (contiguous), ``caption`` (str), ``tokens_positive`` (per box list of spans),
    ``positive_map`` (float[N, L], rows normalised; the collator binarises), ``orig_size``. An image whose only
    boxes are crowd boxes is a sample with N = 0 (as upstream; see :class:`COCODataset`).

    Labels are numbered 1..K in the annotation file's category order. With ``override_category`` the numbers
    stay those of the file's order and the override only renames (upstream's CocoGrounding; the test-time
    :class:`COCODataset` numbers in the override's order instead, as upstream's COCODataset does).

    Args:
        ann_file, root, remove_images_without_annotations, transforms, override_category, few_shot,
            shuffle_seed, is_train: see :class:`COCODataset`.
        tokenizer: fast tokenizer (or a name/folder for ``build_tokenizer``).
        max_query_len: ``MODEL.LANGUAGE_BACKBONE.MAX_QUERY_LEN``.
        separation_tokens: ``DATASETS.SEPARATION_TOKENS``.
        disable_shuffle: ``DATASETS.DISABLE_SHUFFLE``.
        add_detection_prompt: ``DATASETS.ADD_DET_PROMPT``.
        caption_prompt: ``DATASETS.CAPTION_PROMPT`` (when ``USE_CAPTION_PROMPT``), else None.
        special_safeguard_for_coco_grounding: ``DATASETS.SPECIAL_SAFEGUARD_FOR_COCO_GROUNDING``.
        random_sample_negative: ``DATASETS.RANDOM_SAMPLE_NEG``; 0 or below: no negative names at all (as
            upstream, see ``negatives_when_unset``).
        control_probabilities: used only by subclasses that sample negatives with control (Objects365).
        max_num_labels: if > 0, caps positives + negatives in one caption (upstream passes
            ``TEST.MDETR_STYLE_AGGREGATE_CLASS_NUM``).
    """

    def __init__(
        self,
        ann_file: str,
        root: str,
        remove_images_without_annotations: bool = True,
        transforms: Any = None,
        tokenizer: Any = None,
        max_query_len: int = DEFAULT_MAX_QUERY_LEN,
        separation_tokens: str = ". ",
        disable_shuffle: bool = False,
        add_detection_prompt: bool = False,
        caption_prompt: Sequence[dict[str, str]] | None = None,
        special_safeguard_for_coco_grounding: bool = False,
        random_sample_negative: int = -1,
        control_probabilities: Sequence[float] = (),
        max_num_labels: int = -1,
        is_train: bool = True,
        **kwargs: Any,
    ):
        super().__init__(
            ann_file, root, remove_images_without_annotations, transforms, is_train=is_train, **kwargs
        )
        self.tokenizer = resolve_tokenizer(tokenizer)
        self.max_query_len = int(max_query_len)
        self._set_caption_options(separation_tokens, disable_shuffle, add_detection_prompt, random_sample_negative,
                                  control_probabilities, max_num_labels)
        self.caption_prompt = list(caption_prompt) if caption_prompt else None
        self.special_safeguard = bool(special_safeguard_for_coco_grounding)
        if self.caption_prompt is not None and not self.disable_shuffle:
            raise ValueError(
                f"{self.ann_file}: DATASETS.CAPTION_PROMPT needs DATASETS.DISABLE_SHUFFLE True (the prompt is "
                "aligned with the category order)"
            )
        self.ind_to_class = self.categories()

    # Upstream's CocoGrounding gets DATASETS.RANDOM_SAMPLE_NEG only when it is > 0 (data/build.py); otherwise
    # its default -1 reaches the negative sampler, whose "full" count -1 means: sample no negative class.
    negatives_when_unset = 0

    def _contiguous_mapping(self) -> dict[Any, int]:
        """File category id -> label 1..K, in the file's category order, also under OVERRIDE_CATEGORY.

        Upstream's CocoGrounding numbers ``coco.getCatIds()`` of the file first and only then replaces the
        categories by the override, so the override renames labels and never renumbers them; file categories
        that the override leaves out (ODinW's id-0 super-category) keep their label number but get no name.
        """
        file_ids = self.annotations.file_category_ids
        if file_ids == list(self.annotations.cats):
            return super()._contiguous_mapping()
        missing = [c for c in self.annotations.cats if c not in file_ids]
        if missing:
            raise ValueError(f"{self.ann_file}: DATASETS.OVERRIDE_CATEGORY ids {missing} are not categories of the "
                             f"file (its ids: {file_ids[:20]}{'...' if len(file_ids) > 20 else ''})")
        return {cat_id: i + 1 for i, cat_id in enumerate(file_ids)}

    def categories(self) -> dict[int, str]:
        """Label -> name, for the categories that have a name (the override's, when given), sorted by label."""
        mapping = self.json_category_id_to_contiguous_id
        return dict(sorted((mapping[cat_id], cat["name"]) for cat_id, cat in self.annotations.cats.items()))

    def _uses_negatives(self) -> bool:
        return self.special_safeguard

    def _negative_control(self) -> tuple[float, ...]:
        # LVIS fine-tuning: always "full" negatives.
        return (0.0, 0.0, 1.0, 0.0)

    def _make_caption(self, target: BoxList) -> BoxList:
        if self._uses_negatives():
            return self._caption_with_negatives(target, self._negative_control())
        caption, tokens_positive, _ = convert_od_to_grounding_simple(
            target.get_field("labels").tolist(),
            self.ind_to_class,
            disable_shuffle=self.disable_shuffle,
            add_detection_prompt=self.add_detection_prompt,
            separation_tokens=self.separation_tokens,
            caption_prompt=self.caption_prompt,
        )
        return self._add_caption(target, caption, tokens_positive)

    def __getitem__(self, idx: int) -> tuple[Any, BoxList, int]:
        image, target = self._load(idx)
        target = self._make_caption(target)
        if self._transforms is not None:
            image, target = self._transforms(image, target)
        target = add_positive_map(target, self.tokenizer, self.max_query_len, self._where(idx))
        return image, target, idx
