"""Tearing jails down when things go wrong: an nsjail that does not answer SIGTERM is
killed, and a pool whose jails cannot start backs off instead of spinning. Real jails."""

from __future__ import annotations

import contextlib
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
from tests.integration.host import JailTrace, proc_stat
from tests.support import wait_until


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
