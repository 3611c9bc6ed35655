"""The single atomic-writing module: whole new file or the old one, never a partial file or a stray temp."""

import json

import numpy as np
import pytest

from maskrcnn_benchmark.utils.atomic_io import atomic_write, atomic_write_json, atomic_write_text


def test_text_and_json_writers_create_folders_and_replace(tmp_path):
    path = tmp_path / "a" / "b" / "metrics.json"
    assert atomic_write_json(str(path), {"ap": np.float32(0.5), "n": np.int64(3), "v": np.arange(2)},
                             indent=1) == str(path)
    assert json.loads(path.read_text()) == {"ap": 0.5, "n": 3, "v": [0, 1]}
    assert path.read_text().startswith("{\n ")  # json.dump keyword arguments reach the dump
    atomic_write_text(str(path), "h\u00e9\n")
    assert path.read_bytes() == "h\u00e9\n".encode("utf-8")
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]


def test_failed_write_keeps_the_old_file_and_removes_the_temp(tmp_path):
    path = tmp_path / "out.txt"
    atomic_write_text(str(path), "old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(str(path)) as handle:
            handle.write("half of the new")
            raise RuntimeError("boom")
    with pytest.raises(TypeError, match="not JSON serialisable"):
        atomic_write_json(str(path), {"x": object()})
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_binary_mode_and_bad_mode(tmp_path):
    path = tmp_path / "blob.bin"
    with atomic_write(str(path), "wb") as handle:
        handle.write(b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    with pytest.raises(ValueError, match="mode must be"):
        with atomic_write(str(path), "a"):
            pass
    assert path.read_bytes() == b"\x00\x01"
