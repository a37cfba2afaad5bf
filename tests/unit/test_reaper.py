"""pyexec.spawn.Reaper: teardowns run off the caller's thread, on threads that are
reused, several at once, and wait_idle sees each one end, even one that fails; a
teardown given with a pidfd waits in the exit watch until its process exits."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading

import pytest

from pyexec import spawn
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


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "60"])


def test_after_exit_runs_each_teardown_in_the_exit_watch_once_its_process_has_exited() -> None:
    """A jail that answered is only signalled; its teardown waits, without a thread of
    its own, until nsjail exits, then runs in the one exit-watch thread (issue 20).
    The caller's pidfd is its own: closing it at once changes nothing."""
    reaper = Reaper()
    ran: list[tuple[str, int | None]] = []
    processes = [_sleeper(), _sleeper()]
    for process in processes:
        pidfd = os.pidfd_open(process.pid)
        reaper.after_exit(
            pidfd,
            lambda process=process: ran.append(  # type: ignore[misc]
                (threading.current_thread().name, process.poll())
            ),
        )
        os.close(pidfd)
    assert not reaper.wait_idle(timeout=0.3)  # both still run: both pending
    assert ran == []
    for process in processes:
        process.terminate()
    assert reaper.wait_idle(timeout=5)
    assert [name for name, _code in ran] == ["jail-exits", "jail-exits"]
    assert all(code == -signal.SIGTERM for _name, code in ran)  # exited before


def test_a_process_that_outlives_the_exit_watch_is_handed_to_a_reaper_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """nsjail stuck after its SIGTERM: after EXIT_WATCH_SECONDS the teardown runs on a
    reaper thread, where Jail.close() stops it the hard way, and the exit watch
    serves the next jail meanwhile."""
    monkeypatch.setattr(spawn, "EXIT_WATCH_SECONDS", 0.3)
    reaper = Reaper()
    stuck, quick = _sleeper(), _sleeper()
    ran: dict[str, tuple[str, int | None]] = {}

    def stop_stuck() -> None:
        ran["stuck"] = (threading.current_thread().name, stuck.poll())
        stuck.kill()
        stuck.wait()

    def reap_quick() -> None:
        ran["quick"] = (threading.current_thread().name, quick.wait())

    for process, work in ((stuck, stop_stuck), (quick, reap_quick)):
        pidfd = os.pidfd_open(process.pid)
        reaper.after_exit(pidfd, work)
        os.close(pidfd)
    quick.terminate()
    assert reaper.wait_idle(timeout=5)
    assert ran["quick"][0] == "jail-exits"
    name, code = ran["stuck"]
    assert name.startswith("jail-reaper")
    assert code is None  # it still ran when the reaper thread took it over
