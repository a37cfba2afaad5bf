"""Client and AsyncClient against the real service: every method, data in and out,
and every error family a default server can produce. Real jails, real HTTP."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator

import pytest
from live import Server, script
from live import free_port as unused_port

from pyexec_client import (
    AsyncClient,
    Client,
    ClientTimeoutError,
    ConnectionFailedError,
    ExecuteResult,
    RequestError,
    RunResult,
    ScriptError,
    ServerError,
)


@pytest.fixture
def client(server: Server) -> Iterator[Client]:
    with Client(server.base, timeout=30) as client:
        yield client


def test_health_says_the_sandbox_works(client: Client) -> None:
    health = client.health()
    assert health.status == "ok"
    assert health.cgroups in ("v1", "v2", "none")
    # light and heavy always; chart too when the server has a pool for matplotlib.
    assert {"light", "heavy"} <= set(health.pool)


def test_execute_returns_the_result_and_what_was_printed(client: Client) -> None:
    answer = client.execute(script("hello"))
    assert isinstance(answer, ExecuteResult)
    assert answer.result == {"hello": "world"}
    assert (answer.stdout, answer.stderr) == ("hello from the jail\n", "")
    assert (answer.stdout_truncated, answer.stderr_truncated) == (False, False)
    assert answer.usage.wall_time_ms > 0
    assert answer.limits.timeout_seconds > 0
    assert (answer.files, answer.files_collected) == ((), None)


def test_input_absent_none_and_a_value_reach_main_as_sent(client: Client) -> None:
    assert client.execute(script("echo_input")).result == {"got": "no input"}
    assert client.execute(script("echo_input"), input=None).result == {"got": None}
    value = {"prices": [12.5, 9.99], "name": "ünïcode"}
    answer = client.execute(script("echo_input"), input=value)
    assert answer.result == {"got": value}
    assert answer.stderr == "stderr line\n"


def test_limits_are_sent_and_reported_back(client: Client) -> None:
    answer = client.execute(script("hello"), timeout_seconds=3.5, cpu_seconds=2, memory_mb=128)
    assert (answer.limits.timeout_seconds, answer.limits.cpu_seconds) == (3.5, 2)
    assert answer.limits.memory_mb == 128


def test_files_go_in_as_text_and_bytes_and_come_back_decoded(client: Client) -> None:
    blob = bytes(range(256))
    answer = client.execute(
        script("transform_files"),
        files={"numbers.txt": "1\n2\n39\n", "blob.bin": blob},
        output_files=["total.txt", "*.bin"],
    )
    assert answer.result == 42
    assert answer.files_collected is True
    returned = {entry.path: entry.content for entry in answer.files}
    assert returned == {"total.txt": b"42", "blob.bin": blob, "reversed.bin": blob[::-1]}


def test_run_code_runs_code_without_main_as_a_program(client: Client) -> None:
    answer = client.run_code(script("snippet_writes"), output_files=["*.txt"])
    assert isinstance(answer, RunResult)
    assert not isinstance(answer, ExecuteResult)
    assert answer.stdout == "done\n"
    assert [(f.path, f.content) for f in answer.files] == [
        ("report.txt", b"written by a snippet\n")
    ]


def test_a_failing_snippet_shows_its_own_line_numbers(client: Client) -> None:
    with pytest.raises(ScriptError) as caught:
        client.run_code(script("snippet_fails"))
    error = caught.value
    assert error.kind == "exception"
    assert error.stdout == "snippet ran as __main__\n"
    assert error.stderr == "to stderr\n"
    assert error.traceback is not None
    assert 'File "snippet.py", line 6, in <module>' in error.traceback
    assert error.traceback.endswith("IndexError: list index out of range\n")


def test_a_script_failure_carries_its_output_traceback_and_files(client: Client) -> None:
    with pytest.raises(ScriptError) as caught:
        client.execute(script("raises_after_output"), output_files=["*.txt"])
    error = caught.value
    assert (error.status, error.kind) == (400, "exception")
    assert str(error) == "ValueError in main(): bad value"
    assert error.stdout == "before the failure\n"
    assert error.stderr == "warning: about to fail\n"
    assert error.traceback is not None
    assert "ValueError: bad value" in error.traceback
    assert error.files_collected is True
    assert [(f.path, f.content) for f in error.files] == [("partial.txt", b"left behind")]
    assert error.usage is not None


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("def main(:\n", "syntax_error"),
        ("x = 1\n", "no_main"),
        ("def main():\n    return {1, 2}\n", "invalid_result"),
        ("import sys\ndef main():\n    sys.exit(3)\n", "exited"),
    ],
)
def test_other_script_failures_are_script_errors_too(
    client: Client, source: str, kind: str
) -> None:
    with pytest.raises(ScriptError) as caught:
        client.execute(source)
    assert caught.value.kind == kind


def test_coerce_result_turns_a_dataframe_into_records_with_null_for_nan(client: Client) -> None:
    answer = client.execute(script("dataframe_nan"), coerce_result=True)
    assert answer.result == [
        {"city": "Lyon", "rain_mm": 12.5},
        {"city": "Oslo", "rain_mm": None},
    ]


@pytest.mark.parametrize("coerce_result", [None, False])
def test_without_coerce_result_a_dataframe_is_an_invalid_result(
    client: Client, coerce_result: bool | None
) -> None:
    with pytest.raises(ScriptError) as caught:
        client.execute(script("dataframe_nan"), coerce_result=coerce_result)
    assert caught.value.kind == "invalid_result"
    assert "coerce_result" in str(caught.value)


def test_runtime_lists_the_jails_python_packages_and_limits(client: Client) -> None:
    runtime = client.runtime()
    assert re.fullmatch(r"3\.\d+\.\d+\S*", runtime.python)
    names = {package.name.lower() for package in runtime.packages}
    assert {"numpy", "pandas"} <= names
    assert runtime.preimported == ("numpy", "pandas")  # the server's default
    for limit in (
        runtime.limits.timeout_seconds,
        runtime.limits.cpu_seconds,
        runtime.limits.memory_mb,
    ):
        assert 0 < limit.default <= limit.maximum
    # What a script imports is what the runtime lists.
    seen = client.execute("import pandas\n\n\ndef main():\n    return pandas.__version__\n")
    assert seen.result == runtime.version_of("pandas")


def test_a_timeout_names_the_field_that_raises_it_and_the_maximum(client: Client) -> None:
    maximum = client.runtime().limits.timeout_seconds.maximum
    with pytest.raises(ScriptError) as caught:
        client.execute(script("sleep"), input=30, timeout_seconds=1)
    error = caught.value
    assert (error.kind, error.field, error.maximum) == ("timeout", "timeout_seconds", maximum)
    assert "Raise timeout_seconds" in str(error)


def test_a_missing_module_is_named(client: Client) -> None:
    with pytest.raises(ScriptError) as caught:
        client.execute("import no_such_module_here\n\n\ndef main():\n    return 1\n")
    error = caught.value
    assert (error.kind, error.module) == ("exception", "no_such_module_here")
    assert (error.field, error.maximum) == (None, None)


def test_a_limit_above_the_servers_maximum_is_a_request_error_naming_it(client: Client) -> None:
    with pytest.raises(RequestError) as caught:
        client.execute(script("hello"), timeout_seconds=10_000)
    error = caught.value
    assert (error.status, error.kind, error.field) == (400, "bad_request", "timeout_seconds")
    assert error.maximum is not None


def test_a_file_path_the_service_refuses_is_a_request_error(client: Client) -> None:
    with pytest.raises(RequestError) as caught:
        client.execute(script("hello"), files={"ok.txt": "x", "../escape.txt": "y"})
    assert (caught.value.field, caught.value.index) == ("files", 1)


def test_an_endpoints_url_instead_of_the_base_url_is_a_server_error_saying_so(
    server: Server,
) -> None:
    with Client(f"{server.base}/execute") as wrong, pytest.raises(ServerError) as caught:
        wrong.execute(script("hello"))
    assert caught.value.status == 404
    assert "wrong URL?" in str(caught.value)


def test_no_service_at_the_url_is_a_connection_error_after_retries() -> None:
    started = time.monotonic()
    nowhere = Client(f"http://127.0.0.1:{unused_port()}", timeout=3)
    with nowhere, pytest.raises(ConnectionFailedError) as caught:
        nowhere.health()
    assert caught.value.request_sent is False
    assert caught.value.attempts == 3  # waits of 0.5 and 1 s fit in 3 s; 2 s more does not
    assert "Cannot connect to" in str(caught.value)
    assert time.monotonic() - started < 3


def test_the_client_timeout_is_not_retried_because_the_script_may_have_run(
    server: Server,
) -> None:
    started = time.monotonic()
    impatient = Client(server.base, timeout=1.5)
    with impatient, pytest.raises(ClientTimeoutError) as caught:
        impatient.execute(script("sleep"), input=3)
    elapsed = time.monotonic() - started
    assert caught.value.attempts == 1
    assert 1.4 < elapsed < 2.5
    assert "may have run" in str(caught.value)


def test_the_async_twin_does_the_same(server: Server) -> None:
    async def scenario() -> None:
        async with AsyncClient(server.base, timeout=30) as client:
            health, answer, snippet, runtime, frame = await asyncio.gather(
                client.health(),
                client.execute(script("echo_input"), input=[1, 2]),
                client.run_code("print('async')\n"),
                client.runtime(),
                client.execute(script("dataframe_nan"), coerce_result=True),
            )
            assert health.status == "ok"
            assert answer.result == {"got": [1, 2]}
            assert snippet.stdout == "async\n"
            assert runtime.version_of("numpy") is not None
            assert frame.result[1] == {"city": "Oslo", "rain_mm": None}
            with pytest.raises(ScriptError) as caught:
                await client.execute(script("raises_after_output"))
            assert caught.value.stdout == "before the failure\n"
            with pytest.raises(RequestError):
                await client.execute(script("hello"), memory_mb=1)

    asyncio.run(scenario())
