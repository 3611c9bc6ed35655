"""Environment report: ``python -m maskrcnn_benchmark.utils.collect_env``.

Prints the versions that matter for building and running the toolkit (Python, torch, torchvision, CUDA, cuDNN,
gcc, nvcc, GPUs) and, for every compiled op, whether ``maskrcnn_benchmark._C`` provides it on the CPU and on
CUDA, or why not.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
from typing import Any

import torch

__all__ = ["collect_env_info", "main"]


def _command_version(command: list[str]) -> str | None:
    """First non-empty output line mentioning a version, or None when the tool is missing."""
    if shutil.which(command[0]) is None and not os.path.isfile(command[0]):
        return None
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = [line.strip() for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    for line in reversed(lines):
        if "release" in line.lower() or "version" in line.lower():
            return line
    return lines[0] if lines else None


def _nvcc_path() -> str | None:
    candidates = []
    cuda_home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    if cuda_home:
        candidates.append(os.path.join(cuda_home, "bin", "nvcc"))
    found = shutil.which("nvcc")
    if found:
        candidates.append(found)
    for path in candidates:
        if os.path.isfile(path):
            return path
    return None


def _torchvision_version() -> str:
    try:
        import torchvision
    except ImportError as error:
        return f"not importable ({error})"
    return torchvision.__version__


def _gpus() -> list[str]:
    if not torch.cuda.is_available():
        return []
    names = []
    for index in range(torch.cuda.device_count()):
        major, minor = torch.cuda.get_device_capability(index)
        names.append(f"{index}: {torch.cuda.get_device_name(index)} (sm_{major}{minor})")
    return names


def collect_env_info() -> dict[str, Any]:
    """Returns the report as a dict (see the module docstring)."""
    from maskrcnn_benchmark.layers import _ext

    nvcc = _nvcc_path()
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    status = _ext.extension_status()
    kernels = {}
    for op, devices in status["kernels"].items():
        kernels[op] = {}
        for device, built in devices.items():
            if built:
                kernels[op][device] = "compiled"
            elif not status["available"]:
                kernels[op][device] = f"pure torch (no _C: {status['error']})"
            else:
                kernels[op][device] = "pure torch (_C built without CUDA)"
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "torchvision": _torchvision_version(),
        "cudnn": cudnn,
        "cuda_available": torch.cuda.is_available(),
        "gpus": _gpus(),
        "gcc": _command_version(["gcc", "--version"]),
        "nvcc": _command_version([nvcc, "--version"]) if nvcc else None,
        "nvcc_path": nvcc,
        "CUDA_HOME": os.environ.get("CUDA_HOME"),
        "TORCH_CUDA_ARCH_LIST": os.environ.get("TORCH_CUDA_ARCH_LIST"),
        "extension": {
            "available": status["available"],
            "file": status["file"],
            "error": status["error"],
            "build_info": status["build_info"],
        },
        "kernels": kernels,
    }


def _format(info: dict[str, Any]) -> str:
    rows: list[tuple[str, Any]] = [
        ("Python", info["python"]),
        ("Platform", info["platform"]),
        ("PyTorch", f"{info['torch']} (CUDA {info['torch_cuda']})"),
        ("torchvision", info["torchvision"]),
        ("cuDNN", info["cudnn"]),
        ("CUDA available", info["cuda_available"]),
        ("GPUs", "; ".join(info["gpus"]) or "none"),
        ("gcc", info["gcc"] or "not found"),
        ("nvcc", f"{info['nvcc']} [{info['nvcc_path']}]" if info["nvcc"] else "not found"),
        ("CUDA_HOME", info["CUDA_HOME"]),
        ("TORCH_CUDA_ARCH_LIST", info["TORCH_CUDA_ARCH_LIST"]),
    ]
    ext = info["extension"]
    if ext["available"]:
        build = ext["build_info"]
        rows.append(("maskrcnn_benchmark._C", ext["file"]))
        rows.append(("  built with", f"torch {build.get('torch_version')}, {build.get('compiler')}, CUDA "
                                     f"{build.get('cuda_version') or 'no'}, arch {build.get('cuda_arch_list')}"))
    else:
        rows.append(("maskrcnn_benchmark._C", f"NOT AVAILABLE: {ext['error']}"))
    width = max(len(name) for name, _ in rows) + 2
    lines = [f"{name:<{width}}{value}" for name, value in rows]
    lines.append("Kernels (op: cpu | cuda)")
    for op, devices in info["kernels"].items():
        lines.append(f"  {op:<26}{devices['cpu']} | {devices['cuda']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    info = collect_env_info()
    sys.stdout.write((json.dumps(info, indent=2, default=str) if args.json else _format(info)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
