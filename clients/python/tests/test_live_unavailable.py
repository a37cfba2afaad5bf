"""A service whose sandbox cannot run (its self-test failed): UnavailableError at once,
never retried, from every method and from the CLI (exit code 4)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from live import run_cli, script, serve_unhealthy

from pyexec_client import Client, UnavailableError


@pytest.fixture(scope="module")
def broken() -> Iterator[str]:
    with serve_unhealthy(PYEXEC_SANDBOX_PYTHON="/nonexistent/python") as url:
        yield url


def test_health_and_execute_raise_unavailable_without_retrying(broken: str) -> None:
    with Client(broken) as client:
        for call in (client.health, client.runtime, lambda: client.execute(script("hello"))):
            started = time.monotonic()
            with pytest.raises(UnavailableError) as caught:
                call()
            error = caught.value
            assert (error.status, error.kind, error.attempts) == (503, "sandbox_unavailable", 1)
            assert error.retry_after == 10.0  # the service says 30; the client caps it
            assert time.monotonic() - started < 1
            assert "make setup" in str(error)


def test_the_cli_exits_4_and_says_why(broken: str) -> None:
    health = run_cli("health", "--url", broken)
    assert health.returncode == 4
    assert "sandbox_unavailable" in health.stderr
    as_json = run_cli("health", "--url", broken, "--json")
    assert as_json.returncode == 4
    assert '"kind": "sandbox_unavailable"' in as_json.stdout
    runtime = run_cli("runtime", "--url", broken)
    assert runtime.returncode == 4
    assert "sandbox_unavailable" in runtime.stderr
