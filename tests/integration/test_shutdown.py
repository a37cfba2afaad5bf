"""Shutdown: new work refused, running scripts get the grace period, then every jail is
killed and reaped; a real SIGTERM to the real server leaves no jail behind."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from pyexec.answers import Outcome
from pyexec.api import Service
from pyexec.cgroups import CONTROLLERS
from tests.live_server import LiveServer
from tests.support import call, script, wait_healthy


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
    time.sleep(1)
    started = time.monotonic()
    service.executor.shutdown()
    thread.join(timeout=15)
    assert time.monotonic() - started < 10
    assert answers["running"].status == 503
    assert answers["running"].body["kind"] == "shutting_down"
    refused = call(service, {"script": script("hello")})
    assert (refused.status, refused.body["kind"]) == (503, "shutting_down")
    assert service.executor.pools.idle_counts() == {"light": 0, "heavy": 0}


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
                self.jailed.update(_children(pid))
            elif pid in self.jailed:
                found.append(line[:80])
        return found

    def wait_gone(self, timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        while (left := self.processes()) and time.monotonic() < deadline:
            time.sleep(0.1)
        return left


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(child) for child in handle.read().split()]
    except OSError:
        return []


def _post_in_background(
    server: LiveServer, name: str, answers: dict[str, Any]
) -> threading.Thread:
    def post() -> None:
        try:
            answers[name] = server.post("/execute", {"script": script(name)}, timeout=30)
        except OSError as lost:
            answers[name] = (None, str(lost))

    thread = threading.Thread(target=post)
    thread.start()
    return thread


def test_sigterm_leaves_no_jail_behind(live_server: Callable[..., LiveServer]) -> None:
    """The real server (gunicorn + gunicorn.conf.py): SIGTERM while a script runs and
    the pool is full; afterwards no process of its jails exists."""
    marker = f"pyexec-sigterm-{uuid.uuid4().hex[:8]}"
    watch = JailWatch(marker)
    server = live_server(
        PYEXEC_CGROUP_PARENT=marker,
        PYEXEC_SHUTDOWN_GRACE="4",
        PYEXEC_POOL_SIZE="2",
        PYEXEC_LIGHT_POOL_SIZE="2",
    )
    deadline = time.monotonic() + 60
    pool: dict[str, int] = {}
    while pool != {"light": 2, "heavy": 2} and time.monotonic() < deadline:
        pool = server.get("/healthz")[1]["pool"]
        time.sleep(0.2)
    assert pool == {"light": 2, "heavy": 2}
    answers: dict[str, Any] = {}
    threads = [
        _post_in_background(server, name, answers)
        for name in ("sleep_two_seconds", "sleep_forever")
    ]
    time.sleep(0.7)
    assert len(watch.processes()) >= 6  # 4 pooled (2 refilling) + 2 running
    assert len(watch.jailed) >= 5
    server.process.send_signal(signal.SIGTERM)
    for thread in threads:
        thread.join(timeout=30)
    server.process.wait(timeout=30)
    # A script that finishes within the grace period gets its answer.
    assert answers["sleep_two_seconds"][0] == 200
    assert answers["sleep_two_seconds"][1]["result"] == "slept"
    # One that does not is stopped: no answer, or a 503 shutting_down.
    assert answers["sleep_forever"][0] in (None, 503)
    assert watch.wait_gone(timeout=10) == []
    for controller in CONTROLLERS:
        parent = f"/sys/fs/cgroup/{controller}/{marker}"
        if os.path.isdir(parent):
            assert [p for p in os.listdir(parent) if p.startswith("NSJAIL.")] == []
            os.rmdir(parent)


def test_sigterm_while_the_pool_fills_leaves_no_cgroup(
    live_server: Callable[..., LiveServer],
) -> None:
    """SIGTERM right after start, jails still warming: shutdown waits for the pool's
    own close (begun by the SIGTERM handler) before it sweeps, so nothing is left."""
    marker = f"pyexec-fill-{uuid.uuid4().hex[:8]}"
    # Many ready jails to close (closing them takes a while), more being warmed.
    server = live_server(PYEXEC_CGROUP_PARENT=marker, PYEXEC_LIGHT_POOL_SIZE="16")
    deadline = time.monotonic() + 60
    while server.get("/healthz")[1]["pool"]["light"] < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=60) == 0
    for controller in CONTROLLERS:
        parent = f"/sys/fs/cgroup/{controller}/{marker}"
        if os.path.isdir(parent):
            assert [p for p in os.listdir(parent) if p.startswith("NSJAIL.")] == []
            os.rmdir(parent)
