"""pyexec.runner_code: the runner compiled once by the jail's interpreter and read by
each jail from a sealed, read-only memfd."""

from __future__ import annotations
import __future__

import fcntl
import marshal
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pyexec.command import PYTHON_FLAGS
from pyexec.runner_code import (
    BOOTSTRAP_TEMPLATE,
    FUTURE_LINE,
    RUNNER_SOURCE,
    SEALS,
    RunnerLaunch,
    compile_runner,
    runner_launch,
    sealed_readonly_fd,
)
from pyexec.settings import load_settings

SANDBOX_PYTHON = load_settings({}).sandbox_python
needs_sandbox_python = pytest.mark.skipif(
    not Path(SANDBOX_PYTHON).exists(), reason="no sandbox interpreter here"
)


def test_the_runner_is_the_file_s_own_text_and_fits_in_one_argument() -> None:
    runner_py = Path(__file__).resolve().parents[2] / "pyexec" / "runner.py"
    assert runner_py.read_text(encoding="utf-8") == RUNNER_SOURCE
    # The fallback sends it as -c source: an argv string cannot hold NUL, and Linux
    # caps one at 32 pages (MAX_ARG_STRLEN).
    assert "\x00" not in RUNNER_SOURCE
    assert len(RUNNER_SOURCE.encode()) < 32 * 4096
    # The compile drops this line for the compiler flag: it must be there as written.
    assert FUTURE_LINE in RUNNER_SOURCE


def test_without_the_jail_s_interpreter_the_runner_travels_as_source() -> None:
    assert compile_runner("/nonexistent/python") is None
    assert runner_launch("/nonexistent/python") == RunnerLaunch(("-c", RUNNER_SOURCE))


def test_the_memfd_is_read_only_sealed_and_not_inherited() -> None:
    fd = sealed_readonly_fd(b"runner code")
    assert fd is not None
    try:
        assert os.pread(fd, 100, 0) == b"runner code"
        assert os.get_inheritable(fd) is False
        assert fcntl.fcntl(fd, fcntl.F_GET_SEALS) == SEALS
        with pytest.raises(OSError, match="Bad file descriptor"):
            os.write(fd, b"x")  # opened read-only
        # Reopened for writing (as a jail could through /proc), the seals still hold.
        writable = os.open(f"/proc/self/fd/{fd}", os.O_RDWR)
        try:
            with pytest.raises(PermissionError):
                os.pwrite(writable, b"forged", 0)
            with pytest.raises(PermissionError):
                os.ftruncate(writable, 0)
            with pytest.raises(PermissionError):
                fcntl.fcntl(writable, fcntl.F_ADD_SEALS, 0)  # F_SEAL_SEAL: no change
        finally:
            os.close(writable)
        assert os.pread(fd, 100, 0) == b"runner code"
    finally:
        os.close(fd)


def test_no_memfd_means_the_source_travels(monkeypatch: pytest.MonkeyPatch) -> None:
    def unsupported(name: str, flags: int = 0) -> int:
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(os, "memfd_create", unsupported)
    assert sealed_readonly_fd(b"code") is None
    runner_launch.cache_clear()
    try:
        assert runner_launch(SANDBOX_PYTHON) == RunnerLaunch(("-c", RUNNER_SOURCE))
    finally:
        runner_launch.cache_clear()


@needs_sandbox_python
def test_the_code_has_no_future_import_and_no_docstrings() -> None:
    code = compile_runner(SANDBOX_PYTHON)
    assert code is not None
    # Loaded only to be read: the test's interpreter has the jail's major version.
    loaded = marshal.loads(code) if sys.version_info[:2] == (3, 11) else None
    if loaded is None:
        pytest.skip("marshal format of another Python version")
    assert "__future__" not in loaded.co_names
    assert loaded.co_flags & __future__.annotations.compiler_flag
    assert RUNNER_SOURCE.split('"""')[1] not in loaded.co_consts  # optimize=2


@needs_sandbox_python
def test_the_compiled_runner_runs_as_the_source_would_and_closes_its_fd() -> None:
    """The bootstrap reads the code from the memfd, closes it, and runs it as __main__
    with the runner's own flags after it (here without a jail: the runner writes its
    ready line, then stops at reading its request when the control pipe closes)."""
    launch = runner_launch(SANDBOX_PYTHON)
    (code_fd,) = launch.fds
    size = len(compile_runner(SANDBOX_PYTHON) or b"")
    assert launch.args == ("-c", BOOTSTRAP_TEMPLATE.format(fd=code_fd, size=size))
    control_r, control_w = os.pipe()
    result_r, result_w = os.pipe()
    runner = subprocess.Popen(
        [
            SANDBOX_PYTHON,
            *PYTHON_FLAGS,
            *launch.args,
            "--control-fd",
            str(control_r),
            "--result-fd",
            str(result_w),
        ],
        pass_fds=(control_r, result_w, code_fd),
        stderr=subprocess.PIPE,
    )
    os.close(control_r)
    os.close(result_w)
    with os.fdopen(result_r, "rb") as result:
        ready = result.readline()
        assert ready.startswith(b"ready ")  # the runner ran its main() up to the request
        open_fds = os.listdir(f"/proc/{runner.pid}/fd")
        os.close(control_w)
        _, stderr = runner.communicate(timeout=60)
    assert str(code_fd) not in open_fds  # closed before the runner's first line
    assert str(control_r) in open_fds  # (the listing is the runner's)
    assert b"the service sent no request" in stderr
