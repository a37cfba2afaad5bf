"""The ``pyexec`` command: ``pyexec run FILE|-``, ``pyexec health``, ``pyexec runtime``
and ``pyexec mcp`` (an MCP server on stdio, the ``mcp`` extra: pyexec_client.mcp_server).

``run``: the script's stdout and stderr go to this process's stdout and stderr, then
the result as one line of JSON on stdout. ``runtime``: the service's answer, as JSON.
The command's own messages go to stderr, prefixed ``pyexec:``. The exit code says
what happened (EXIT_CODES).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from pyexec_client._cli_args import (
    Connection,
    HealthCommand,
    McpCommand,
    RunCommand,
    RuntimeCommand,
    UsageError,
    parse_command,
    parse_input,
)
from pyexec_client._client import Client
from pyexec_client._outfiles import UnsafeOutputError, write_files
from pyexec_client._request import UNSET
from pyexec_client._results import ExecuteResult, OutputFile, RunResult
from pyexec_client.errors import (
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

EXIT_OK = 0
EXIT_SCRIPT_FAILED = 1
EXIT_BAD_REQUEST = 2  # also the command line and local files (argparse's own code)
EXIT_AUTH = 3
EXIT_UNAVAILABLE = 4
EXIT_CONNECTION = 5
EXIT_SERVER = 6

EXIT_CODES: Mapping[type[PyexecError], int] = {
    ScriptError: EXIT_SCRIPT_FAILED,
    RequestError: EXIT_BAD_REQUEST,
    AuthError: EXIT_AUTH,
    OverloadedError: EXIT_UNAVAILABLE,
    UnavailableError: EXIT_UNAVAILABLE,
    ConnectionFailedError: EXIT_CONNECTION,
    ClientTimeoutError: EXIT_CONNECTION,
    ServerError: EXIT_SERVER,
}


def exit_code_for(error: PyexecError) -> int:
    """The exit code for a client error (EXIT_SERVER for one the table does not know)."""
    for cls in type(error).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return EXIT_SERVER


def say(message: str) -> None:
    """One message of the command itself, on stderr."""
    print(f"pyexec: {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """The console script; returns the exit code."""
    try:
        command = parse_command(sys.argv[1:] if argv is None else argv, os.environ)
        if isinstance(command, McpCommand):
            return _mcp(command)
        with _client(command.connection) as client:
            if isinstance(command, HealthCommand):
                return _health(client, command.connection)
            if isinstance(command, RuntimeCommand):
                return _runtime(client, command.connection)
            return _run(client, command)
    except UsageError as exc:
        say(str(exc))
        return EXIT_BAD_REQUEST


def _mcp(command: McpCommand) -> int:
    """``pyexec mcp``, from pyexec_client.mcp_server: imported only here, since it
    needs the ``mcp`` extra."""
    try:
        server = importlib.import_module("pyexec_client.mcp_server")
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.partition(".")[0] not in ("mcp", "mcp_types"):
            raise
        raise UsageError(
            "pyexec mcp needs the mcp extra: pip install 'pyexec-client[mcp]'"
        ) from exc
    code: int = server.run_command(command)
    return code


def _client(connection: Connection) -> Client:
    try:
        return Client(connection.url, api_key=connection.api_key, timeout=connection.http_timeout)
    except ValueError as exc:  # a URL or a key the client refuses
        raise UsageError(str(exc)) from exc


def _health(client: Client, connection: Connection) -> int:
    try:
        health = client.health()
    except PyexecError as error:
        return _failed(error, connection.json)
    if connection.json:
        _print_json(dataclasses.asdict(health))
    else:
        pool = ", ".join(f"{name} {count}" for name, count in health.pool.items())
        print(f"{health.status}: cgroups {health.cgroups}, warm jails: {pool}")
    return EXIT_OK


def _runtime(client: Client, connection: Connection) -> int:
    """The answer of GET /runtime as the service gave it: indented for reading, or on
    one line with --json."""
    try:
        runtime = client.runtime()
    except PyexecError as error:
        return _failed(error, connection.json)
    if connection.json:
        _print_json(runtime.raw)
    else:
        print(json.dumps(runtime.raw, ensure_ascii=False, indent=2), flush=True)
    return EXIT_OK


def _read_local(command: RunCommand) -> tuple[str, dict[str, str | bytes]]:
    """The script's source and the files to send; UsageError if one cannot be read."""
    try:
        source = (
            sys.stdin.read()
            if command.source == "-"
            else Path(command.source).read_text(encoding="utf-8")
        )
        files: dict[str, str | bytes] = {
            remote: local.read_bytes() for local, remote in command.files
        }
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read a local file: {exc}") from exc
    return source, files


