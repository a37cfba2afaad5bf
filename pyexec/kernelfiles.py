"""Reading and writing the small kernel files the service polls while a jail runs
(/proc, cgroups).

``Path.read_text`` and ``open`` build a buffered text stack for each read, about three
times the cost of the read itself; these files are read several times per request, so
they are read with ``os.pread`` and written with ``os.write`` instead (issue 20).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

CHUNK = 65536


def read_kernel_file(path: str | Path) -> str:
    """The whole text of a small kernel file, opened for this one read (KernelFile
    for a file read again and again); raises OSError as ``open`` would."""
    held = KernelFile(path)
    try:
        return held.read()
    finally:
        held.close()


def write_kernel_file(path: str | Path, text: str) -> None:
    """Write ``text`` to a kernel file (a cgroup's or /proc's) in one ``write``, as
    ``Path.write_text`` would (creating or truncating a plain file); raises OSError
    as it would, or as the kernel refuses the value."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, text.encode("ascii"))
    finally:
        os.close(fd)


class KernelFile:
    """A small kernel file held open and read afresh from its start on every read.

    cgroup and /proc files generate their text anew for each read from offset 0, so
    a file polled while a script runs is opened once, while its jail warms up, and
    then costs one ``pread`` per read: no path walk, open or close on the request
    path (issue 20). A /proc/<pid> file held open goes on naming that process, never
    a later one that reuses its pid.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = os.fspath(path)
        self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)

    def read(self) -> str:
        """The file's whole text now. Raises OSError once what it shows is gone: a
        removed cgroup's file gives ENODEV, a reaped process's ESRCH."""
        if self.fd < 0:
            raise OSError(errno.EBADF, f"{self.path} was closed")
        chunks = []
        offset = 0
        while True:
            chunk = os.pread(self.fd, CHUNK, offset)
            chunks.append(chunk)
            offset += len(chunk)
            # A shorter read than asked is the end: these files are seq_files,
            # which fill a read as far as they can (and regular files do too).
            if len(chunk) < CHUNK:
                return b"".join(chunks).decode("ascii", "replace")

    def close(self) -> None:
        """Release the file; safe to call twice."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def open_kernel_file(path: str | Path) -> KernelFile | None:
    """``path`` held open as a KernelFile, or None when it cannot be opened (the
    process or cgroup is already gone)."""
    try:
        return KernelFile(path)
    except OSError:
        return None
