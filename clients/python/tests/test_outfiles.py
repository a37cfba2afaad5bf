"""Returned files are written under the output directory only: paths checked, no
symlink followed, nothing overwritten. Local files, no server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyexec_client import OutputFile
from pyexec_client._outfiles import UnsafeOutputError, check_relative, write_files


def output(path: str, content: bytes | None = b"data") -> OutputFile:
    omitted = None if content is not None else "symlink"
    size = len(content) if content is not None else 0
    return OutputFile(path, size, "text/plain", content, omitted)


@pytest.mark.parametrize(
    "path",
    [
        "",
        "/etc/passwd",
        "../escape.txt",
        "a/../../escape.txt",
        "a/./b",
        "a//b",
        "a/",
        "a\\b",
        "nul\0.txt",
        "..",
    ],
)
def test_unsafe_paths_are_refused(path: str) -> None:
    with pytest.raises(UnsafeOutputError, match="refusing"):
        check_relative(path)


def test_safe_paths_split_into_components() -> None:
    assert check_relative("out/report.csv") == ("out", "report.csv")
    assert check_relative("..hidden/x..y") == ("..hidden", "x..y")


def test_files_are_written_with_their_directories(tmp_path: Path) -> None:
    written = write_files(tmp_path, [output("a.txt", b"A"), output("deep/er/b.bin", b"\x00")])
    assert written == [tmp_path / "a.txt", tmp_path / "deep/er/b.bin"]
    assert (tmp_path / "a.txt").read_bytes() == b"A"
    assert (tmp_path / "deep/er/b.bin").read_bytes() == b"\x00"


def test_an_existing_file_is_never_overwritten_and_nothing_is_written(tmp_path: Path) -> None:
    (tmp_path / "b.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        write_files(tmp_path, [output("a.txt"), output("b.txt")])
    assert (tmp_path / "b.txt").read_text() == "mine"
    assert not (tmp_path / "a.txt").exists()


def test_one_unsafe_path_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(UnsafeOutputError):
        write_files(tmp_path, [output("a.txt"), output("../b.txt")])
    assert list(tmp_path.iterdir()) == []


def test_a_symlinked_directory_inside_the_output_is_not_followed(tmp_path: Path) -> None:
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "sub").symlink_to(elsewhere)
    with pytest.raises(OSError, match=r"Not a directory|Too many levels"):
        write_files(out, [output("sub/planted.txt")])
    assert list(elsewhere.iterdir()) == []


def test_a_dangling_symlink_as_the_file_itself_is_not_followed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    target = tmp_path / "target.txt"
    (out / "a.txt").symlink_to(target)
    with pytest.raises(FileExistsError):
        write_files(out, [output("a.txt")])
    assert not target.exists()


def test_files_without_content_are_skipped(tmp_path: Path) -> None:
    assert write_files(tmp_path, [output("link", None), output("a.txt")]) == [tmp_path / "a.txt"]


def test_written_files_are_not_executable(tmp_path: Path) -> None:
    write_files(tmp_path, [output("run.sh", b"#!/bin/sh\n")])
    assert not os.access(tmp_path / "run.sh", os.X_OK)
