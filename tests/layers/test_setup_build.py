"""setup.py decisions about the compiled extension (no compiling here: only the checks that run first)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SETUP = REPO_ROOT / "setup.py"


def run_setup(env_overrides, *args):
    if not SETUP.is_file():
        pytest.skip(f"{SETUP} is absent (tests run from an installed copy)")
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_CUDA", "MRCNN_SKIP_EXT", "MASKRCNN_NO_EXT")}
    env.update(env_overrides)
    return subprocess.run([sys.executable, str(SETUP), *args], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def test_force_cuda_without_nvcc_is_a_clear_error(tmp_path):
    result = run_setup({"FORCE_CUDA": "1", "CUDA_HOME": str(tmp_path / "no-cuda")}, "--name")
    assert result.returncode != 0
    assert "FORCE_CUDA=1 but the CUDA kernels cannot be built" in result.stderr
    assert f"nvcc not found at {tmp_path / 'no-cuda' / 'bin' / 'nvcc'}" in result.stderr


def test_skip_extension_switch(tmp_path):
    result = run_setup({"MRCNN_SKIP_EXT": "1", "FORCE_CUDA": "1", "CUDA_HOME": str(tmp_path)}, "--name")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "maskrcnn_benchmark"
    assert "MRCNN_SKIP_EXT=1, not building maskrcnn_benchmark._C" in result.stderr
