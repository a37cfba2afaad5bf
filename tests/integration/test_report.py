"""What every answer reports: stderr, truncation flags, usage, limits, exit status;
and per-request limits within the server's maxima."""

from __future__ import annotations

import resource
import time
from typing import Any

import pytest

from tests.support import Api, script


def test_stderr_is_separate_and_holds_only_the_script_s_output(api: Api) -> None:
    status, body = api.run_file("streams")
    assert status == 200
    assert body["stdout"] == "to stdout\n"
    lines = body["stderr"].splitlines()
    assert lines[0] == "to stderr"
    assert "UserWarning: careful" in body["stderr"]
    for internal in ("nsjail", "[I]", "<string>", "runner"):
        assert internal not in body["stderr"]
    assert (body["stdout_truncated"], body["stderr_truncated"]) == (False, False)


def test_stderr_flood_is_cut_and_flagged(api: Api) -> None:
    status, body = api.run_file("stderr_flood")
    assert status == 200
    assert body["stderr_truncated"] is True
    assert len(body["stderr"]) == 1024 * 1024


def test_an_endless_stderr_flood_is_cut_and_costs_the_service_little(api: Api) -> None:
    """Past its cap stderr is read one pipe's worth every 20 ms, not as fast as the
    script writes: the drain in this (the request's) thread once took 0.6 s of CPU
    per second of flood. The script is not stopped for it: its time limit ends it."""
    started = time.thread_time()
    status, body = api.post({"script": script("stderr_forever"), "timeout_seconds": 2})
    spent = time.thread_time() - started
    assert (status, body["kind"]) == (400, "timeout")
    assert body["stderr_truncated"] is True
    assert len(body["stderr"]) == 1024 * 1024
    assert spent < 0.4, f"{spent:.2f} s of the service's CPU"


def test_usage_counts_cpu_and_memory(api: Api) -> None:
    status, body = api.run_file("busy_cpu")
    assert status == 200
    assert body["usage"]["cpu_time_ms"] >= 250
    assert body["usage"]["wall_time_ms"] >= body["usage"]["cpu_time_ms"] * 0.5
    status, body = api.run_file("allocate_100mb")
    assert status == 200
    assert body["usage"]["peak_memory_bytes"] >= 100 * 1024 * 1024


def test_usage_is_reported_for_failures_too(api: Api) -> None:
    # A generous wall-time limit: on a loaded machine 2 s of CPU can take more than 4 s.
    status, body = api.post({"script": script("sigxcpu_ignored"), "timeout_seconds": 30})
    assert (status, body["kind"]) == (400, "cpu_limit")
    assert body["usage"]["cpu_time_ms"] >= 1000
    status, body = api.run_file("sleep_forever")
    assert (status, body["kind"]) == (400, "timeout")
    assert body["usage"]["wall_time_ms"] >= 4000


def test_limits_in_force_are_reported(api: Api) -> None:
    _, body = api.run_file("hello")
    assert body["limits"] == {"timeout_seconds": 4.0, "cpu_seconds": 2, "memory_mb": 256}


def run_with(api: Api, name: str, **limits: Any) -> tuple[int, dict[str, Any]]:
    return api.post({"script": script(name), **limits})


def test_request_timeout_is_applied(api: Api) -> None:
    status, body = run_with(api, "sleep_two_seconds", timeout_seconds=0.5)
    assert (status, body["kind"]) == (400, "timeout")
    assert "time limit of 0.5 s" in body["error"]
    assert body["signal"] == "SIGKILL"
    status, body = run_with(api, "sleep_two_seconds", timeout_seconds=6)
    assert (status, body["result"]) == (200, "slept")
    assert body["limits"]["timeout_seconds"] == 6


def test_request_cpu_limit_is_applied(api: Api) -> None:
    status, body = run_with(api, "sigxcpu_ignored", cpu_seconds=1, timeout_seconds=10)
    assert (status, body["kind"]) == (400, "cpu_limit")
    assert "CPU time limit of 1 s" in body["error"]
    assert body["limits"]["cpu_seconds"] == 1


def test_request_memory_limit_is_applied(api: Api) -> None:
    status, body = run_with(api, "allocate_200mb", memory_mb=128)
    assert (status, body["kind"]) == (400, "memory_limit")
    assert "memory limit of 128 MB" in body["error"]
    status, body = run_with(api, "allocate_200mb", memory_mb=512)
    assert (status, body["result"]) == (200, 200 * 1024 * 1024)
    assert body["limits"]["memory_mb"] == 512


def test_cpu_limit_holds_for_the_whole_jail_not_per_process(api: Api) -> None:
    status, body = run_with(api, "cpu_in_children", cpu_seconds=1, timeout_seconds=10)
    assert (status, body["kind"]) == (400, "cpu_limit")
    assert body["usage"]["cpu_time_ms"] >= 1000


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("timeout_seconds", 61, '"timeout_seconds" is 61; this server allows at most 60.0.'),
        ("cpu_seconds", 100, '"cpu_seconds" is 100; this server allows at most 60.'),
        ("memory_mb", 4096, '"memory_mb" is 4096; this server allows at most 1024.'),
        ("memory_mb", 16, '"memory_mb" is 16; it must be at least 64.'),
        ("timeout_seconds", 0, '"timeout_seconds" is 0; it must be more than 0.'),
        ("cpu_seconds", 1.5, '"cpu_seconds" must be an integer, not a number.'),
        ("timeout_seconds", "5", '"timeout_seconds" must be a number, not a string.'),
    ],
)
def test_limits_over_the_maximum_or_malformed_are_400(
    api: Api, field: str, value: Any, message: str
) -> None:
    status, body = run_with(api, "hello", **{field: value})
    assert (status, body["kind"]) == (400, "bad_request")
    assert body["error"] == message
    assert body["field"] == field
    if "at most" in message:
        assert body["maximum"] == float(message.rsplit(" ", 1)[1].rstrip("."))


@pytest.mark.parametrize("name", ["segfault", "os_exit"])
def test_the_peak_memory_of_a_run_that_died_is_the_jail_s_never_the_service_s(
    api: Api, name: str
) -> None:
    """nsjail's own rusage carries the service's size from before the exec; a run that
    ends without the runner's report must not show it."""
    status, body = api.run_file(name)
    assert status == 400
    service_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert 0 < body["usage"]["peak_memory_bytes"] < min(32 * 1024 * 1024, service_bytes)


def test_the_peak_memory_of_an_oom_killed_run_is_near_its_limit_not_above(api: Api) -> None:
    status, body = api.run_file("memory_bomb_python")
    assert (status, body["kind"]) == (400, "memory_limit")
    limit = body["limits"]["memory_mb"] * 1024 * 1024
    assert limit // 2 < body["usage"]["peak_memory_bytes"] <= limit