def _run(client: Client, command: RunCommand) -> int:
    source, files = _read_local(command)
    limits: dict[str, Any] = {
        "files": files or None,
        "output_files": command.output_files or None,
        "timeout_seconds": command.timeout_seconds,
        "cpu_seconds": command.cpu_seconds,
        "memory_mb": command.memory_mb,
    }
    try:
        if command.code:
            answer: RunResult = client.run_code(source, **limits)
        else:
            given = command.input_text
            value = UNSET if given is None else parse_input(given, _read_text)
            coerce = True if command.coerce_result else None
            answer = client.execute(source, input=value, coerce_result=coerce, **limits)
    except ScriptError as error:
        if not command.connection.json:
            _echo_streams(error.stdout, error.stderr)
        code = _failed(error, command.connection.json)
        # The files main() left when it raised help to see why; the failure stays
        # the exit code.
        _write_outputs(command, error.files)
        return code
    except PyexecError as error:
        return _failed(error, command.connection.json)
    if command.connection.json:
        _print_json(answer.raw)
    else:
        _echo_streams(answer.stdout, answer.stderr)
        if isinstance(answer, ExecuteResult):
            _print_json(answer.result)
        _note_truncation(answer)
    return _write_outputs(command, answer.files)


def _read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _echo_streams(stdout: str, stderr: str) -> None:
    """The script's own output, each stream on its own; a result printed after it
    starts on a line of its own."""
    _write(sys.stdout, stdout)
    _write(sys.stderr, stderr)


def _write(stream: TextIO, text: str) -> None:
    if text:
        stream.write(text if text.endswith("\n") else text + "\n")
        stream.flush()


def _print_json(value: object) -> None:
    print(json.dumps(value, ensure_ascii=False), flush=True)


def _note_truncation(answer: RunResult) -> None:
    for name, cut in (("stdout", answer.stdout_truncated), ("stderr", answer.stderr_truncated)):
        if cut:
            say(f"the script's {name} was cut at the service's output limit")


def _failed(error: PyexecError, as_json: bool) -> int:
    """Report ``error``: the raw answer with --json, else its sentence (and for a
    script, its traceback); return its exit code."""
    if as_json and error.body:
        _print_json(error.body)
    else:
        kind = f"{error.kind}: " if error.kind else ""
        say(f"{kind}{error}")
        if isinstance(error, ScriptError) and error.traceback:
            _write(sys.stderr, error.traceback)
    return exit_code_for(error)


def _write_outputs(command: RunCommand, outputs: Sequence[OutputFile]) -> int:
    """Write the returned files under --out; EXIT_BAD_REQUEST if one is refused."""
    for output in outputs:
        if output.content is None:
            say(f"{output.path}: not returned ({output.omitted})")
    if not outputs or command.out is None:
        if outputs:
            say(f"{len(outputs)} file(s) returned; --out DIR writes them")
        return EXIT_OK
    try:
        command.out.mkdir(parents=True, exist_ok=True)
        written = write_files(command.out, outputs)
    except (UnsafeOutputError, OSError) as exc:
        say(f"not writing the returned files: {exc}")
        return EXIT_BAD_REQUEST
    for path in written:
        say(f"wrote {path}")
    return EXIT_OK
