"""Writing the files a run returned under one local directory, and nowhere else.

The paths come from the service, which got them from an untrusted script, so each is
checked (relative, no ``..``, no empty or ``.`` component, no NUL or backslash) and
then opened component by component from the directory's own descriptor with
O_NOFOLLOW, so a symlink planted in the directory cannot lead out of it; files are
created with O_EXCL, so nothing that exists is overwritten.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

from pyexec_client._results import OutputFile


class UnsafeOutputError(Exception):
    """A returned file that cannot be written safely; the message names it and why."""


def check_relative(path: str) -> tuple[str, ...]:
    """The components of a returned path, or UnsafeOutputError if it could leave the
    output directory or be read differently on another system."""
    if not path or "\0" in path or "\\" in path:
        raise UnsafeOutputError(f"refusing the returned path {path!r}: empty, NUL or backslash")
    if path.startswith("/"):
        raise UnsafeOutputError(f"refusing the returned path {path!r}: it is absolute")
    parts = tuple(path.split("/"))
    if any(part in ("", ".", "..") for part in parts):
        raise UnsafeOutputError(
            f"refusing the returned path {path!r}: an empty, '.' or '..' component"
        )
    return parts


def _supported() -> None:
    if not hasattr(os, "O_NOFOLLOW") or os.open not in os.supports_dir_fd:
        raise UnsafeOutputError("writing returned files needs O_NOFOLLOW and dir_fd (POSIX)")


def _open_directory(name: str, parent: int) -> int:
    """``name`` under ``parent`` as a directory descriptor, created if missing, never
    through a symlink."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, mode=0o755, dir_fd=parent)
    return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)


def write_file(out_dir: Path, output: OutputFile) -> Path:
    """Create ``output`` under ``out_dir``; UnsafeOutputError if its path is unsafe,
    FileExistsError if it exists, OSError (ELOOP, ENOTDIR) on a symlink on the way."""
    if output.content is None:
        raise ValueError(f"{output.path} has no content ({output.omitted})")
    parts = check_relative(output.path)
    _supported()
    descriptors = [os.open(out_dir, os.O_RDONLY | os.O_DIRECTORY)]
    try:
        for name in parts[:-1]:
            descriptors.append(_open_directory(name, descriptors[-1]))
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        handle = os.open(parts[-1], flags, 0o644, dir_fd=descriptors[-1])
        with os.fdopen(handle, "wb") as stream:
            stream.write(output.content)
    finally:
        for descriptor in descriptors:
            os.close(descriptor)
    return out_dir.joinpath(*parts)


def write_files(out_dir: Path, outputs: Sequence[OutputFile]) -> list[Path]:
    """Write every returned file that has content. Every path is checked first, so an
    unsafe or existing path writes nothing (O_EXCL still guards each write)."""
    with_content = [output for output in outputs if output.content is not None]
    for output in with_content:
        target = out_dir.joinpath(*check_relative(output.path))
        if os.path.lexists(target):
            raise FileExistsError(f"refusing to overwrite {target}")
    return [write_file(out_dir, output) for output in with_content]
