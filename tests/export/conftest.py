"""One tiny-model ONNX export shared by the export tests (the export itself takes about a minute)."""

import json
import os
import subprocess
import sys

import pytest
import torch
from _onnx_helpers import CANVAS, REPO, TINY, spread_scores, tiny_opts


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory, bpe_tokenizer_dir):
    """``(onnx path, weight path, cfg, the tool's --check JSON)``: tools/export_onnx.py on a random tiny model
    (scores spread by :func:`spread_scores`)."""
    pytest.importorskip("onnxruntime", reason="ONNX export tests need onnxruntime (pip install -e '.[test]')")
    pytest.importorskip("onnxscript", reason="ONNX export needs onnxscript (pip install -e '.[test]')")
    if not TINY.is_file():
        pytest.skip(f"{TINY} is absent")
    from maskrcnn_benchmark.config import load_config
    from maskrcnn_benchmark.modeling.detector import build_detection_model
    from maskrcnn_benchmark.utils.atomic_io import atomic_torch_save

    root = tmp_path_factory.mktemp("onnx")
    cfg = load_config(str(TINY), tiny_opts(bpe_tokenizer_dir))
    torch.manual_seed(0)
    weight = str(root / "tiny.pth")
    atomic_torch_save({"model": spread_scores(build_detection_model(cfg)).state_dict()}, weight)
    path = root / "tiny.onnx"
    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / "export_onnx.py"), "--config-file", str(TINY), "--weight", weight,
         "--output", str(path), "--image-size", str(CANVAS[0]), str(CANVAS[1]), "--max-batch", "8", "--check",
         *tiny_opts(bpe_tokenizer_dir)],
        cwd=REPO, capture_output=True, text=True, timeout=1800,
        env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "2"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    check, _ = json.JSONDecoder().raw_decode(result.stdout[result.stdout.index("{"):])
    return str(path), weight, cfg, check
