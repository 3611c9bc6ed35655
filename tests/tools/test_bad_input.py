"""Tools fail on bad input with one clear line naming the culprit and a non-zero exit (no traceback wall)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "tiny" / "fiber_tiny.yaml"
TINY_V3 = REPO / "configs" / "tiny" / "fiber_tiny_v3.yaml"


def _run(args, cwd):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("FIBER_DEBUG", None)
    return subprocess.run([sys.executable] + args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _assert_one_line_error(result, *needles):
    assert result.returncode == 2, result.stderr[-2000:]
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(error_lines) == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in error_lines[0], error_lines[0]


def test_missing_config_file(tmp_path):
    result = _run([str(REPO / "tools" / "train_net.py"), "--config-file", "configs/nope.yaml"], tmp_path)
    _assert_one_line_error(result, "FileNotFoundError", "configs/nope.yaml")


def test_unknown_config_key(tmp_path):
    if not TINY.is_file():
        pytest.skip("configs/tiny/fiber_tiny.yaml is absent")
    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY.read_text() + "\nSOLVER:\n  NOT_A_KEY: 3\n")
    result = _run([str(REPO / "tools" / "train_net.py"), "--config-file", str(bad)], tmp_path)
    _assert_one_line_error(result, "NOT_A_KEY")
    result = _run([str(REPO / "tools" / "test_grounding_net.py"), "--config-file", str(TINY), "MODEL.NOPE", "1"],
                  tmp_path)
    _assert_one_line_error(result, "MODEL.NOPE")


def test_missing_weight_file(tmp_path):
    if not TINY.is_file():
        pytest.skip("configs/tiny/fiber_tiny.yaml is absent")
    result = _run([str(REPO / "tools" / "test_grounding_net.py"), "--config-file", str(TINY), "--weight",
                   str(tmp_path / "missing_model.pth"), "OUTPUT_DIR", str(tmp_path / "out")], tmp_path)
    _assert_one_line_error(result, "FileNotFoundError", "missing_model.pth")


def test_checkpoint_of_another_architecture(tmp_path):
    if not (TINY.is_file() and TINY_V3.is_file()):
        pytest.skip("tiny configs are absent")
    sys.path.insert(0, str(REPO))
    from maskrcnn_benchmark.config import load_config
    from maskrcnn_benchmark.modeling.detector import build_detection_model

    cfg = load_config(str(TINY), ["MODEL.SWINT.EMBED_DIM", "32", "MODEL.SWINT.OUT_CHANNELS", "(32, 64, 128, 256)"])
    torch.manual_seed(0)
    weight = tmp_path / "wider_tiny.pth"
    torch.save({"model": build_detection_model(cfg).state_dict()}, weight)
    result = _run([str(REPO / "tools" / "test_grounding_net.py"), "--config-file", str(TINY), "--weight", str(weight),
                   "OUTPUT_DIR", str(tmp_path / "out")], tmp_path)
    _assert_one_line_error(result, "wider_tiny.pth", "does not fit")


@pytest.mark.slow  # ~27 s of CPU time: tool subprocesses
def test_random_bytes_checkpoint_and_file_shaped_output_dir(tmp_path):
    if not TINY.is_file():
        pytest.skip("configs/tiny/fiber_tiny.yaml is absent")
    weight = tmp_path / "random.pth"
    weight.write_bytes(bytes(range(256)) * 64)
    tool = str(REPO / "tools" / "test_grounding_net.py")
    result = _run([tool, "--config-file", str(TINY), "--weight", str(weight), "OUTPUT_DIR", str(tmp_path / "out")],
                  tmp_path)
    _assert_one_line_error(result, "ValueError", "random.pth: not a readable torch checkpoint")
    # --debug: the same error with its traceback.
    result = _run([tool, "--config-file", str(TINY), "--debug", "--weight", str(weight), "OUTPUT_DIR",
                   str(tmp_path / "out")], tmp_path)
    assert result.returncode != 0 and "Traceback" in result.stderr
    assert "not a readable torch checkpoint" in result.stderr
    a_file = tmp_path / "taken"
    a_file.write_text("x")
    result = _run([str(REPO / "tools" / "train_net.py"), "--config-file", str(TINY), "OUTPUT_DIR", str(a_file)],
                  tmp_path)
    _assert_one_line_error(result, "FileExistsError", f"{a_file} is a file, where a folder is needed")


def test_module_command_lines_report_one_error(tmp_path):
    (tmp_path / "gt.json").write_bytes(b"")
    (tmp_path / "bbox.json").write_text("[]")
    result = _run(["-m", "maskrcnn_benchmark.data.evaluation", "coco", "--gt", str(tmp_path / "gt.json"),
                   "--predictions", str(tmp_path / "bbox.json")], tmp_path)
    _assert_one_line_error(result, "ValueError", "gt.json: the file is empty")
    (tmp_path / "weights.pth").write_bytes(b"\x00" * 100)
    result = _run(["-m", "maskrcnn_benchmark.utils.checkpoint", "inspect", str(tmp_path / "weights.pth")], tmp_path)
    _assert_one_line_error(result, "weights.pth: not a readable torch checkpoint")
