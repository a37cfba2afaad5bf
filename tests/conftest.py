"""Fixtures: the real app (functions-framework over main.py) and a clean-up check.

Tests talk to the service only through HTTP via functions-framework's Flask app,
and every script runs in a real nsjail jail.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import functions_framework
import pytest
from flask.testing import FlaskClient

from pyexec.api import Service
from pyexec.cgroups import is_jail_init
from pyexec.pool import JailPools
from pyexec.spawn import REAPER
from tests.support import CANARY, PROJECT_DIR, Api, core

# Short limits keep the limit tests quick; set before main.py reads them.
os.environ.setdefault("PYEXEC_TIMEOUT", "4")
os.environ.setdefault("PYEXEC_CPU_SECONDS", "2")
# The session app queues rather than refuses, so concurrent tests see every answer;
# test_production checks the 503 path with a service of its own.
os.environ.setdefault("PYEXEC_MAX_QUEUE", "64")
os.environ.setdefault("PYEXEC_QUEUE_WAIT", "60")
# A secret in the service's environment that no script may see.
os.environ["PYEXEC_TEST_CANARY"] = CANARY


@pytest.fixture(scope="session")
def app_client() -> FlaskClient:
    """The real service app, created once, as functions-framework creates it."""
    app = functions_framework.create_app(  # type: ignore[no-untyped-call]
        "handle", str(PROJECT_DIR / "main.py")
    )
    client: FlaskClient = app.test_client()
    return client


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
