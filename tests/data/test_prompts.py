"""Prompt builder: captions, spans, token maps, chunk plans (upstream-facts.md 1.16, 1.18)."""

import logging

import pytest
import torch

from maskrcnn_benchmark.data.prompts import (
    PromptEntry,
    build_caption,
    build_detection_prompts,
    build_grounding_prompt,
    caption_phrase_spans,
    char_span_to_token_indices,
    clean_name,
    create_positive_map,
    describe_plans,
    locate_phrases,
    normalise_spans,
    plan_detection_prompts,
    positive_map_dict,
    prompt_plans_from_cfg,
    split_caption_into_phrases,
)


def _tokens_text(tokenizer, plan, label):
    ids = tokenizer(plan.caption)["input_ids"]
    return tokenizer.decode([ids[i] for i in plan.token_map[label]]).strip()


@pytest.mark.parametrize(
    "raw, cleaned",
    [
        ("traffic_light", "traffic light"),
        ("bow_(weapon)", "bow "),  # trailing space kept, as upstream
        ("a_(b)_c_(d)", "a "),  # greedy: from the first "(" to the last ")"
        ("x__y", "x y"),  # "_" -> " " then one pass of "  " -> " "
        ("x___y", "x  y"),  # ... a single pass only
        ("person", "person"),
    ],
)
def test_clean_name_matches_upstream_rules(raw, cleaned):
    assert clean_name(raw) == cleaned


def test_build_caption_spans_cover_only_the_names():
    entries = [PromptEntry(1, "fish", " ", ""), PromptEntry(2, "penguin", "", " , which is black and white"),
               PromptEntry(5, "stingray", "a ", " which is flat")]
    caption, spans = build_caption(entries, ". ")
    assert caption == " fish. penguin , which is black and white. a stingray which is flat"
    assert {label: caption[s:e] for label, (s, e) in spans.items()} == {1: "fish", 2: "penguin", 5: "stingray"}


def test_detection_plan_for_hand_written_classes(bpe_tokenizer):
    categories = {1: "person", 2: "traffic_light", 3: "hot dog"}
    (plan,) = plan_detection_prompts(categories, bpe_tokenizer, separation_tokens=". ")
    assert plan.caption == "person. traffic light. hot dog"
    assert plan.labels == [1, 2, 3]
    assert plan.char_spans == {1: [(0, 6)], 2: [(8, 21)], 3: [(23, 30)]}
    for label, text in ((1, "person"), (2, "traffic light"), (3, "hot dog")):
        assert _tokens_text(bpe_tokenizer, plan, label) == text
    # token 0 is <s>; the first name starts at token 1
    assert plan.token_map[1] == [1]
    assert plan.num_tokens == len(bpe_tokenizer(plan.caption)["input_ids"])
    dense = plan.dense_positive_map(256)
    assert dense.shape == (3, 256)
    assert dense.sum(1).tolist() == [len(plan.token_map[k]) for k in (1, 2, 3)]


def test_caption_prompt_span_excludes_prefix_and_suffix(bpe_tokenizer):
    categories = {1: "fish", 2: "penguin"}
    prompt = [{"prefix": " ", "name": "fish", "suffix": ""},
              {"prefix": "", "name": "penguin", "suffix": " , which is black and white"}]
    (plan,) = plan_detection_prompts(categories, bpe_tokenizer, ". ", caption_prompt=prompt)
    assert plan.caption == " fish. penguin , which is black and white"
    assert _tokens_text(bpe_tokenizer, plan, 1) == "fish"
    assert _tokens_text(bpe_tokenizer, plan, 2) == "penguin"
    with pytest.raises(ValueError, match="CAPTION_PROMPT has 1 entries"):
        plan_detection_prompts(categories, bpe_tokenizer, ". ", caption_prompt=prompt[:1])


def test_char_to_token_fallback_moves_off_spaces(bpe_tokenizer):
    # "bow " (cleaned "bow_(weapon)") ends on a space, which has no token: the end falls back to end-2.
    caption = "bow . bow-tie"
    enc = bpe_tokenizer(caption)
    assert enc.char_to_token(3) is None
    indices = char_span_to_token_indices(enc, 0, 4)
    assert bpe_tokenizer.decode([enc["input_ids"][i] for i in indices]).strip() == "bow"
    # a span starting on a space moves forward
    assert char_span_to_token_indices(enc, 5, 9) == char_span_to_token_indices(enc, 6, 9)
    # a span entirely on spaces / out of range maps to nothing
    assert char_span_to_token_indices(enc, 100, 104) == []


