"""The ``pyexec`` command's arguments, parsed into typed commands (no I/O here).

The API key is read from PYEXEC_API_KEY only: an argument would show in ``ps`` and in
shell history.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pyexec_client._version import __version__

DEFAULT_HTTP_TIMEOUT = 90.0


class UsageError(Exception):
    """The command line cannot be run as given; the message says what to change."""


@dataclass(frozen=True)
class Connection:
    """Where the service is and how to reach it."""

    url: str
    api_key: str | None
    http_timeout: float
    json: bool


@dataclass(frozen=True)
class RunCommand:
    """``pyexec run``: a script (or, with ``code``, code without main) and its request."""

    connection: Connection
    source: str  # a path, or "-" for standard input
    code: bool
    input_text: str | None  # JSON, or @path of a JSON file
    files: tuple[tuple[Path, str], ...]  # (local path, path in the jail)
    output_files: tuple[str, ...]
    out: Path | None
    timeout_seconds: float | None
    cpu_seconds: int | None
    memory_mb: int | None
    coerce_result: bool


@dataclass(frozen=True)
class HealthCommand:
    """``pyexec health``."""

    connection: Connection


@dataclass(frozen=True)
class RuntimeCommand:
    """``pyexec runtime``."""

    connection: Connection


@dataclass(frozen=True)
class McpCommand:
    """``pyexec mcp``: an MCP server on stdio (the ``mcp`` extra; pyexec_client.mcp_server).
    ``output_files``: the patterns of the files each run hands back (empty: the default)."""

    connection: Connection
    output_files: tuple[str, ...]


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``pyexec`` and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="pyexec",
        description="Run Python in a pyexec service's sandbox.",
        epilog="The API key, if the service needs one, comes from PYEXEC_API_KEY. Exit codes: "
        "0 ok, 1 the script failed, 2 bad request or arguments, 3 auth, "
        "4 unavailable or overloaded, 5 no connection or no answer in time, 6 service error.",
    )
    parser.add_argument("--version", action="version", version=f"pyexec-client {__version__}")
    reach = argparse.ArgumentParser(add_help=False)
    reach.add_argument("--url", help="the service's base URL (default: $PYEXEC_URL)")
    reach.add_argument(
        "--http-timeout",
        type=float,
        default=DEFAULT_HTTP_TIMEOUT,
        metavar="SECONDS",
        help="how long to wait for the answer, retries included (default: %(default)s)",
    )
    common = argparse.ArgumentParser(add_help=False, parents=[reach])
    common.add_argument("--json", action="store_true", help="print the raw JSON answer")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run", parents=[common], help="run a script that defines main(), or code with --code"
    )
    _add_run_arguments(run)
    commands.add_parser("health", parents=[common], help="check that the sandbox works")
    commands.add_parser(
        "runtime",
        parents=[common],
        help="print, as JSON, the sandbox's Python, packages, pre-imported modules and limits",
    )
    mcp = commands.add_parser(
        "mcp",
        parents=[reach],
        help="serve MCP on stdio: a run_python tool for agents (needs pyexec-client[mcp])",
        description="An MCP server on standard input and output whose tool run_python runs "
        "Python in the service's sandbox. The API key comes from PYEXEC_API_KEY.",
    )
    mcp.add_argument(
        "--output-files",
        action="append",
        default=[],
        metavar="GLOB",
        help="return the files matching GLOB after each run (repeatable; default: **, "
        "every file the code wrote or changed)",
    )
    return parser


def _add_run_arguments(run: argparse.ArgumentParser) -> None:
    run.add_argument("source", metavar="FILE", help="the script's file, or - for standard input")
    run.add_argument(
        "--code", action="store_true", help="the file is code without main(): run it as a program"
    )
    run.add_argument("--input", metavar="JSON|@FILE", help="the JSON value passed as main(input)")
    run.add_argument(
        "--file",
        action="append",
        default=[],
        metavar="LOCAL[:REMOTE]",
        help="send a local file into the working directory (repeatable)",
    )
    run.add_argument(
        "--output-files",
        action="append",
        default=[],
        metavar="GLOB",
        help="return the working directory's files matching GLOB (repeatable)",
    )
    run.add_argument("--out", type=Path, metavar="DIR", help="write the returned files here")
    run.add_argument(
        "--timeout-seconds", type=float, metavar="SECONDS", help="the script's wall-time limit"
    )
    run.add_argument("--cpu-seconds", type=int, metavar="SECONDS", help="its CPU-time limit")
    run.add_argument("--memory-mb", type=int, metavar="MB", help="its memory limit")
    run.add_argument(
        "--coerce-result",
        action="store_true",
        help="convert a result JSON cannot hold (dates, NaN, DataFrames, sets, bytes, ...) "
        "instead of failing with invalid_result",
    )


def parse_file_spec(spec: str) -> tuple[Path, str]:
    """``LOCAL[:REMOTE]``, split at the last colon; REMOTE defaults to LOCAL's name."""
    local, colon, remote = spec.rpartition(":")
    if not colon:
        local, remote = spec, Path(spec).name
    if not local or not remote:
        raise UsageError(f"--file {spec!r}: expected LOCAL or LOCAL:REMOTE")
    return Path(local), remote


def parse_command(
    argv: Sequence[str], environ: Mapping[str, str]
) -> RunCommand | HealthCommand | RuntimeCommand | McpCommand:
    """The command ``argv`` asks for; UsageError for what argparse does not check."""
    arguments = build_parser().parse_args(argv)
    url = arguments.url or environ.get("PYEXEC_URL")
    if not url:
        raise UsageError("no service URL: pass --url or set PYEXEC_URL")
    if arguments.http_timeout <= 0:
        raise UsageError("--http-timeout must be positive")
    connection = Connection(
        url,
        environ.get("PYEXEC_API_KEY") or None,
        arguments.http_timeout,
        getattr(arguments, "json", False),
    )
    if arguments.command == "mcp":
        return McpCommand(connection, tuple(arguments.output_files))
    if arguments.command == "health":
        return HealthCommand(connection)
    if arguments.command == "runtime":
        return RuntimeCommand(connection)
    if arguments.code and arguments.input is not None:
        raise UsageError("--input calls main(input); --code runs code that has no main()")
    if arguments.code and arguments.coerce_result:
        raise UsageError(
            "--coerce-result converts main()'s result; --code runs code that has no main()"
        )
    if arguments.out is not None and not arguments.output_files:
        raise UsageError("--out writes returned files: say which with --output-files")
    return RunCommand(
        connection=connection,
        source=arguments.source,
        code=arguments.code,
        input_text=arguments.input,
        files=tuple(parse_file_spec(spec) for spec in arguments.file),
        output_files=tuple(arguments.output_files),
        out=arguments.out,
        timeout_seconds=arguments.timeout_seconds,
        cpu_seconds=arguments.cpu_seconds,
        memory_mb=arguments.memory_mb,
        coerce_result=arguments.coerce_result,
    )


def parse_input(text: str, read_file: Callable[[Path], str]) -> object:
    """``--input``: JSON, or ``@path`` of a file of JSON (read with ``read_file``)."""
    source = "--input"
    if text.startswith("@"):
        source = text[1:]
        try:
            text = read_file(Path(source))
        except OSError as exc:
            raise UsageError(f"--input {text}: cannot read it ({exc.strerror})") from exc
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{source} is not JSON: {exc}") from exc
