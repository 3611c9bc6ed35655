"""User errors are reported as whole, clean messages; paths are named; --debug gives the traceback."""

import argparse
import errno
import os

import pytest

from maskrcnn_benchmark.utils import cli_errors
from maskrcnn_benchmark.utils.cli_errors import add_debug_argument, report_user_errors, user_error_message


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch):
    monkeypatch.delenv("FIBER_DEBUG", raising=False)
    monkeypatch.setattr(cli_errors, "_debug_flag", False)


def _raise(error):
    def main():
        raise error

    return main


def test_whole_multi_line_messages_are_printed(capsys):
    message = ("weights.pth: refused to load. Convert it once:\n"
               "    python -m maskrcnn_benchmark.utils.checkpoint convert")
    assert report_user_errors(_raise(ValueError(message))) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ValueError: weights.pth: refused to load. Convert it once:\n")
    assert "    python -m maskrcnn_benchmark.utils.checkpoint convert\n(--debug shows the traceback)" in err
    assert report_user_errors(_raise(FileNotFoundError("config file x.yaml does not exist"))) == 2
    assert capsys.readouterr().err == ("error: FileNotFoundError: config file x.yaml does not exist "
                                       "(--debug shows the traceback)\n")


def test_os_errors_name_the_path(tmp_path, capsys):
    a_file = tmp_path / "out.txt"
    a_file.write_text("x")

    def make_output_folder():
        os.makedirs(a_file)

    assert report_user_errors(make_output_folder) == 2
    assert f"error: FileExistsError: {a_file} is a file, where a folder is needed" in capsys.readouterr().err
    denied = PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "locked"))
    assert user_error_message(denied) == f"{tmp_path / 'locked'}: Permission denied"
    missing = FileNotFoundError(errno.ENOENT, "No such file or directory", "data/ann.json")
    assert user_error_message(missing) == "data/ann.json: No such file or directory"
    # An OSError that names no path is not the user's input: it keeps its traceback.
    assert user_error_message(OSError("device busy")) is None
    with pytest.raises(OSError, match="device busy"):
        report_user_errors(_raise(OSError("device busy")))


def test_key_errors_ansi_codes_and_data_loader_workers():
    assert user_error_message(KeyError("dataset 'x' is not in the catalog")) == "dataset 'x' is not in the catalog"
    ansi = ValueError("\x1b[1mdo this\x1b[0m only if you trust it")
    assert user_error_message(ansi) == "do this only if you trust it"
    # What torch's DataLoader re-raises in the main process for an error in a worker.
    from torch._utils import ExceptionWrapper

    from maskrcnn_benchmark.data.image_io import ImageReadError

    try:
        raise ImageReadError("a.json: image 3: cannot read image b.jpg: truncated")
    except ImageReadError:
        wrapper = ExceptionWrapper(where="in DataLoader worker process 0")
    with pytest.raises(ImageReadError) as info:
        wrapper.reraise()
    assert "Original Traceback" in str(info.value)
    expected = "in a data loader worker: a.json: image 3: cannot read image b.jpg: truncated"
    assert user_error_message(info.value) == expected
    assert user_error_message(RuntimeError("a bug")) is None


def test_debug_flag_and_environment_give_the_traceback(monkeypatch, capsys):
    with pytest.raises(RuntimeError):  # bugs are never hidden
        report_user_errors(_raise(RuntimeError("a bug")))
    parser = add_debug_argument(argparse.ArgumentParser())
    assert parser.parse_args([]).debug is False
    assert parser.parse_args(["--debug"]).debug is True
    with pytest.raises(ValueError, match="bad value"):
        report_user_errors(_raise(ValueError("bad value")))
    monkeypatch.setattr(cli_errors, "_debug_flag", False)
    monkeypatch.setenv("FIBER_DEBUG", "1")
    with pytest.raises(ValueError, match="bad value"):
        report_user_errors(_raise(ValueError("bad value")))
    assert capsys.readouterr().err == ""


def test_cleanup_runs_and_status_passes_through():
    calls = []
    assert report_user_errors(lambda: 3, cleanup=lambda: calls.append(1)) == 3
    assert report_user_errors(lambda: None, cleanup=lambda: calls.append(1)) == 0
    assert report_user_errors(_raise(ValueError("x")), cleanup=lambda: calls.append(1)) == 2
    assert calls == [1, 1, 1]