def test_positive_map_rows_are_normalised(bpe_tokenizer):
    caption = "a red square and a blue circle"
    enc = bpe_tokenizer(caption, max_length=256, truncation=True)
    pm = create_positive_map(enc, [[[0, 12]], [[17, 30]], [[2, 5], [19, 23]]])
    assert pm.shape == (3, 256)
    torch.testing.assert_close(pm.sum(1), torch.ones(3), atol=1e-5, rtol=0)
    assert (pm[0] > 0).nonzero().flatten().tolist() == [1, 2, 3]  # "a", "red", "square"
    assert (pm[2] > 0).sum().item() == 2  # two separate spans
    binary = create_positive_map(enc, [[[0, 12]]], normalize=False)
    assert set(binary.unique().tolist()) == {0.0, 1.0}
    assert positive_map_dict(enc, {7: [[2, 5]]}) == {7: [2]}


def test_lvis_size_list_is_chunked_with_every_class_once(bpe_tokenizer):
    names = {i: f"category_{i}_(thing {i % 13})" if i % 5 else f"long object name number {i}" for i in range(1, 1204)}
    plans = plan_detection_prompts(names, bpe_tokenizer, ". ", chunk_size=40)
    assert len(plans) == 31
    assert [len(p.labels) for p in plans] == [40] * 30 + [3]
    seen = [label for p in plans for label in p.labels]
    assert sorted(seen) == list(range(1, 1204)) and len(seen) == len(set(seen))
    assert all(p.num_tokens <= 256 for p in plans)
    assert all(not p.labels_without_tokens for p in plans)
    # labels stay global: chunk 1 starts at label 41
    assert plans[1].labels[0] == 41 and 41 in plans[1].token_map


def test_overlong_list_without_chunking_is_split_not_truncated(bpe_tokenizer, caplog):
    names = {i: f"object number {i}" for i in range(1, 201)}
    with caplog.at_level(logging.WARNING, logger="maskrcnn_benchmark.data.prompts"):
        plans = plan_detection_prompts(names, bpe_tokenizer, ". ", chunk_size=-1, max_query_len=256)
    assert len(plans) > 1
    assert "instead of truncating" in caplog.text
    assert sorted(label for p in plans for label in p.labels) == list(range(1, 201))
    assert all(p.num_tokens <= 256 for p in plans)
    # an oversized chunk size is split further too
    plans = plan_detection_prompts(names, bpe_tokenizer, ". ", chunk_size=150, max_query_len=256)
    assert all(p.num_tokens <= 256 for p in plans)
    assert sorted(label for p in plans for label in p.labels) == list(range(1, 201))


def test_a_name_too_long_for_one_prompt_is_an_error_naming_it(bpe_tokenizer):
    names = {1: "cat", 2: "very " * 300 + "long name"}
    with pytest.raises(ValueError, match=r"class 2 .*MAX_QUERY_LEN=256"):
        plan_detection_prompts(names, bpe_tokenizer, ". ")


def test_blank_name_is_reported(bpe_tokenizer, caplog):
    with caplog.at_level(logging.WARNING, logger="maskrcnn_benchmark.data.prompts"):
        (plan,) = plan_detection_prompts({1: "cat", 2: "(nothing)", 3: "dog"}, bpe_tokenizer, ". ")
    assert plan.labels_without_tokens == [2]
    assert 2 not in plan.token_map
    assert "class 2 ('(nothing)') has a blank name" in caplog.text


def test_plans_from_cfg_read_the_config(bpe_tokenizer):
    from maskrcnn_benchmark.config import cfg as base

    cfg = base.clone()
    cfg.DATASETS.SEPARATION_TOKENS = ". "
    cfg.TEST.CHUNKED_EVALUATION = 2
    cfg.DATASETS.USE_CAPTION_PROMPT = True
    cfg.DATASETS.CAPTION_PROMPT = [{"prefix": "", "name": n, "suffix": " x"} for n in ("a1", "b2", "c3")]
    plans = prompt_plans_from_cfg(cfg, {1: "a1", 2: "b2", 3: "c3"}, bpe_tokenizer)
    assert [p.caption for p in plans] == ["a1 x. b2 x", "c3 x"]
    assert "2 prompt(s) for 3 classes" in describe_plans(plans)


# --- prompts of the Python API (Predictor, tools/demo.py) ---------------------------------------------

CAPTION = "a red square. the blue circle, and a green triangle"


def test_default_phrase_split_strips_and_drops_empty_pieces():
    assert [CAPTION[a:b] for a, b in split_caption_into_phrases(CAPTION)] == [
        "a red square", "the blue circle", "and a green triangle"]
    assert split_caption_into_phrases(" ;x , ,. ") == [(2, 3)]
    assert split_caption_into_phrases("...") == []


