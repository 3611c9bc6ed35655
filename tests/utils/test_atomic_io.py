"""The single atomic-writing module: whole new file or the old one, never a partial file or a stray temp."""

import json
import os

import numpy as np
import pytest

from maskrcnn_benchmark.utils.atomic_io import (
    atomic_write,
    atomic_write_json,
    atomic_write_text,
    remove_stale_temp_files,
)


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


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_outputs_honour_the_umask(tmp_path, umask, mode):
    import stat

    old = os.umask(umask)
    try:
        atomic_write_text(str(tmp_path / "a.txt"), "x")
        with atomic_write(str(tmp_path / "b.bin"), "wb") as handle:
            handle.write(b"x")
    finally:
        os.umask(old)
    for name in ("a.txt", "b.bin"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name


def test_stale_temp_files_of_the_given_names_only_are_removed(tmp_path):
    stale = [".model_0000004.pth.k3j4h5g6.tmp", ".model_final.pth.0a1b2c3d.tmp", ".last_checkpoint.abcd_123.tmp"]
    kept = [".bbox.json.k3j4h5g6.tmp",  # another writer's output: not a checkpoint name
            ".model_0000004.pth.short.tmp", "model_0000004.pth.k3j4h5g6.tmp",  # not our pattern
            ".model_0000004.pth.k3j4h5g6.tmp.bak", "model_0000004.pth", "last_checkpoint"]
    for name in stale + kept:
        (tmp_path / name).write_text("x")
    (tmp_path / ".dir.pth.k3j4h5g6.tmp").mkdir()  # a folder with a matching name is left alone
    removed = remove_stale_temp_files(str(tmp_path), ("*.pth", "last_checkpoint"))
    assert sorted(os.path.basename(p) for p in removed) == sorted(stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept + [".dir.pth.k3j4h5g6.tmp"])
    assert remove_stale_temp_files(str(tmp_path / "missing"), ("*",)) == []


def test_a_killed_write_leaves_a_temp_file_that_the_cleanup_pattern_matches(tmp_path):
    """The name the writer gives its temporary file is the one remove_stale_temp_files looks for."""
    path = tmp_path / "model_0000002.pth"
    with atomic_write(str(path), "wb") as handle:
        handle.write(b"x")
        (temp,) = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        os.link(temp, tmp_path / ("copy" + temp.name))  # what a SIGKILL at this point would leave behind
    os.rename(tmp_path / ("copy" + temp.name), temp)
    assert remove_stale_temp_files(str(tmp_path), ("*.pth",)) == [str(temp)]
    assert [p.name for p in tmp_path.iterdir()] == ["model_0000002.pth"]
