"""pyexec.pipes over real pipes: capped captures that keep reading, draining, and the
selector that reads every capture and writes the pending bytes."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest

from pyexec import pipes
from pyexec.pipes import Capture, PipeSet

TIMEOUT = 5.0
# Larger than any pipe buffer (64 KiB by default), so the writer must wait for the reader.
BIG = 1024 * 1024 + 17


class Pipes:
    """Pipes for one test; whatever is still open at its end is closed then."""

    def __init__(self) -> None:
        self.open: set[int] = set()

    def make(self) -> tuple[int, int]:
        """A new pipe: (read end, write end)."""
        read_end, write_end = os.pipe()
        self.open |= {read_end, write_end}
        return read_end, write_end

    def close(self, fd: int) -> None:
        # Forgotten at once: the number may be reused before the test ends.
        self.open.discard(fd)
        os.close(fd)


@pytest.fixture
def os_pipes() -> Iterator[Pipes]:
    made = Pipes()
    yield made
    for fd in sorted(made.open):
        made.close(fd)


class CountingCapture(Capture):
    """A Capture that counts how often it is read."""

    def __init__(self, fd: int, cap: int, paced: bool = False) -> None:
        super().__init__(fd, cap, paced)
        self.reads = 0

    def read(self) -> int:
        self.reads += 1
        return super().read()


class CountingOs:
    """pyexec.pipes' ``os``, counting the writes."""

    def __init__(self, real: ModuleType) -> None:
        self._real = real
        self.writes = 0

    def write(self, fd: int, data: Any) -> int:
        self.writes += 1
        written: int = self._real.write(fd, data)
        return written

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@pytest.fixture
def counting_os(monkeypatch: pytest.MonkeyPatch) -> CountingOs:
    counting = CountingOs(os)
    monkeypatch.setattr(pipes, "os", counting)
    return counting


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class Reader(threading.Thread):
    """Reads ``size`` bytes from ``fd`` on another thread."""

    def __init__(self, fd: int, size: int) -> None:
        super().__init__(daemon=True)
        self.fd = fd
        self.size = size
        self.data = bytearray()

    def run(self) -> None:
        while len(self.data) < self.size:
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return
            self.data += chunk


