"""Reading and writing the small kernel files the service polls while a jail runs (/proc, cgroups).

``Path.read_text`` and ``open`` build a buffered text stack for each read, about three
times the cost of the read itself; these files are read several times per request, so
they are read with ``os.read`` instead (issue 20).
"""

from __future__ import annotations

import os
from pathlib import Path

CHUNK = 65536


def read_kernel_file(path: str | Path) -> str:
    """The whole text of a small kernel file; raises OSError as ``open`` would."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, CHUNK):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode("ascii", "replace")


def write_kernel_file(path: str | Path, text: str) -> None:
    """Write ``text`` to a kernel file (a cgroup's or /proc's) in one ``write``, as
    ``Path.write_text`` would (creating or truncating a plain file); raises OSError
    as it would, or as the kernel refuses the value."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, text.encode("ascii"))
    finally:
        os.close(fd)
