"""pyexec.deadlines: each watched socket is shut down at its own deadline, whatever
order the deadlines were set in, and a cancelled one never is. Real socket pairs."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from pyexec.deadlines import Watchdog


@pytest.fixture
def two_sockets() -> Iterator[tuple[socket.socket, socket.socket]]:
    """Two sockets to watch, each with its peer held open until the test ends."""
    first, first_peer = socket.socketpair()
    second, second_peer = socket.socketpair()
    with first, first_peer, second, second_peer:
        yield first, second


def _shut_down(sock: socket.socket) -> bool:
    """True once ``sock`` was shut down for reading: recv returns at once, empty."""
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False


def _wait_until_shut(sock: socket.socket, timeout: float = 5.0) -> float:
    started = time.monotonic()
    while not _shut_down(sock):
        assert time.monotonic() - started < timeout, "never shut down"
        time.sleep(0.005)
    return time.monotonic() - started


def test_an_earlier_deadline_set_after_a_later_one_fires_first(
    two_sockets: tuple[socket.socket, socket.socket],
) -> None:
    watchdog = Watchdog()
    late, early = two_sockets
    late_watch = watchdog.watch(late, 30, socket.SHUT_RD)
    early_watch = watchdog.watch(early, 0.05, socket.SHUT_RD)
    assert _wait_until_shut(early) < 5
    assert early_watch.fired
    assert not late_watch.fired
    assert not _shut_down(late)
    assert watchdog.cancel(late_watch) is False


def test_a_later_deadline_set_after_an_earlier_one_still_fires(
    two_sockets: tuple[socket.socket, socket.socket],
) -> None:
    watchdog = Watchdog()
    first, second = two_sockets
    watchdog.watch(first, 0.05, socket.SHUT_RD)
    second_watch = watchdog.watch(second, 0.15, socket.SHUT_RD)
    _wait_until_shut(first)
    _wait_until_shut(second)
    assert second_watch.fired


def test_a_cancelled_deadline_never_fires_and_one_behind_it_does(
    two_sockets: tuple[socket.socket, socket.socket],
) -> None:
    watchdog = Watchdog()
    kept, dropped = two_sockets
    dropped_watch = watchdog.watch(dropped, 0.05, socket.SHUT_RD)
    kept_watch = watchdog.watch(kept, 0.1, socket.SHUT_RD)
    assert watchdog.cancel(dropped_watch) is False
    _wait_until_shut(kept)
    assert kept_watch.fired
    assert not dropped_watch.fired
    assert not _shut_down(dropped)
