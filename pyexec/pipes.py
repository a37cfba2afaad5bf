"""Reading a jail's pipes: each into a buffer with a cap, all of them through one selector.

A jail has up to five pipes open to the service: its stdout and stderr, the
runner's result pipe, nsjail's log, and the control pipe the service writes the
script into. Every read of them goes through ``Capture.read``, so a cap and the
truncation flag are applied in exactly one place.
"""

from __future__ import annotations

import math
import os
import select
import time
from collections.abc import Iterable
from types import TracebackType

CHUNK_BYTES = 65536
# A paced capture past its cap is read one chunk at a time this often: its writer
# goes on (at that pace) and is not stopped, but a flood no longer costs the service
# a core to read and drop (0.6 s of CPU per second of a stderr flood, found by an
# adversarial review).
PACED_READ_SECONDS = 0.02


class Capture:
    """One pipe read into a buffer that keeps at most ``cap`` bytes.

    Past the cap the pipe is still read (so the writer is not stuck on it) but the
    bytes are dropped and ``truncated`` is set; a ``paced`` one is then read only one
    chunk per PACED_READ_SECONDS, so that its writer cannot make the service spin.
    """

    def __init__(self, fd: int, cap: int, paced: bool = False) -> None:
        self.fd = fd
        self.cap = cap
        # Past the cap, read at PACED_READ_SECONDS intervals by a PipeSet, not at
        # the writer's pace.
        self.paced = paced
        self.data = bytearray()
        self.truncated = False
        self.eof = False

    def read(self) -> int:
        """Read once, without blocking if the fd is non-blocking; the bytes read
        (0 when nothing was there, or at end of file, which sets ``eof``)."""
        try:
            chunk = os.read(self.fd, CHUNK_BYTES)
        except BlockingIOError:
            return 0
        if not chunk:
            self.eof = True
            return 0
        room = self.cap - len(self.data)
        self.data += chunk[: max(room, 0)]
        if len(chunk) > room:
            self.truncated = True
        return len(chunk)

    def drain(self, block: bool = False) -> None:
        """Read what the pipe holds: to its end when ``block`` (the writer has
        exited, so the end comes at once), else until it is empty or the cap is hit."""
        if self.fd < 0:
            return
        os.set_blocking(self.fd, block)
        while not self.eof:
            if not self.read() and not block:
                return
            if self.truncated and not block:
                return


class PipeSet:
    """One poll(2) set over a jail's pipes: reads every capture that has data, and
    writes ``pending`` bytes into ``writer_fd`` as the pipe takes them.

    The writer's fd stays open when everything is written: the caller closes it
    when it wants the other end to see end of file.
    """

    def __init__(
        self, captures: Iterable[Capture], writer_fd: int = -1, pending: bytes = b""
    ) -> None:
        # select.poll itself, not an epoll instance (a file descriptor and a system
        # call per pipe to set up and take down, three sets of pipes per request),
        # nor the selectors module's wrapping of poll (a key object per pipe and per
        # event): a jail has at most five pipes, and this runs several times per
        # request (issue 20).
        self._poll = select.poll()
        self._captures: dict[int, Capture] = {}
        # Paced captures past their cap, out of the poll set: when each is read next.
        self._paced: dict[Capture, float] = {}
        for capture in captures:
            if not capture.eof:
                self._captures[capture.fd] = capture
                self._poll.register(capture.fd, select.POLLIN)
        self._writer_fd = writer_fd
        self._pending = memoryview(pending)
        if writer_fd >= 0 and pending:
            os.set_blocking(writer_fd, False)
            self._poll.register(writer_fd, select.POLLOUT)

    def __enter__(self) -> PipeSet:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._captures.clear()
        self._paced.clear()

    def pump(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for any pipe, then serve every ready one;
        the bytes read."""
        got = self._read_paced() if self._paced else 0
        if self._paced:
            timeout = min(timeout, min(self._paced.values()) - time.monotonic())
        # poll's timeout is in whole milliseconds: round up, so that a deadline a
        # fraction of a millisecond away is waited for, not spun on.
        for fd, _events in self._poll.poll(max(0, math.ceil(timeout * 1000))):
            if fd == self._writer_fd:
                self._write()
                continue
            capture = self._captures.get(fd)
            if capture is None:
                continue
            got += capture.read()
            if capture.eof or (capture.paced and capture.truncated):
                self._poll.unregister(fd)
                del self._captures[fd]
                if not capture.eof:
                    os.set_blocking(fd, False)
                    self._paced[capture] = time.monotonic() + PACED_READ_SECONDS
        return got

    def _read_paced(self) -> int:
        """One read of each paced capture whose time has come."""
        got = 0
        now = time.monotonic()
        for capture, due in list(self._paced.items()):
            if now >= due:
                got += capture.read()
                if capture.eof:
                    del self._paced[capture]
                else:
                    self._paced[capture] = now + PACED_READ_SECONDS
        return got

    def _write(self) -> None:
        try:
            written = os.write(self._writer_fd, self._pending)
        except BlockingIOError:
            return
        except BrokenPipeError:
            written = len(self._pending)  # the reader is gone; its exit tells why
        self._pending = self._pending[written:]
        if not self._pending:
            self._poll.unregister(self._writer_fd)
