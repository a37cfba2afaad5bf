"""Fixtures for the jail and HTTP suite: the real app (functions-framework over
main.py), the real server on a loopback port, and a clean-up check.

Every script runs in a real nsjail jail; every service a test builds is shut down
by a fixture, so one failure cannot leak jails into later tests.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import functions_framework
import pytest
from flask.testing import FlaskClient

from pyexec.api import Service
from pyexec.cgroups import is_jail_init
from pyexec.pool import JailPools
from pyexec.settings import load_settings
from pyexec.spawn import REAPER
from tests.live_server import LiveServer, serve
from tests.support import CANARY, PROJECT_DIR, Api, core, wait_healthy

SESSION_ENVIRONMENT = {
    # Short limits keep the limit tests quick.
    "PYEXEC_TIMEOUT": "4",
    "PYEXEC_CPU_SECONDS": "2",
    # The session app queues rather than refuses, so concurrent tests see every
    # answer; test_overload checks the 503 paths with services of their own.
    "PYEXEC_MAX_QUEUE": "64",
    "PYEXEC_QUEUE_WAIT": "60",
    # A secret in the service's environment that no script may see.
    "PYEXEC_TEST_CANARY": CANARY,
}


@pytest.fixture(scope="session")
def app_client() -> Iterator[FlaskClient]:
    """The real service app, created once, as functions-framework creates it, with
    SESSION_ENVIRONMENT in the environment for as long as the session runs."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in SESSION_ENVIRONMENT.items():
            patch.setenv(name, value)
        app = functions_framework.create_app(  # type: ignore[no-untyped-call]
            "handle", str(PROJECT_DIR / "main.py")
        )
        client: FlaskClient = app.test_client()
        # Tests start once the self-test has passed (as a deployment does, behind
        # its start-up probe); /healthz answers 503 `starting` until then.
        wait_healthy(sys.modules["main"].SERVICE)
        yield client


@pytest.fixture
def make_service() -> Iterator[Callable[..., Service]]:
    """Build Services with settings of their own (``PYEXEC_X="..."`` keywords); each
    is shut down after the test, whatever happens in it."""
    built: list[Service] = []

    def make(**environ: str) -> Service:
        service = Service(load_settings(environ))
        built.append(service)
        return service

    yield make
    for service in built:
        service.executor.shutdown(grace_seconds=0)


@pytest.fixture
def live_server() -> Iterator[Callable[..., LiveServer]]:
    """Start the real server (scripts/serve on a free loopback port, healthy) with
    ``PYEXEC_X="..."`` keywords; each is stopped after the test unless it stopped."""
    with contextlib.ExitStack() as stack:

        def start(**environ: str) -> LiveServer:
            return stack.enter_context(serve(**environ))

        yield start


@pytest.fixture
def api(app_client: FlaskClient) -> Api:
    """A validating client for the service."""
    return Api(app_client)


@pytest.fixture(scope="session")
def service(app_client: FlaskClient) -> Iterator[Service]:
    """The Service object behind the app (main.py's SERVICE); shut down at the end,
    as gunicorn's worker_exit does, so no jail outlives the test run."""
    service: Service = sys.modules["main"].SERVICE
    yield service
    service.executor.shutdown(grace_seconds=0)


def stray_jail_processes(pools: JailPools) -> list[str]:
    """Processes this test run started that are not part of a ready pooled jail.

    Only descendants of this process count (other services may run jails on the
    same machine); a ready jail's nsjail and everything under it is expected.
    """
    listing = subprocess.run(
        ["ps", "-eo", "pid=,ppid=,uid=,comm="], capture_output=True, text=True, check=True
    ).stdout
    rows = [line.split(None, 3) for line in listing.splitlines()]
    parents = {int(pid): int(ppid) for pid, ppid, _, _ in rows}
    pooled = pools.ready_pids()
    me = os.getpid()

    def ancestry(pid: int) -> list[int]:
        chain = []
        while pid > 1:
            chain.append(pid)
            pid = parents.get(pid, 0)
        return chain

    strays = []
    for row in rows:
        chain = ancestry(int(row[0]))
        if me in chain[1:] and not pooled.intersection(chain) and row[3] != "ps":
            strays.append(" ".join(row))
    return strays


def leaked_cgroups(service: Service, wait_seconds: float = 10) -> list[str]:
    """Jail cgroups whose jail is gone (removal after an OOM kill is asynchronous)."""
    deadline = time.monotonic() + wait_seconds
    while True:
        leaked = [
            str(directory)
            for parent in service.executor.cgroups.parents
            for directory in parent.glob("NSJAIL.*")
            if not is_jail_init(int(directory.name.partition(".")[2]))
        ]
        if not leaked or time.monotonic() > deadline:
            return leaked
        time.sleep(0.1)


@pytest.fixture
def leaves_nothing_behind(api: Api, service: Service) -> Iterator[None]:
    """After the test: no jail process survives outside the pool; the service answers."""
    yield
    assert REAPER.wait_idle(timeout=30)
    assert service.executor.pools.wait_full(timeout=60)
    assert stray_jail_processes(service.executor.pools) == []
    assert leaked_cgroups(service) == []
    status, body = api.run_file("hello")
    assert core((status, body)) == (200, {"result": {"hello": "world"}, "stdout": ""})
