"""Fixtures for the op tests: which implementations can run here, and skip reasons that say why not."""

import pytest
import torch

from maskrcnn_benchmark.layers import _ext

CUDA_SKIP_REASON = "no CUDA GPU visible"


def compiled_skip_reason(device_type: str = "cpu"):
    """None when the compiled kernels run on this device type, else the reason to skip."""
    if _ext.get_extension() is None:
        return (f"maskrcnn_benchmark._C is not built ({_ext.extension_status()['error']}); build it with "
                "`pip install --no-build-isolation -e .`")
    if not _ext.compiled_available(device_type):
        return f"maskrcnn_benchmark._C has no {device_type} kernels (build with FORCE_CUDA=1)"
    return None


@pytest.fixture
def require_compiled():
    reason = compiled_skip_reason("cpu")
    if reason:
        pytest.skip(reason)


@pytest.fixture
def require_compiled_cuda():
    if not torch.cuda.is_available():
        pytest.skip(CUDA_SKIP_REASON)
    reason = compiled_skip_reason("cuda")
    if reason:
        pytest.skip(reason)


@pytest.fixture(params=["compiled", "torch"])
def impl(request):
    """Every CPU implementation of an op; "compiled" skips when the extension is not built."""
    if request.param == "compiled":
        reason = compiled_skip_reason("cpu")
        if reason:
            pytest.skip(reason)
    return request.param