def pump_until(pipe_set: PipeSet, done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not done():
        assert time.monotonic() < deadline, "the pipes did not get there"
        pipe_set.pump(0.05)


def test_read_keeps_the_cap_flags_truncation_and_still_empties_the_pipe(
    os_pipes: Pipes,
) -> None:
    read_end, write_end = os_pipes.make()
    capture = Capture(read_end, cap=4)
    os.write(write_end, b"0123456789")
    assert capture.read() == 10
    assert (bytes(capture.data), capture.truncated) == (b"0123", True)
    os.write(write_end, b"abcde")
    assert capture.read() == 5  # read past the cap, so the writer never blocks
    assert bytes(capture.data) == b"0123"
    assert not capture.eof


@pytest.mark.parametrize(("size", "truncated"), [(9, False), (10, False), (11, True)])
def test_truncated_is_set_only_past_the_cap(os_pipes: Pipes, size: int, truncated: bool) -> None:
    read_end, write_end = os_pipes.make()
    capture = Capture(read_end, cap=10)
    os.write(write_end, b"x" * size)
    capture.read()
    assert capture.truncated is truncated
    assert len(capture.data) == min(size, 10)


def test_read_of_an_empty_nonblocking_pipe_is_zero_without_eof(
    os_pipes: Pipes,
) -> None:
    read_end, _write_end = os_pipes.make()
    os.set_blocking(read_end, False)
    capture = Capture(read_end, cap=10)
    assert capture.read() == 0
    assert not capture.eof


def test_eof_is_set_once_the_writer_closes(os_pipes: Pipes) -> None:
    read_end, write_end = os_pipes.make()
    capture = Capture(read_end, cap=10)
    os.write(write_end, b"last")
    os_pipes.close(write_end)
    assert capture.read() == 4
    assert not capture.eof
    assert capture.read() == 0
    assert capture.eof
    assert bytes(capture.data) == b"last"


def test_drain_without_blocking_stops_when_the_pipe_is_empty(
    os_pipes: Pipes,
) -> None:
    read_end, write_end = os_pipes.make()
    capture = Capture(read_end, cap=1024)
    os.write(write_end, b"partial")  # the writer stays open
    capture.drain(block=False)
    assert bytes(capture.data) == b"partial"
    assert not capture.eof
    assert not capture.truncated


def test_drain_without_blocking_stops_at_the_cap(os_pipes: Pipes) -> None:
    read_end, write_end = os_pipes.make()
    capture = Capture(read_end, cap=4)
    os.write(write_end, b"0123456789")
    capture.drain(block=False)
    assert (bytes(capture.data), capture.truncated, capture.eof) == (b"0123", True, False)


def test_drain_blocking_reads_to_the_end_past_the_cap(os_pipes: Pipes) -> None:
    read_end, write_end = os_pipes.make()
    capture = Capture(read_end, cap=100)

    def write_then_close() -> None:
        write_all(write_end, b"w" * BIG)
        os_pipes.close(write_end)

    writer = threading.Thread(target=write_then_close, daemon=True)
    writer.start()
    capture.drain(block=True)
    writer.join(TIMEOUT)
    assert not writer.is_alive()  # it was never left blocked on a full pipe
    assert capture.eof
    assert capture.truncated
    assert bytes(capture.data) == b"w" * 100


def test_drain_of_a_closed_capture_does_nothing() -> None:
    capture = Capture(-1, cap=10)
    capture.drain(block=True)
    assert (capture.data, capture.eof) == (bytearray(), False)


def test_pump_reads_every_capture_and_writes_the_pending_bytes(
    os_pipes: Pipes,
) -> None:
    (out_read, out_write), (err_read, err_write) = os_pipes.make(), os_pipes.make()
    control_read, control_write = os_pipes.make()
    stdout, stderr = Capture(out_read, cap=BIG), Capture(err_read, cap=BIG)
    pending = bytes(range(256)) * (BIG // 256 + 1)
    reader = Reader(control_read, len(pending))
    reader.start()
    os.write(out_write, b"printed")
    os.write(err_write, b"warned")
    with PipeSet([stdout, stderr], control_write, pending) as pipe_set:
        pump_until(pipe_set, lambda: not reader.is_alive())
        os_pipes.close(out_write)
        os_pipes.close(err_write)
        pump_until(pipe_set, lambda: stdout.eof and stderr.eof)
    assert bytes(reader.data) == pending
    assert (bytes(stdout.data), bytes(stderr.data)) == (b"printed", b"warned")
    os.fstat(control_write)  # the writer's fd is left open for the caller


def test_pump_unregisters_a_capture_at_its_end(os_pipes: Pipes) -> None:
    read_end, write_end = os_pipes.make()
    capture = CountingCapture(read_end, cap=100)
    os.write(write_end, b"bye")
    os_pipes.close(write_end)
    with PipeSet([capture]) as pipe_set:
        pump_until(pipe_set, lambda: capture.eof)
        reads = capture.reads
        for _ in range(3):
            pipe_set.pump(0.01)
    assert capture.reads == reads
    assert bytes(capture.data) == b"bye"


def test_a_capture_already_at_its_end_is_not_watched(os_pipes: Pipes) -> None:
    read_end, write_end = os_pipes.make()
    os_pipes.close(write_end)
    capture = CountingCapture(read_end, cap=100)
    capture.eof = True
    with PipeSet([capture]) as pipe_set:
        pipe_set.pump(0.01)
    assert capture.reads == 0


def test_the_writer_is_done_once_everything_is_written(
    os_pipes: Pipes, counting_os: CountingOs
) -> None:
    read_end, write_end = os_pipes.make()
    with PipeSet([], write_end, b"script") as pipe_set:
        pipe_set.pump(TIMEOUT)
        writes = counting_os.writes
        pipe_set.pump(0.01)
        pipe_set.pump(0.01)
    assert writes >= 1
    assert counting_os.writes == writes
    assert os.read(read_end, 100) == b"script"


def test_a_broken_pipe_on_the_writer_counts_as_written(
    os_pipes: Pipes, counting_os: CountingOs
) -> None:
    read_end, write_end = os_pipes.make()
    os_pipes.close(read_end)  # the jail is gone before it read its script
    with PipeSet([], write_end, b"x" * BIG) as pipe_set:
        pipe_set.pump(TIMEOUT)
        assert counting_os.writes == 1
        pipe_set.pump(0.01)
        pipe_set.pump(0.01)
    assert counting_os.writes == 1


@pytest.mark.parametrize("paced", [True, False])
def test_a_paced_capture_past_its_cap_is_read_one_chunk_per_interval(
    os_pipes: Pipes, paced: bool
) -> None:
    """A writer that never stops (a stderr flood) is read as fast as it writes unless
    its capture is paced: then once per PACED_READ_SECONDS, and it is not stopped."""
    read_fd, write_fd = os_pipes.make()
    os.set_blocking(write_fd, False)
    capture = CountingCapture(read_fd, 10, paced=paced)
    seconds = 0.2
    with PipeSet([capture]) as pipe_set:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            with contextlib.suppress(BlockingIOError):
                os.write(write_fd, b"x" * 65536)  # keep the pipe full
            pipe_set.pump(left)
    assert capture.truncated
    assert capture.data == b"x" * 10
    most = seconds / pipes.PACED_READ_SECONDS + 3
    assert (capture.reads <= most) == paced, capture.reads
