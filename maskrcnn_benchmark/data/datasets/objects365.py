"""Objects365 in COCO JSON form, as grounding pre-training data (upstream-facts.md 6.2 ``CocoDetectionTSV``).

Upstream reads Objects365 from TSV files; the caption recipe is what matters for training and is the same
here: boxes of positive classes that overflow the 254-token budget are dropped, then the caption holds all
positive names plus a number of sampled negative names chosen by ``DATASETS.CONTROL_PROB`` (see
``od_to_grounding.sample_num_negatives``; its 4th value is treated as 0), up to ``DATASETS.RANDOM_SAMPLE_NEG``.
The JSON is the official Objects365 (v1 or v2) COCO-format file; upstream's TSV files are read by
:class:`~.tsv.CocoDetectionTSV`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .coco_grounding import CocoGrounding

__all__ = ["Objects365Grounding"]


class Objects365Grounding(CocoGrounding):
    """Objects365 COCO JSON -> grounding samples with sampled negative classes.

    Args: as :class:`CocoGrounding`; ``control_probabilities`` is ``DATASETS.CONTROL_PROB`` (empty: always
    the full ``random_sample_negative`` negatives).
    """

    negatives_when_unset = 85  # RANDOM_SAMPLE_NEG <= 0: FIBER's pre-training value (CocoGrounding: none)

    def __init__(self, *args: Any, control_probabilities: Sequence[float] = (), **kwargs: Any):
        kwargs.setdefault("disable_shuffle", False)
        super().__init__(*args, control_probabilities=control_probabilities, **kwargs)

    def _uses_negatives(self) -> bool:
        return True

    def _negative_control(self) -> tuple[float, ...]:
        return self.control_probabilities
