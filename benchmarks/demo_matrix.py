"""The README demo over a seed x threads matrix: trained AP and wall time per run, written as JSON.

Runs ``python -m maskrcnn_benchmark.demo --seed S --threads T`` (the README's first command, one process per
run, one run at a time) for every pair and records, per run: seed, threads, untrained and trained AP / AP50 /
AP75, the demo's exit status, the whole demo's wall time (process start to exit) and its training time. The
file also names the machine (CPU model, logical CPUs), Python, torch, the commit and ``--note`` (say there
whether the machine was shared). Usage::

    python benchmarks/demo_matrix.py                          # seeds 0 1 2 x threads 1 2
    python benchmarks/demo_matrix.py --seeds 0 1 2 3 4 5 --threads 1 --note "quiet machine"

The JSON goes to ``benchmarks/results/demo_matrix_<tag>.json`` (``--tag``, default ``cpu_<N>cores``) and to
stdout. Exit status 1 when a run's trained AP is below ``--min-ap`` (default 25, the demo recipe's target).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results"

sys.path.insert(0, str(REPO / "benchmarks"))

from _report import git_commit  # noqa: E402

from maskrcnn_benchmark.utils.atomic_io import atomic_write_json  # noqa: E402


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    """CPU model, logical CPUs usable by this process, OS, Python and torch versions, commit."""
    import torch

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": _cpu_model(), "cpus": cpus, "platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "commit": git_commit()}


def run_one(seed: int, threads: int, output_root: str, extra: list[str]) -> dict:
    """One demo process; returns its row (metrics from its demo_results.json, wall time, exit status)."""
    out = os.path.join(output_root, f"seed{seed}_threads{threads}")
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    command = [sys.executable, "-m", "maskrcnn_benchmark.demo", "--output-dir", out, "--seed", str(seed),
               "--threads", str(threads)] + extra
    start = time.time()
    process = subprocess.run(command, cwd=output_root, env=env, capture_output=True, text=True)
    seconds = time.time() - start
    row = {"seed": seed, "threads": threads, "exit_status": process.returncode, "seconds": round(seconds, 1)}
    results_file = os.path.join(out, "demo_results.json")
    if not os.path.isfile(results_file):
        row["error"] = (process.stderr or process.stdout)[-2000:]
        return row
    with open(results_file) as handle:
        results = json.load(handle)
    trained, untrained = results["trained"], results["untrained"]
    row.update(AP=trained["AP"], AP50=trained["AP50"], AP75=trained["AP75"], untrained_AP=untrained["AP"],
               train_seconds=results["train_seconds"], iterations=results["iterations"])
    return row


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--min-ap", type=float, default=25.0, help="exit status 1 if a trained AP is below this")
    parser.add_argument("--tag", default=None, help="result file name: demo_matrix_<tag>.json")
    parser.add_argument("--note", default="", help="conditions, e.g. 'machine shared with other jobs'")
    parser.add_argument("--output-root", default=None, help="where the demo runs write (default: a temp folder)")
    parser.add_argument("demo_args", nargs=argparse.REMAINDER, help="passed to every demo run (KEY VALUE overrides)")
    return parser


def _report(args, info: dict, rows: list[dict]) -> dict:
    aps = [row.get("AP") or 0.0 for row in rows]
    return {"benchmark": "demo_matrix", "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds"), "machine": info, "note": args.note, "demo_args": list(args.demo_args),
        "min_ap": args.min_ap, "runs": rows, "min_trained_AP": min(aps) if aps else None,
        "max_seconds": max((row["seconds"] for row in rows), default=None)}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    info = machine_info()
    tag = args.tag or f"cpu_{info['cpus']}cores"
    path = str(RESULTS / f"demo_matrix_{tag}.json")
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="demo_matrix_") as tmp:
        root = os.path.abspath(args.output_root or tmp)
        os.makedirs(root, exist_ok=True)
        for seed in args.seeds:
            for threads in args.threads:
                rows.append(run_one(seed, threads, root, list(args.demo_args)))
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
                # Written after every run, so that an interrupted matrix keeps the rows it has.
                atomic_write_json(path, _report(args, info, rows), indent=2)
    report = _report(args, info, rows)
    atomic_write_json(path, report, indent=2)
    print(json.dumps(report, indent=2))
    return 0 if all((row.get("AP") or 0.0) >= args.min_ap for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