def test_spans_and_phrases_give_the_same_character_spans():
    assert normalise_spans(CAPTION, [(2, 12), [(18, 29)]]) == [[(2, 12)], [(18, 29)]]
    assert locate_phrases(CAPTION, ["red square", "blue circle"]) == [[(2, 12)], [(18, 29)]]
    # A repeated phrase is searched after the previous one first, then anywhere.
    assert locate_phrases("a cat and a cat", ["cat", "cat", "a cat"]) == [[(2, 5)], [(12, 15)], [(0, 5)]]


@pytest.mark.parametrize("kwargs, message", [
    (dict(spans=[(5, 5)]), "phrase 0: span \\(5, 5\\) is empty"),
    (dict(spans=[(0, 2), [(3, 4, 5)]]), "phrase 1: span \\(3, 4, 5\\) is not a \\(start, end\\) pair"),
    (dict(spans=[(0, 999)]), "outside the caption \\(length 51\\)"),
    (dict(phrases=["purple"]), "'purple' does not occur"),
    (dict(phrases=[" "]), "empty phrase"),
    (dict(spans=[(0, 2)], phrases=["a"]), "either spans or phrases"),
])
def test_bad_spans_and_phrases_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        caption_phrase_spans(CAPTION, **kwargs)


def test_empty_caption_or_no_phrase():
    with pytest.raises(ValueError, match="caption is empty"):
        caption_phrase_spans("  ")
    with pytest.raises(ValueError, match="no phrase found"):
        caption_phrase_spans(". ;")


def test_grounding_prompt_maps_each_phrase_to_its_tokens(bpe_tokenizer):
    prompt = build_grounding_prompt(CAPTION, bpe_tokenizer, 64)
    assert prompt.caption == CAPTION
    assert prompt.names == {1: "a red square", 2: "the blue circle", 3: "and a green triangle"}
    ids = bpe_tokenizer(CAPTION)["input_ids"]
    decoded = {label: bpe_tokenizer.decode([ids[i] for i in tokens]).strip()
               for label, tokens in prompt.token_map.items()}
    assert decoded == prompt.names
    two_spans = build_grounding_prompt(CAPTION, bpe_tokenizer, 64, spans=[[(2, 5), (6, 12)]])
    assert two_spans.names == {1: "red square"} and two_spans.token_map[1] == prompt.token_map[1][1:]
    with pytest.raises(ValueError, match="more than MODEL.LANGUAGE_BACKBONE.MAX_QUERY_LEN=8"):
        build_grounding_prompt(CAPTION, bpe_tokenizer, 8)


def test_detection_prompts_keep_global_labels_and_names(bpe_tokenizer):
    prompts = build_detection_prompts({3: "traffic_light", 7: "person"}, bpe_tokenizer, chunk_size=1)
    assert [p.names for p in prompts] == [{3: "traffic_light"}, {7: "person"}]
    assert [p.caption for p in prompts] == ["traffic light", "person"]  # cleaned in the caption only
    with pytest.raises(ValueError, match="class list is empty"):
        build_detection_prompts([], bpe_tokenizer)
    with pytest.raises(ValueError, match="class 2: empty class name"):
        build_detection_prompts(["a", " "], bpe_tokenizer)


def test_phrases_past_the_truncation_point_map_to_no_token(bpe_tokenizer):
    from maskrcnn_benchmark.data.prompts import count_long_captions, create_positive_map, truncated_at

    caption = "a red square next to a blue circle and a green triangle"
    encoding = bpe_tokenizer(caption, max_length=10, truncation=True, add_special_tokens=True)
    # <s> a red square next to a blue circle </s>: the text stops after "circle"
    assert truncated_at(encoding) == caption.index("circle") + len("circle")
    assert truncated_at(bpe_tokenizer(caption, max_length=64, truncation=True)) is None
    # red square, blue circle, "circle a" (reaches 2 characters past the cut), "green triangle" (all cut)
    spans = [[[2, 12]], [[23, 34]], [[28, 36]], [[41, 55]]]
    rows = create_positive_map(encoding, spans, max_len=10, normalize=False)
    assert rows[0].nonzero().flatten().tolist() == [2, 3]
    assert rows[1].nonzero().flatten().tolist() == [7, 8]
    # upstream's end-3 fall-back would map "circle a" to its kept part "circle" (token 8): not any more
    assert rows[2].sum() == 0
    assert rows[3].sum() == 0
    calls = []

    def counting_tokenizer(texts, **kwargs):
        calls.extend(texts)
        return bpe_tokenizer(texts, **kwargs)

    captions = ["red cube", caption, "blue", caption + " " + caption]
    assert count_long_captions(counting_tokenizer, captions, 10) == (2, 1, 14)
    assert calls == [caption, caption + " " + caption]  # 8 bytes + 2 special tokens cannot exceed 10: skipped
