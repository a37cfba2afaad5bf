"""The ``pyexec`` command line: what it parses to, what it refuses, and the exit code of
each error family. No server (the live CLI tests are in test_live_cli.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyexec_client import (
    AuthError,
    ClientTimeoutError,
    ConnectionFailedError,
    OverloadedError,
    PyexecError,
    RequestError,
    ScriptError,
    ServerError,
    UnavailableError,
)
from pyexec_client._cli import exit_code_for
from pyexec_client._cli_args import (
    DEFAULT_HTTP_TIMEOUT,
    HealthCommand,
    RunCommand,
    RuntimeCommand,
    UsageError,
    parse_command,
    parse_file_spec,
    parse_input,
)

URL = "http://localhost:8080"


def run_command(*argv: str, environ: dict[str, str] | None = None) -> RunCommand:
    command = parse_command(["run", *argv], environ or {"PYEXEC_URL": URL})
    assert isinstance(command, RunCommand)
    return command


def test_a_plain_run_uses_pyexec_url_and_the_defaults() -> None:
    command = run_command("script.py")
    assert command.connection.url == URL
    assert command.connection.api_key is None
    assert command.connection.http_timeout == DEFAULT_HTTP_TIMEOUT
    assert command.connection.json is False
    assert (command.source, command.code, command.input_text) == ("script.py", False, None)
    assert (command.files, command.output_files, command.out) == ((), (), None)
    assert (command.timeout_seconds, command.cpu_seconds, command.memory_mb) == (None, None, None)
    assert command.coerce_result is False


def test_every_option_is_parsed_with_its_type() -> None:
    command = run_command(
        "-",
        "--url",
        "http://other:9000",
        "--input",
        '{"a": 1}',
        "--file",
        "data/in.csv",
        "--file",
        "local.bin:remote/name.bin",
        "--output-files",
        "*.csv",
        "--output-files",
        "out/**",
        "--out",
        "results",
        "--timeout-seconds",
        "2.5",
        "--cpu-seconds",
        "3",
        "--memory-mb",
        "128",
        "--http-timeout",
        "30",
        "--coerce-result",
        "--json",
    )
    assert command.connection.url == "http://other:9000"
    assert command.connection.http_timeout == 30.0
    assert command.connection.json is True
    assert command.source == "-"
    assert command.input_text == '{"a": 1}'
    assert command.files == (
        (Path("data/in.csv"), "in.csv"),
        (Path("local.bin"), "remote/name.bin"),
    )
    assert command.output_files == ("*.csv", "out/**")
    assert command.out == Path("results")
    assert (command.timeout_seconds, command.cpu_seconds, command.memory_mb) == (2.5, 3, 128)
    assert command.coerce_result is True


def test_the_api_key_comes_from_the_environment_only() -> None:
    command = run_command("s.py", environ={"PYEXEC_URL": URL, "PYEXEC_API_KEY": "k" * 24})
    assert command.connection.api_key == "k" * 24
    with pytest.raises(SystemExit) as refused:
        parse_command(["run", "s.py", "--api-key", "k" * 24], {"PYEXEC_URL": URL})
    assert refused.value.code == 2


def test_health_takes_the_connection_options() -> None:
    command = parse_command(["health", "--json"], {"PYEXEC_URL": URL})
    assert isinstance(command, HealthCommand)
    assert command.connection.json is True


def test_runtime_takes_the_connection_options() -> None:
    command = parse_command(["runtime", "--http-timeout", "5"], {"PYEXEC_URL": URL})
    assert isinstance(command, RuntimeCommand)
    assert (command.connection.url, command.connection.http_timeout) == (URL, 5.0)
    assert command.connection.json is False


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "s.py"], "no service URL"),
        (["run", "s.py", "--url", URL, "--code", "--input", "1"], "--code runs code"),
        (["run", "s.py", "--url", URL, "--code", "--coerce-result"], "--code runs code"),
        (["runtime"], "no service URL"),
        (["run", "s.py", "--url", URL, "--out", "d"], "--output-files"),
        (["run", "s.py", "--url", URL, "--file", ":x"], "LOCAL:REMOTE"),
        (["run", "s.py", "--url", URL, "--http-timeout", "0"], "positive"),
    ],
)
def test_command_lines_that_cannot_run_are_refused_with_the_fix(
    argv: list[str], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        parse_command(argv, {})


@pytest.mark.parametrize(
    "argv",
    [
        ["run"],
        ["run", "s.py", "--cpu-seconds", "1.5"],
        ["runtime", "s.py"],
        ["health", "--coerce-result"],
        ["frobnicate"],
        [],
    ],
)
def test_argparse_refuses_malformed_command_lines_with_exit_code_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as refused:
        parse_command(argv, {"PYEXEC_URL": URL})
    assert refused.value.code == 2


def test_a_file_spec_splits_at_the_last_colon() -> None:
    assert parse_file_spec("a.txt") == (Path("a.txt"), "a.txt")
    assert parse_file_spec("dir/a.txt:b.txt") == (Path("dir/a.txt"), "b.txt")
    assert parse_file_spec("odd:name.txt:inner/b.txt") == (Path("odd:name.txt"), "inner/b.txt")


def test_input_is_json_inline_or_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "in.json").write_text('[1, "two", null]')
    assert parse_input('{"a": [1, 2]}', Path.read_text) == {"a": [1, 2]}
    assert parse_input("null", Path.read_text) is None
    assert parse_input(f"@{tmp_path / 'in.json'}", Path.read_text) == [1, "two", None]
    with pytest.raises(UsageError, match="not JSON"):
        parse_input("{nope", Path.read_text)
    with pytest.raises(UsageError, match="cannot read"):
        parse_input(f"@{tmp_path / 'missing.json'}", Path.read_text)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ScriptError("x", status=400, kind="exception", body={}), 1),
        (RequestError("x", status=400, kind="bad_request"), 2),
        (AuthError("x", status=401, kind="unauthorized"), 3),
        (OverloadedError("x", status=503, kind="overloaded"), 4),
        (UnavailableError("x", status=503, kind="sandbox_unavailable"), 4),
        (ConnectionFailedError("x", request_sent=False), 5),
        (ClientTimeoutError("x"), 5),
        (ServerError("x", status=500, kind="internal_error"), 6),
        (PyexecError("x"), 6),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, PyexecError) else str(value),
)
def test_each_error_family_has_its_exit_code(error: PyexecError, code: int) -> None:
    assert exit_code_for(error) == code
