"""tools/train_net.py end to end: SIGKILL + relaunch == uninterrupted; torchrun (gloo) == one process."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
import yaml
from _tool_helpers import FAST_TRAIN_OPTS, TINY, TOOLS, run_tool, tool_env, write_fixed_size_coco

pytestmark = pytest.mark.skipif(not TINY.is_file(), reason="configs/tiny/fiber_tiny.yaml is absent")


def _train_args(out, tokenizer, max_iter, period, batch=2, extra=()):
    return [TOOLS / "train_net.py", "--config-file", TINY, "--skip-test",
            "MODEL.LANGUAGE_BACKBONE.TOKENIZER_TYPE", tokenizer, "OUTPUT_DIR", out,
            "DATASETS.TRAIN", '("coco_grounding_train",)', "DATASETS.TEST", "()",
            "SOLVER.MAX_ITER", str(max_iter), "SOLVER.CHECKPOINT_PERIOD", str(period),
            "SOLVER.IMS_PER_BATCH", str(batch), *FAST_TRAIN_OPTS, *extra]


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


@pytest.mark.slow
def test_sigkill_and_relaunch_gives_the_uninterrupted_weights(tmp_path, bpe_tokenizer_dir):
    data = write_fixed_size_coco(tmp_path / "data", num_images=6)
    reference = tmp_path / "reference"
    done = run_tool(_train_args(reference, bpe_tokenizer_dir, 8, 2), tmp_path, data)
    assert done.returncode == 0, done.stderr[-3000:]

    resumed = tmp_path / "resumed"
    args = [sys.executable] + [str(a) for a in _train_args(resumed, bpe_tokenizer_dir, 8, 2)]
    proc = subprocess.Popen(args, cwd=tmp_path, env=tool_env(data), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    pointer_file = resumed / "last_checkpoint"
    # Wait for the pointer, not the file: a kill between the two renames is legal (the pointer then still names
    # the previous checkpoint, here none, and the relaunch starts over) but would not test resuming.
    while not (pointer_file.is_file() and pointer_file.read_text().strip().endswith("model_0000002.pth")):
        assert proc.poll() is None, "the first run ended before its first checkpoint"
        assert time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (resumed / "model_final.pth").exists(), "the kill came too late to test resuming"
    # Whatever the kill interrupted, every checkpoint on disk is complete and last_checkpoint names one.
    pointer = (resumed / "last_checkpoint").read_text().strip()
    for path in resumed.glob("*.pth"):
        torch.load(path, map_location="cpu", weights_only=True)
    assert (resumed / os.path.basename(pointer)).is_file()

    again = run_tool(_train_args(resumed, bpe_tokenizer_dir, 8, 2), tmp_path, data)
    assert again.returncode == 0, again.stderr[-3000:]
    log = (resumed / "train_net_log.txt").read_text()
    assert "resuming" in log and "start training at iteration 0 " in log
    assert "start training at iteration 2 " in log or "start training at iteration 4 " in log
    ref, res = _weights(reference / "model_final.pth"), _weights(resumed / "model_final.pth")
    assert ref.keys() == res.keys()
    for key in ref:
        torch.testing.assert_close(res[key], ref[key], rtol=1e-6, atol=1e-7, msg=f"{key} differs after resume")


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _first_loss(out):
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return rows[0]


@pytest.mark.slow
def test_two_process_torchrun_matches_one_process(tmp_path, bpe_tokenizer_dir):
    data = write_fixed_size_coco(tmp_path / "data", num_images=8)
    single = tmp_path / "single"
    one = run_tool(_train_args(single, bpe_tokenizer_dir, 1, 100, batch=4), tmp_path, data)
    assert one.returncode == 0, one.stderr[-3000:]

    double = tmp_path / "double"
    args = ["-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
            *_train_args(double, bpe_tokenizer_dir, 1, 100, batch=4)]
    two = run_tool(args, tmp_path, data)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "world size 2" in (double / "train_net_log.txt").read_text()
    a, b = _first_loss(single), _first_loss(double)
    for key in ("train/loss", "train/loss_reg", "train/loss_centerness", "train/loss_dot_product_token"):
        assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-5), key


def _one_line_error(result):
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    return lines[0]


@pytest.mark.slow
def test_diverging_run_stops_and_saves_nothing_non_finite(tmp_path, bpe_tokenizer_dir):
    data = write_fixed_size_coco(tmp_path / "data", num_images=6)
    out = tmp_path / "out"
    # The recipe (BASE_LR / LANG_LR 1.0, no warm-up) diverges only on some machines; 1000 always does.
    args = _train_args(out, bpe_tokenizer_dir, 6, 1, extra=["SOLVER.WARMUP_ITERS", "0", "SOLVER.BASE_LR", "1000.0",
                                                             "SOLVER.LANG_LR", "1000.0"])
    result = run_tool(args, tmp_path, data)
    assert result.returncode != 0
    message = _one_line_error(result)
    assert re.search(r"non-finite (gradient|loss) at iteration \d", message), message
    assert not (out / "model_final.pth").exists()
    saved = sorted(out.glob("*.pth"))
    for path in saved:
        weights = _weights(path)
        assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point()), path
    assert saved and (out / (out / "last_checkpoint").read_text().strip()).is_file()


@pytest.mark.slow
def test_changed_lang_lr_names_the_key_and_resumes_with_a_fresh_optimizer(tmp_path, bpe_tokenizer_dir):
    data = write_fixed_size_coco(tmp_path / "data", num_images=6)
    out = tmp_path / "out"
    first = run_tool(_train_args(out, bpe_tokenizer_dir, 2, 2), tmp_path, data)
    assert first.returncode == 0, first.stderr[-3000:]
    changed = ["SOLVER.LANG_LR", "0.001"]  # = BASE_LR: the language groups merge with the others
    refused = run_tool(_train_args(out, bpe_tokenizer_dir, 4, 2, extra=changed), tmp_path, data)
    assert refused.returncode != 0
    message = _one_line_error(refused)
    assert "SOLVER.LANG_LR (0.0001 -> 0.001)" in message and "--skip_optimizer_resume" in message, message
    args = _train_args(out, bpe_tokenizer_dir, 4, 2, extra=changed)
    args.insert(args.index("--skip-test") + 1, "--skip_optimizer_resume")
    fresh = run_tool(args, tmp_path, data)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert "start training at iteration 2 of 4" in (out / "train_net_log.txt").read_text()
    final = torch.load(out / "model_final.pth", map_location="cpu", weights_only=True)
    assert final["iteration"] == 4 and yaml.safe_load(final["config"])["SOLVER"]["LANG_LR"] == 0.001
