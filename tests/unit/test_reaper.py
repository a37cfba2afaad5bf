"""pyexec.spawn.Reaper: teardowns run off the caller's thread, on threads that are
reused, several at once, and wait_idle sees each one end, even one that fails."""

from __future__ import annotations

import logging
import threading

import pytest

from pyexec.spawn import Reaper


def test_a_later_teardown_reuses_the_thread_of_an_earlier_one() -> None:
    reaper = Reaper()
    seen: list[int] = []
    reaper.call(lambda: seen.append(threading.get_ident()))
    assert reaper.wait_idle(timeout=5)
    reaper.call(lambda: seen.append(threading.get_ident()))
    assert reaper.wait_idle(timeout=5)
    assert len(seen) == 2
    assert seen[0] == seen[1] != threading.get_ident()


def test_a_stuck_teardown_does_not_hold_the_next_one_up() -> None:
    reaper = Reaper()
    release = threading.Event()
    second_ran = threading.Event()

    def stuck() -> None:
        release.wait(10)

    reaper.call(stuck)
    reaper.call(second_ran.set)
    assert second_ran.wait(5)
    assert not reaper.wait_idle(timeout=0.05)  # the stuck one is still pending
    release.set()
    assert reaper.wait_idle(timeout=5)


def test_a_failed_teardown_is_logged_and_still_counted_as_done(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reaper = Reaper()

    def fail() -> None:
        raise RuntimeError("cgroup busy")

    with caplog.at_level(logging.ERROR, logger="pyexec"):
        reaper.call(fail)
        assert reaper.wait_idle(timeout=5)
    assert any("teardown failed" in record.getMessage() for record in caplog.records)
