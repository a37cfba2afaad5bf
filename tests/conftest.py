"""Fixtures: the real app (functions-framework over main.py) and a clean-up check.

Tests talk to the service only through HTTP via functions-framework's Flask app,
and every script runs in a real nsjail jail.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import functions_framework
import pytest
from flask.testing import FlaskClient

from tests.support import CANARY, PROJECT_DIR, Api

# Short limits keep the limit tests quick; set before main.py reads them.
os.environ.setdefault("PYEXEC_TIMEOUT", "4")
os.environ.setdefault("PYEXEC_CPU_SECONDS", "2")
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


def jailed_processes() -> list[str]:
    """Processes of the jail uid (65534) or nsjail still alive on this machine."""
    listing = subprocess.run(
        ["ps", "-eo", "pid=,uid=,comm="], capture_output=True, text=True, check=True
    ).stdout
    return [
        line.strip()
        for line in listing.splitlines()
        if line.split()[1] == "65534" or line.split()[2] == "nsjail"
    ]


@pytest.fixture
def leaves_nothing_behind(api: Api) -> Iterator[None]:
    """After the test: no jail process survives and the service still answers."""
    yield
    assert jailed_processes() == []
    status, body = api.run_file("hello")
    assert (status, body) == (200, {"result": {"hello": "world"}, "stdout": ""})
