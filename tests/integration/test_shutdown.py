"""Shutdown: new work refused, running scripts get the grace period, then every jail is
killed and reaped; a real SIGTERM to the real server leaves no jail behind."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from pyexec.answers import Outcome
from pyexec.api import Service
from pyexec.cgroups import CGROUP_ROOT, CONTROLLERS
from pyexec.pool import RUNNING_NICE
from tests.integration.host import children
from tests.live_server import LiveServer
from tests.support import call, script, wait_healthy, wait_until


def test_shutdown_refuses_new_work_and_kills_running_jails(
    make_service: Callable[..., Service],
) -> None:
    service = make_service(**{"PYEXEC_POOL_SIZE": "1", "PYEXEC_SHUTDOWN_GRACE": "0.5"})
    wait_healthy(service)
    assert service.executor.pools.wait_full(timeout=60)
    answers: dict[str, Outcome] = {}

    def forever() -> None:
        answers["running"] = call(service, {"script": script("sleep_forever")})

    thread = threading.Thread(target=forever)
    thread.start()
    wait_until(lambda: service.executor.running() == 1, "the script to be running")
    started = time.monotonic()
    service.executor.shutdown()
    thread.join(timeout=15)
    assert time.monotonic() - started < 10
    assert answers["running"].status == 503
    assert answers["running"].body["kind"] == "shutting_down"
    refused = call(service, {"script": script("hello")})
    assert (refused.status, refused.body["kind"]) == (503, "shutting_down")
    assert service.executor.pools.idle_counts() == {"light": 0, "heavy": 0, "chart": 0}


class JailWatch:
    """This server's nsjail processes (their args name its own cgroup parent) and every
    process ever seen inside one of its jails."""

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.jailed: set[int] = set()

    def processes(self) -> list[str]:
        listing = subprocess.run(
            ["ps", "-ww", "-eo", "pid=,args="], capture_output=True, text=True, check=True
        ).stdout
        found = []
        for line in listing.splitlines():
            pid = int(line.split(None, 1)[0])
            if self.marker in line:
                found.append(line[:80])
                self.jailed.update(children(pid))
            elif pid in self.jailed:
                found.append(line[:80])
        return found

    def running(self) -> int:
        """How many of its jails have been handed a script: the pool renices a jail's
        init from nsjail.cfg's nice level to RUNNING_NICE when it hands it over."""
        self.processes()
        return sum(1 for pid in self.jailed if _niceness(pid) == RUNNING_NICE)

    def wait_gone(self, timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        while (left := self.processes()) and time.monotonic() < deadline:
            time.sleep(0.1)
        return left


def _niceness(pid: int) -> int | None:
    try:
        return os.getpriority(os.PRIO_PROCESS, pid)
    except OSError:
        return None


def _post_in_background(
    server: LiveServer, name: str, answers: dict[str, Any], key: str = ""
) -> threading.Thread:
    def post() -> None:
        try:
            answers[key or name] = server.post("/execute", {"script": script(name)}, timeout=30)
        except OSError as lost:
            answers[key or name] = (None, str(lost))

    thread = threading.Thread(target=post)
    thread.start()
    return thread


def _remove_cgroup_parent(marker: str) -> list[str]:
    """Remove a server's cgroup parent (cgroup v1: each controller it used, cpuacct
    too) and return the jail cgroups still in it: none, when the server cleaned up."""
    left = []
    for controller in (*CONTROLLERS, "cpuacct"):
        parent = CGROUP_ROOT / controller / marker
        if not parent.is_dir():
            continue
        for jail_dir in sorted(parent.glob("*JAIL.*")):
            left.append(f"{controller}/{marker}/{jail_dir.name}")
            with contextlib.suppress(OSError):
                jail_dir.rmdir()
        with contextlib.suppress(OSError):
            parent.rmdir()
    return left


def _wait_pool(server: LiveServer, size: dict[str, int]) -> None:
    wait_until(lambda: server.get("/healthz")[1]["pool"] == size, f"a pool of {size}", 60)


def test_sigterm_leaves_no_jail_behind(live_server: Callable[..., LiveServer]) -> None:
    """The real server (gunicorn + gunicorn.conf.py): SIGTERM while two scripts run and
    the pool is full; the one that ends within the grace period gets its answer, and
    afterwards no process of any of its jails exists."""
    marker = f"pyexec-sigterm-{uuid.uuid4().hex[:8]}"
    watch = JailWatch(marker)
    server = live_server(
        PYEXEC_CGROUP_PARENT=marker,
        PYEXEC_SHUTDOWN_GRACE="4",
        PYEXEC_POOL_SIZE="2",
        PYEXEC_LIGHT_POOL_SIZE="2",
    )
    try:
        _wait_pool(server, {"light": 2, "heavy": 2, "chart": 1})
        answers: dict[str, Any] = {}
        threads = [
            _post_in_background(server, name, answers)
            for name in ("sleep_two_seconds", "sleep_forever")
        ]
        wait_until(lambda: watch.running() == 2, "both scripts to be handed to their jails")
        # nsjail and the init of 2 running and 2 pooled jails, at least.
        assert len(watch.processes()) >= 8
        assert len(watch.jailed) >= 4
        server.process.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(timeout=30)
        server.process.wait(timeout=30)
        # A script that finishes within the grace period gets its answer.
        assert answers["sleep_two_seconds"][0] == 200
        assert answers["sleep_two_seconds"][1]["result"] == "slept"
        # One that does not is stopped: no answer, or a 503 shutting_down (see below).
        assert answers["sleep_forever"][0] in (None, 503)
        assert watch.wait_gone(timeout=10) == []
    finally:
        _remove_cgroup_parent(marker)  # checked by the test below


@pytest.mark.parametrize("in_flight", [1, 3, 8])
def test_sigterm_answers_every_script_past_the_grace_with_503_and_leaves_no_cgroup(
    live_server: Callable[..., LiveServer], in_flight: int
) -> None:
    marker = f"pyexec-grace-{uuid.uuid4().hex[:8]}"
    watch = JailWatch(marker)
    server = live_server(
        PYEXEC_CGROUP_PARENT=marker,
        PYEXEC_SHUTDOWN_GRACE="2",
        PYEXEC_POOL_SIZE="1",
        PYEXEC_LIGHT_POOL_SIZE="1",
    )
    answers: dict[str, Any] = {}
    try:
        _wait_pool(server, {"light": 1, "heavy": 1, "chart": 1})
        threads = [
            _post_in_background(server, "sleep_forever", answers, key=str(index))
            for index in range(in_flight)
        ]
        wait_until(lambda: watch.running() == in_flight, "the scripts to be handed over")
        server.process.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(timeout=30)
        server.process.wait(timeout=30)
        assert watch.wait_gone(timeout=10) == []
    finally:
        left = _remove_cgroup_parent(marker)
    # Every request gets a whole answer: a 503 body that parses and says why.
    assert sorted(answers) == [str(index) for index in range(in_flight)]
    for status, body in answers.values():
        assert (status, body["kind"]) == (503, "shutting_down")
    assert left == []


def test_sigterm_while_the_pool_fills_leaves_no_cgroup(
    live_server: Callable[..., LiveServer],
) -> None:
    """SIGTERM right after start, jails still warming: shutdown waits for the pool's
    own close (begun by the SIGTERM handler) before it sweeps, so nothing is left."""
    marker = f"pyexec-fill-{uuid.uuid4().hex[:8]}"
    # Many ready jails to close (closing them takes a while), more being warmed.
    server = live_server(PYEXEC_CGROUP_PARENT=marker, PYEXEC_LIGHT_POOL_SIZE="16")
    try:
        wait_until(lambda: server.get("/healthz")[1]["pool"]["light"] >= 10, "10 warm jails", 60)
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=60) == 0
    finally:
        left = _remove_cgroup_parent(marker)
    assert left == []
