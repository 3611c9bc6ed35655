"""The guarded extension loader: import never fails, fallbacks warn once, impl='compiled' explains itself."""

import logging
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from maskrcnn_benchmark.layers import _ext, ml_nms, modulated_deform_conv, nms, token_sigmoid_focal_loss

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def missing_extension(monkeypatch):
    """Simulates an install without maskrcnn_benchmark._C."""

    def fail():
        raise ImportError("simulated: no module named maskrcnn_benchmark._C")

    monkeypatch.setattr(_ext, "_load_extension", fail)
    _ext.reset_extension_cache()
    yield
    monkeypatch.undo()
    _ext.reset_extension_cache()


def test_fallback_runs_and_warns_once_per_op(missing_extension, caplog):
    boxes = torch.tensor([[0.0, 0, 10, 10], [1.0, 1, 11, 11], [30.0, 30, 40, 40]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    with caplog.at_level(logging.WARNING, logger="maskrcnn_benchmark.layers._ext"):
        for _ in range(3):
            assert nms(boxes, scores, 0.5).tolist() == [0, 2]
            assert ml_nms(boxes, scores, torch.tensor([1, 2, 1]), 0.5).tolist() == [0, 1, 2]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert warnings[0].startswith("nms:") and warnings[1].startswith("ml_nms:")
    assert all("simulated" in w and "pip install" in w for w in warnings)


def test_compiled_request_without_extension_explains(missing_extension):
    x = torch.randn(1, 2, 4, 4)
    with pytest.raises(RuntimeError, match=r"impl='compiled'.*simulated.*pip install"):
        modulated_deform_conv(x, torch.zeros(1, 18, 4, 4), torch.ones(1, 9, 4, 4), torch.randn(2, 2, 3, 3),
                              padding=1, impl="compiled")
    with pytest.raises(RuntimeError, match="simulated"):
        token_sigmoid_focal_loss(torch.zeros(2, 3), torch.zeros(2, 3), 0.25, 2.0, impl="compiled")
    status = _ext.extension_status()
    assert status["available"] is False and "simulated" in status["error"]
    assert status["kernels"]["nms"] == {"cpu": False, "cuda": False}


def test_torch_impl_never_touches_the_extension(missing_extension, caplog):
    with caplog.at_level(logging.WARNING):
        nms(torch.tensor([[0.0, 0, 1, 1]]), torch.tensor([1.0]), 0.5, impl="torch")
    assert not caplog.records


def test_status_when_built(require_compiled):
    status = _ext.extension_status()
    assert status["available"] and status["error"] is None
    info = status["build_info"]
    assert info["torch_version"] == torch.__version__.split("+")[0]
    assert status["kernels"]["modulated_deform_conv"]["cpu"] is True
    assert status["kernels"]["nms"]["cuda"] is info["with_cuda"]


def test_package_imports_when_extension_is_blocked():
    code = (
        "import sys, logging; sys.modules['maskrcnn_benchmark._C'] = None\n"
        "logging.basicConfig(level=logging.WARNING)\n"
        "import torch\n"
        "from maskrcnn_benchmark.layers import nms, _ext\n"
        "keep = nms(torch.tensor([[0., 0, 9, 9], [0., 0, 9, 9]]), torch.tensor([1., 2.]), 0.5)\n"
        "assert keep.tolist() == [1], keep\n"
        "assert _ext.extension_status()['available'] is False\n"
        "print('OK')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "OK"
    assert result.stderr.count("compiled kernel unavailable") == 1


@pytest.mark.parametrize("statement", ["from maskrcnn_benchmark import _C", "import maskrcnn_benchmark._C"])
def test_extension_imports_before_torch(statement):
    # _C links against libc10.so, which the loader finds only once torch is imported: the package does that.
    if not list((REPO_ROOT / "maskrcnn_benchmark").glob("_C*.so")):
        pytest.skip("maskrcnn_benchmark._C is not built in this checkout")
    code = (f"import sys; {statement}; import maskrcnn_benchmark; "
            "print(sorted(k for k in ('torch', 'maskrcnn_benchmark._C') if k in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                            env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "['maskrcnn_benchmark._C', 'torch']"
    light = subprocess.run([sys.executable, "-c", "import sys, maskrcnn_benchmark; print('torch' in sys.modules)"],
                           cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                           env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"})
    assert light.stdout.strip() == "False"  # the package itself stays light
