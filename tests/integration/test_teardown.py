"""Tearing jails down when things go wrong: an nsjail that does not answer SIGTERM is
killed, and a pool whose jails cannot start backs off instead of spinning. Real jails."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Iterator

import pytest

import pyexec.jail
from pyexec.cgroups import prepare_cgroups
from pyexec.jail import Jail
from pyexec.pool import FAILURE_BACKOFF_SECONDS, JailPools
from pyexec.settings import load_settings
from pyexec.spawn import REAPER
from tests.integration.host import JailTrace, children, proc_stat
from tests.support import script, wait_until


@pytest.fixture
def ready_jail() -> Iterator[Jail]:
    """A started jail whose runner is ready; afterwards continued (if a test stopped
    it) and closed."""
    settings = load_settings({})
    jail = Jail(settings, prepare_cgroups(settings.cgroup_parent))
    jail.start()
    try:
        jail.wait_ready(settings.startup_timeout_seconds)
        yield jail
    finally:
        if jail.proc is not None and jail.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(jail.proc.pid, signal.SIGCONT)
        jail.close()


def test_an_nsjail_that_ignores_sigterm_is_killed_and_nothing_of_its_jail_remains(
    ready_jail: Jail,
) -> None:
    """A stopped nsjail cannot act on SIGTERM; close() escalates to SIGKILL after its
    grace periods (5 s, then 5 s more) instead of waiting for ever."""
    assert ready_jail.proc is not None
    trace = JailTrace.of(ready_jail)
    pid = ready_jail.proc.pid
    os.kill(pid, signal.SIGSTOP)
    wait_until(lambda: _stopped(pid), "nsjail to stop")
    started = time.monotonic()
    ready_jail.close()
    assert time.monotonic() - started < 15
    assert ready_jail.proc.returncode == -signal.SIGKILL
    assert REAPER.wait_idle(timeout=30)
    assert trace.remains() == []


@pytest.mark.parametrize("pidfd", [True, False], ids=["pidfd", "polling"])
def test_a_jail_is_reaped_as_soon_as_it_exits_with_or_without_a_pidfd(
    ready_jail: Jail, monkeypatch: pytest.MonkeyPatch, pidfd: bool
) -> None:
    """close() waits on a pidfd where the kernel has one, else polls; either way
    the jail is reaped within moments of its end, and nothing of it remains."""
    assert ready_jail.proc is not None
    if not pidfd:
        monkeypatch.setattr(pyexec.jail, "_pidfd", lambda pid: None)
    trace = JailTrace.of(ready_jail)
    started = time.monotonic()
    ready_jail.close()
    assert time.monotonic() - started < 4  # well inside the 5 s before SIGKILL
    assert ready_jail.proc.returncode is not None
    assert ready_jail.proc.returncode != -signal.SIGKILL
    assert REAPER.wait_idle(timeout=30)
    assert trace.remains() == []


def test_a_jail_is_stopped_as_soon_as_its_report_is_read(ready_jail: Jail) -> None:
    """A script that leaves processes busy and keeps the runner from exiting still gets
    its answer, and the jail is stopped at once: CPU spent after the report counts
    against no limit and is in no ``usage``. (Waiting a second for the runner to exit,
    as the service once did, let these four processes take ~2 s of CPU on two cores.)"""
    assert ready_jail.init_pid is not None
    trace = JailTrace.of(ready_jail)
    record = ready_jail.run(script("busy_after_report"))
    assert json.loads(record.report)["result"] == "answered"
    jailed = [ready_jail.init_pid, *children(ready_jail.init_pid)]
    at_answer = {pid: _cpu(pid) for pid in jailed}
    last_seen = dict(at_answer)
    deadline = time.monotonic() + 30
    while any(_cpu(pid) is not None for pid in jailed):
        assert time.monotonic() < deadline, "the jail was not stopped"
        for pid in jailed:
            now = _cpu(pid)
            if now is not None and at_answer[pid] is not None:
                last_seen[pid] = now
        time.sleep(0.01)
    after_answer = sum((last_seen[pid] or 0.0) - (at_answer[pid] or 0.0) for pid in jailed)
    assert after_answer < 0.5, f"{after_answer:.2f} s of CPU after the report"
    assert REAPER.wait_idle(timeout=30)
    assert trace.remains() == []


def _cpu(pid: int) -> float | None:
    """The CPU seconds ``pid`` has used, or None once it has ended (or is a zombie)."""
    stat = proc_stat(pid)
    return None if stat is None or stat.state in ("Z", "X") else stat.cpu_seconds


def test_no_pidfd_for_a_process_that_does_not_exist() -> None:
    assert pyexec.jail._pidfd(2**22 + 1) is None


def _stopped(pid: int) -> bool:
    stat = proc_stat(pid)
    return stat is not None and stat.state == "T"


def test_a_pool_whose_jails_cannot_start_backs_off_and_never_fills(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = load_settings(
        {
            "PYEXEC_SANDBOX_PYTHON": "/nonexistent/python",
            "PYEXEC_POOL_SIZE": "1",
            "PYEXEC_LIGHT_POOL_SIZE": "1",
        }
    )
    pools = JailPools(settings, prepare_cgroups(settings.cgroup_parent))
    window = 3.0
    with caplog.at_level(logging.ERROR, logger="pyexec.pool"):
        pools.start()
        try:
            # The test is about how many attempts fit in this time: a real wait.
            time.sleep(window)
            attempts = [
                record for record in caplog.records if "could not warm" in record.getMessage()
            ]
            assert pools.idle_counts() == {"light": 0, "heavy": 0, "chart": 0}
            assert not pools.wait_full(timeout=0)
        finally:
            close_started = time.monotonic()
            pools.close()
            close_seconds = time.monotonic() - close_started
    # Each worker waits FAILURE_BACKOFF_SECONDS after a failure; without that it
    # would fail every few milliseconds, hundreds of times in the window.
    assert 1 <= len(attempts) <= settings.pool_refill * (window / FAILURE_BACKOFF_SECONDS + 1)
    assert "exited before it was ready" in attempts[0].getMessage()
    assert close_seconds < 10
