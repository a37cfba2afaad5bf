"""pyexec.spawn.Launcher: nsjail is started from a thread that outlives it, since its
death signal fires when the thread that forked it ends. A thread that said so
(``start_here``: the pool's refill workers) starts its own, without the launcher
thread, and ``outlive_jails`` keeps it until they have exited; any other thread's go
through the launcher thread. Real processes (``sleep``), no root."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

from pyexec.spawn import Launcher

SLEEP = ["sleep", "60"]


def _reap(process: subprocess.Popen[bytes]) -> int:
    """Wait for ``process`` and close its pipes; its exit code."""
    with process:
        return process.wait()


def test_a_thread_that_starts_here_forks_itself_and_outlives_what_it_started() -> None:
    launcher = Launcher()
    started: list[int] = []
    release = threading.Event()

    def refill_worker() -> None:
        launcher.start_here()
        process = launcher.popen(SLEEP, ())
        started.append(process.pid)
        release.wait(10)
        launcher.outlive_jails(poll_seconds=0.01)
        started.append(_reap(process))

    worker = threading.Thread(target=refill_worker)
    worker.start()
    while not started:
        time.sleep(0.01)
    assert launcher._thread is None  # no hand-off: the launcher thread never started
    release.set()
    worker.join(0.5)
    assert worker.is_alive()  # its process still runs: the thread waits for it
    os.kill(started[0], signal.SIGTERM)
    worker.join(5)
    assert not worker.is_alive()
    assert started[1] == -signal.SIGTERM


def test_any_other_thread_starts_through_the_launcher_thread() -> None:
    launcher = Launcher()
    process = launcher.popen(SLEEP, ())
    try:
        assert launcher._thread is not None
        assert launcher._thread.is_alive()
    finally:
        process.kill()
        _reap(process)


def test_outlive_jails_returns_at_once_when_what_the_thread_started_was_reaped() -> None:
    launcher = Launcher()
    launcher.start_here()
    process = launcher.popen(["true"], ())
    _reap(process)  # by its jail's teardown, say
    started = time.monotonic()
    launcher.outlive_jails()
    assert time.monotonic() - started < 1
