"""Detection -> grounding training captions: shuffling, negatives, token budget (upstream-facts.md 6.2)."""

import random
from collections import Counter

import pytest

from maskrcnn_benchmark.data.datasets.od_to_grounding import (
    check_for_positive_overflow,
    convert_od_to_grounding_simple,
    convert_od_to_grounding_with_negatives,
    sample_num_negatives,
)

CLASSES = {1: "person", 2: "traffic_light", 3: "dog", 4: "hot dog", 5: "bow_(weapon)"}


def _span_text(caption, spans):
    return [caption[s:e] for s, e in spans]


def test_simple_caption_in_label_order_with_spans():
    caption, tokens_positive, spans = convert_od_to_grounding_simple([3, 1, 3], CLASSES, disable_shuffle=True,
                                                                     separation_tokens=". ")
    assert caption == "person. traffic light. dog. hot dog. bow "
    assert [_span_text(caption, t) for t in tokens_positive] == [["dog"], ["person"], ["dog"]]
    assert caption[slice(*spans[5])] == "bow "


def test_simple_caption_shuffles_per_sample_and_keeps_spans_right():
    rng = random.Random(0)
    captions = set()
    for _ in range(20):
        caption, tokens_positive, _ = convert_od_to_grounding_simple([2, 4], CLASSES, disable_shuffle=False,
                                                                     separation_tokens=". ", rng=rng)
        captions.add(caption)
        assert [_span_text(caption, t) for t in tokens_positive] == [["traffic light"], ["hot dog"]]
    assert len(captions) > 5


def test_simple_caption_prompt_and_detection_prefix():
    prompt = [{"prefix": "a ", "name": n.replace("_", " "), "suffix": "!"} for n in CLASSES.values()]
    caption, tokens_positive, _ = convert_od_to_grounding_simple([1], CLASSES, True, True, ". ", prompt)
    assert caption.startswith("object detection : a person!. a traffic light!")
    assert _span_text(caption, tokens_positive[0]) == ["person"]
    with pytest.raises(ValueError, match="DISABLE_SHUFFLE"):
        convert_od_to_grounding_simple([1], CLASSES, disable_shuffle=False, caption_prompt=prompt)
    with pytest.raises(ValueError, match="box label 9"):
        convert_od_to_grounding_simple([9], CLASSES)


def test_control_probabilities():
    rng = random.Random(0)
    assert {sample_num_negatives((1.0, 0, 0, 0), 10, rng) for _ in range(20)} == {1}
    assert {sample_num_negatives((0, 1.0, 0, 0), 10, rng) for _ in range(20)} == {0}
    assert {sample_num_negatives((0, 0, 1.0, 0), 10, rng) for _ in range(20)} == {10}
    random_counts = {sample_num_negatives((0, 0, 0, 0), 10, rng) for _ in range(500)}
    assert random_counts == set(range(1, 10))  # max(1, uniform 0..9), as upstream
    assert sample_num_negatives((), 7, rng) == 7


def test_p3_is_treated_as_zero_not_asserted():
    # FIBER's released pre-training CONTROL_PROB; upstream's assert p3 == 0 would fire
    rng = random.Random(1)
    counts = Counter(
        "one" if n == 1 else "none" if n == 0 else "full" if n == 85 else "random"
        for n in (sample_num_negatives((0.05, 0.05, 0.5, 0.2), 85, rng) for _ in range(4000))
    )
    assert abs(counts["full"] / 4000 - 0.5) < 0.03
    assert abs(counts["none"] / 4000 - 0.05) < 0.015
    assert abs(counts["random"] / 4000 - 0.4) < 0.03  # 1 - 0.6, p3 takes nothing
    with pytest.raises(ValueError, match="4 values"):
        sample_num_negatives((0.5, 0.5), 3, rng)


def _many_classes(n):
    return {i: f"class name {i}" for i in range(1, n + 1)}


def test_negatives_respect_budget_and_keep_all_positives(bpe_tokenizer):
    classes = _many_classes(300)
    labels = [5, 17, 17, 250]
    rng = random.Random(3)
    keep, positive_length = check_for_positive_overflow(labels, classes, bpe_tokenizer, 254, rng)
    assert keep == [0, 1, 2, 3]
    for _ in range(10):
        caption, tokens_positive, spans = convert_od_to_grounding_with_negatives(
            labels, classes, bpe_tokenizer, random_sample_negative=85, control_probabilities=(0, 0, 1, 0),
            positive_caption_length=positive_length, rng=rng)
        assert [_span_text(caption, t) for t in tokens_positive] == [
            ["class name 5"], ["class name 17"], ["class name 17"], ["class name 250"]]
        assert len(bpe_tokenizer(caption)["input_ids"]) <= 256
        negatives = set(spans) - set(labels)
        assert 0 < len(negatives) <= 85
        assert all(caption[slice(*spans[k])] == classes[k] for k in spans)


def test_no_negatives_when_controlled(bpe_tokenizer):
    classes = _many_classes(50)
    caption, _, spans = convert_od_to_grounding_with_negatives(
        [3, 4], classes, bpe_tokenizer, control_probabilities=(0, 1.0, 0, 0), rng=random.Random(0))
    assert set(spans) == {3, 4}


def test_positive_overflow_drops_whole_classes(bpe_tokenizer):
    classes = {i: f"an extremely long positive category name number {i}" for i in range(1, 41)}
    labels = list(range(1, 41)) + [7]
    keep, length = check_for_positive_overflow(labels, classes, bpe_tokenizer, 254, random.Random(0))
    kept_labels = {labels[i] for i in keep}
    assert 0 < len(kept_labels) < 40
    assert length <= 254
    # every box of a kept class is kept (label 7 appears twice)
    assert (7 in kept_labels) == (keep.count(6) + keep.count(40) == 2)
    cost = sum(len(bpe_tokenizer.tokenize(classes[k] + ". ")) for k in kept_labels)
    assert cost == length


def test_max_num_labels_caps_the_caption(bpe_tokenizer):
    classes = _many_classes(100)
    _, _, spans = convert_od_to_grounding_with_negatives(
        [1, 2, 3], classes, bpe_tokenizer, random_sample_negative=85, control_probabilities=(0, 0, 1, 0),
        max_num_labels=10, rng=random.Random(0))
    assert {1, 2, 3} <= set(spans) and len(spans) <= 10
