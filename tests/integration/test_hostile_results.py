"""Scripts that attack the answer itself: odd strings, forged reports, lying exit
codes, forks, huge and self-redefining values. Each gets a valid, truthful answer."""

from __future__ import annotations

import time

import pytest
from flask.testing import FlaskClient

from pyexec.api import Service
from pyexec.jail import Jail
from tests.support import Api, core

pytestmark = pytest.mark.usefixtures("leaves_nothing_behind")


def test_lone_surrogates_in_the_result_and_output(api: Api, app_client: FlaskClient) -> None:
    status, body = api.run_file("lone_surrogates")
    assert status == 200
    assert body["result"] == {"text": "\ud800", "\udfff": 1}
    assert body["stdout"] == "\ufffd printed\n"
    status, body = api.run_file("exception_lone_surrogate")
    assert (status, body["kind"]) == (400, "exception")


def test_a_script_that_holds_every_fd_still_gets_its_result(api: Api) -> None:
    # Its result needs escapes, which the runner writes without loading _json when
    # no fd is left to load it with.
    status, body = api.run_file("hold_every_fd")
    assert status == 200, body
    assert body["result"] == {"held": True, "text": "line one\nline two \u00e9 \U0001f600"}


def test_deeply_nested_body_is_invalid_json_not_a_500(api: Api) -> None:
    status, body = api.post(data="[" * 200_000, content_type="application/json")
    assert (status, body["kind"]) == (400, "invalid_json")


NOT_JSON_NUMBERS = [
    pytest.param(b'{"script": "def main(): return 1", "timeout_seconds": NaN}', "NaN", id="NaN"),
    pytest.param(b'{"script": Infinity}', "Infinity", id="Infinity"),
    pytest.param(
        b'{"script": "def main(): return 1", "x": {"y": [-Infinity]}}', "-Infinity", id="-Infinity"
    ),
    pytest.param(
        b'{"script": "def main(): return 1", "timeout_seconds": 1e999}', "1e999", id="1e999"
    ),
]


@pytest.mark.parametrize(("raw", "named"), NOT_JSON_NUMBERS)
def test_nan_and_infinity_are_invalid_json_and_take_no_jail(
    api: Api, service: Service, monkeypatch: pytest.MonkeyPatch, raw: bytes, named: str
) -> None:
    taken: list[str] = []
    acquire = service.executor.pools.acquire

    def counting_acquire(script: str, memory_mb: int | None = None) -> tuple[Jail, bool]:
        taken.append(script)
        return acquire(script, memory_mb)

    monkeypatch.setattr(service.executor.pools, "acquire", counting_acquire)
    status, body = api.post(data=raw, content_type="application/json")
    assert (status, body["kind"]) == (400, "invalid_json")
    assert named in body["error"]
    assert taken == []
    assert core(api.run_file("hello")) == (200, {"result": {"hello": "world"}, "stdout": ""})


@pytest.mark.parametrize("name", ["forge_nan_report", "forge_bad_fields"])
def test_forged_reports_never_make_an_invalid_answer(api: Api, name: str) -> None:
    status, body = api.run_file(name)
    assert status == 400
    assert body["kind"] in ("crashed", "exited")
    assert body.get("error") != "fake"


def test_a_forged_20000_frame_report_is_untrusted_and_costs_little_cpu(api: Api) -> None:
    # The session's app runs in this process, so this process's CPU is the service's
    # (plus the test client's). Trusting the report cost about a second (the service's
    # schema validation of 20,000 frames, then the client's); refused before its
    # validation, it costs tens of milliseconds, as an honest report of its size does.
    started = time.process_time()
    status, body = api.run_file("forge_huge_traceback")
    spent = time.process_time() - started
    assert status == 400
    assert body["kind"] in ("crashed", "exited")
    assert body.get("error") != "fake"
    assert "traceback" not in body
    assert spent < 0.5


def test_exit_code_137_is_an_exit_not_a_memory_limit(api: Api) -> None:
    status, body = api.run_file("exit_137")
    assert (status, body["kind"], body["exit_code"]) == (400, "exited", 137)


def test_a_forked_child_returning_from_main_does_not_answer(api: Api) -> None:
    status, body = api.run_file("fork_both_return")
    assert (status, body["result"]) == (200, {"child": False})


def test_integer_too_long_for_json(api: Api) -> None:
    status, body = api.run_file("huge_int")
    assert (status, body["kind"], body["path"]) == (400, "invalid_result", "result['big']")


def test_subclasses_cannot_change_or_break_the_result(api: Api) -> None:
    status, body = api.run_file("evil_subclasses")
    assert status == 200
    assert body["result"] == [3, {"a": 1}, "kept"]


def test_exception_whose_str_raises(api: Api) -> None:
    status, body = api.run_file("exception_str_raises")
    assert (status, body["kind"]) == (400, "exception")
    assert body["exception"]["type"] == "Weird"
    assert "could not be produced" in body["exception"]["message"]


def test_sys_exit_with_a_bool_or_a_huge_int(api: Api) -> None:
    status, body = api.run_file("exit_true")
    assert (status, body["kind"], body["exit_code"]) == (400, "exited", 1)
    status, body = api.run_file("exit_huge")
    assert (status, body["kind"], body["exit_code"]) == (400, "exited", 1)
    assert "out of range" in body["error"]


@pytest.mark.parametrize("name", ["forge_usage", "forge_dump_infinity"])
def test_a_script_rewriting_the_runner_cannot_break_the_answer(api: Api, name: str) -> None:
    status, body = api.run_file(name)
    # The schema check in Api.post proves the answer is valid; no Infinity, no 500.
    assert status in (200, 400)
    usage = body["usage"]
    assert 0 <= usage["cpu_time_ms"] < 2**53
    # Peak memory comes from the jail's cgroup, which the script cannot rewrite.
    assert 1024 * 1024 < usage["peak_memory_bytes"] < 256 * 1024 * 1024


def test_lowered_recursion_limit_does_not_crash_the_runner(api: Api) -> None:
    status, body = api.run_file("low_recursion_limit")
    assert status == 200
    depth, value = 0, body["result"]
    while value:
        depth, value = depth + 1, value[0]
    assert depth == 25
    assert "<string>" not in body["stderr"]


def test_a_huge_exception_type_name_is_cut(api: Api) -> None:
    status, body = api.run_file("long_exception_name")
    assert (status, body["kind"]) == (400, "exception")
    assert len(body["exception"]["type"]) == 200
