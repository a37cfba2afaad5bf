"""pyexec.kernelfiles: read_kernel_file gives the same text as Path.read_text, however
long, and the same errors; write_kernel_file writes as Path.write_text; a KernelFile held
open reads the file afresh each time, and fails once what it shows is gone."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pyexec.kernelfiles import KernelFile, open_kernel_file, read_kernel_file, write_kernel_file


@pytest.mark.parametrize("path", ["/proc/self/limits", "/proc/self/stat", "/proc/meminfo"])
def test_a_proc_file_reads_as_read_text_would(path: str) -> None:
    """The first fields of the first line: the rest of /proc/self/stat (CPU times,
    faults) may move between the two reads."""
    first = read_kernel_file(path)
    assert first.splitlines()[0].split()[:3] == Path(path).read_text().splitlines()[0].split()[:3]
    assert first.endswith("\n")


def test_a_file_longer_than_one_read_comes_whole(tmp_path: Path) -> None:
    text = "".join(f"line {n}\n" for n in range(40_000))  # ~390 KB
    (tmp_path / "long").write_text(text)
    assert read_kernel_file(tmp_path / "long") == text


def test_a_missing_file_raises_as_open_would(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_kernel_file(tmp_path / "absent")


def test_a_written_file_holds_exactly_the_text(tmp_path: Path) -> None:
    target = tmp_path / "value"
    target.write_text("a longer old value\n")
    write_kernel_file(target, "1000")
    assert target.read_text() == "1000"
    write_kernel_file(tmp_path / "new", "42")
    assert (tmp_path / "new").read_text() == "42"


def test_a_value_the_kernel_refuses_raises(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="Invalid argument"):
        write_kernel_file("/proc/self/oom_score_adj", "not a number")
    with pytest.raises(FileNotFoundError):
        write_kernel_file(tmp_path / "absent" / "value", "1")


def test_a_held_file_is_read_afresh_each_time(tmp_path: Path) -> None:
    path = tmp_path / "value"
    path.write_text("1\n")
    held = KernelFile(path)
    assert held.read() == "1\n"
    path.write_text("22\n")
    assert held.read() == "22\n"
    held.close()
    held.close()  # twice is harmless
    with pytest.raises(OSError, match="closed"):
        held.read()


def test_a_held_file_longer_than_one_read_comes_whole(tmp_path: Path) -> None:
    text = "".join(f"line {n}\n" for n in range(40_000))  # ~390 KB, several preads
    (tmp_path / "long").write_text(text)
    assert KernelFile(tmp_path / "long").read() == text


def test_a_held_proc_file_reads_as_a_fresh_open_does() -> None:
    held = KernelFile("/proc/self/limits")
    assert held.read() == read_kernel_file("/proc/self/limits")
    held.close()


def test_a_held_proc_file_names_its_process_and_fails_once_it_is_reaped() -> None:
    child = subprocess.Popen(["sleep", "60"])
    held = KernelFile(f"/proc/{child.pid}/stat")
    assert held.read().startswith(f"{child.pid} (sleep) ")
    child.kill()
    child.wait()
    with pytest.raises(ProcessLookupError):
        held.read()
    held.close()


def test_opening_what_is_not_there_gives_none(tmp_path: Path) -> None:
    assert open_kernel_file(tmp_path / "absent") is None
    opened = open_kernel_file("/proc/self/limits")
    assert opened is not None
    opened.close()
