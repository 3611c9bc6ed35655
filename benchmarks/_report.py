"""What every benchmark report shares: the commit and device it names, and its ending (print the JSON report and,
with ``--output``, write it there too)."""

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def git_commit() -> str:
    """HEAD of the repository, with "+dirty" when tracked files have changes; "unknown" outside git."""
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                             check=True)
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def device_name(device, threads: int | None = None) -> str:
    """The GPU's name, or the CPU with its cores and ``threads`` (default: torch's current thread count)."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    threads = threads or torch.get_num_threads()
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores, {threads} threads)"


def emit(report: dict, output: str | None = None) -> None:
    """Print ``report`` as indented JSON; also write it atomically to ``output`` when given."""
    text = json.dumps(report, indent=2)
    if output:
        from maskrcnn_benchmark.utils.atomic_io import atomic_write_text

        atomic_write_text(output, text + "\n")
    sys.stdout.write(text + "\n")
