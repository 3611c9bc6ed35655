"""python -m maskrcnn_benchmark.utils.collect_env: versions and, per op, which kernels are compiled."""

import json

import pytest
import torch

from maskrcnn_benchmark.layers import _ext
from maskrcnn_benchmark.utils import collect_env

OPS = ("nms", "ml_nms", "modulated_deform_conv", "sigmoid_focal_loss", "token_sigmoid_focal_loss")


def test_json_report_lists_versions_and_every_op(capsys):
    assert collect_env.main(["--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["torch"] == torch.__version__
    assert info["cuda_available"] == torch.cuda.is_available()
    assert set(info["kernels"]) == set(OPS)
    built = _ext.get_extension() is not None
    assert info["extension"]["available"] is built
    for devices in info["kernels"].values():
        assert set(devices) == {"cpu", "cuda"}
        assert (devices["cpu"] == "compiled") is built


def test_text_report_says_why_kernels_are_missing(monkeypatch, capsys):
    def fail():
        raise ImportError("simulated missing build")

    monkeypatch.setattr(_ext, "_load_extension", fail)
    _ext.reset_extension_cache()
    try:
        assert collect_env.main([]) == 0
    finally:
        monkeypatch.undo()
        _ext.reset_extension_cache()
    text = capsys.readouterr().out
    assert "PyTorch" in text and "torchvision" in text and "nvcc" in text and "gcc" in text
    assert "NOT AVAILABLE: ImportError: simulated missing build" in text
    for op in OPS:
        assert f"  {op}" in text
    assert "pure torch (no _C: ImportError: simulated missing build)" in text


def test_report_shows_compiled_kernels_when_built(capsys):
    if _ext.get_extension() is None:
        pytest.skip("maskrcnn_benchmark._C is not built")
    collect_env.main([])
    text = capsys.readouterr().out
    assert "nms                       compiled" in text
    assert "built with" in text
