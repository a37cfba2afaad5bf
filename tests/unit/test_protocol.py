"""pyexec.protocol against the runner's copy: the same bytes, and both directions
round-tripped (the request over a real pipe, the runner's reports into the service)."""

from __future__ import annotations

import os
import resource
import threading
import types
from pathlib import Path
from typing import Any

import pytest

from pyexec import protocol, runner
from pyexec.answers import Outcome
from pyexec.outcome import RUNNER_KINDS, interpret
from pyexec.record import RunRecord
from pyexec.schemas import load_schema, validator
from pyexec.settings import Limits

BLOCK_START = b"# --- PROTOCOL"
BLOCK_END = b"# --- END PROTOCOL ---"
PIPE_BUFFER_BYTES = 1 << 16  # Linux's default


def protocol_block(path: Path) -> bytes:
    """The lines from the PROTOCOL marker to the END PROTOCOL marker, both included."""
    lines = path.read_bytes().splitlines(keepends=True)
    starts = [i for i, text in enumerate(lines) if text.startswith(BLOCK_START)]
    ends = [i for i, text in enumerate(lines) if text.startswith(BLOCK_END)]
    assert len(starts) == 1, f"{path}: {len(starts)} start markers"
    assert len(ends) == 1, f"{path}: {len(ends)} end markers"
    assert starts[0] < ends[0], path
    return b"".join(lines[starts[0] : ends[0] + 1])


def test_the_protocol_block_is_byte_identical_in_protocol_py_and_runner_py() -> None:
    service = protocol_block(Path(protocol.__file__))
    jail = protocol_block(Path(runner.__file__))
    assert service == jail
    for name in (b"def ready_line", b"def request_bytes", b"def first_line", b"MAX_INT_DIGITS"):
        assert name in service


# --- service -> runner: the request ----------------------------------------------------------


def write_and_close(fd: int, data: bytes) -> None:
    """Write ``data`` and close ``fd``; stop quietly if the reader went away."""
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except BrokenPipeError:
        pass
    finally:
        os.close(fd)


def read_request_from_pipe(data: bytes) -> tuple[int, int, str, bytes, bytes]:
    """runner._read_request of ``data`` written into a real pipe by another thread
    (meta and data as bytes)."""
    read_end, write_end = os.pipe()
    writer = threading.Thread(target=write_and_close, args=(write_end, data))
    writer.start()
    try:
        cpu, max_result, source, meta, files = runner._read_request(read_end)
        return cpu, max_result, source, bytes(meta), bytes(files)
    finally:
        os.close(read_end)
        writer.join()


SOURCES = [
    pytest.param("def main():\n    return 1\n", id="ASCII"),
    pytest.param("def main():\n    return 'h\u00e9llo \u2603 \U0001d11e'\n", id="non-ASCII"),
    pytest.param("def main():\n    return '\ud800 \udfff'\n", id="lone surrogates"),
    pytest.param("5 1024 3 0 0\nxyz\n", id="a header lookalike in the source"),
    pytest.param("", id="empty"),
    pytest.param("#" * (16 * PIPE_BUFFER_BYTES) + "\n\u00e9", id="larger than the pipe buffer"),
]


@pytest.mark.parametrize("source", SOURCES)
def test_a_request_crosses_a_pipe_whole(source: str) -> None:
    request = protocol.request_bytes(7, 1 << 20, source.encode("utf-8", "surrogatepass"))
    assert read_request_from_pipe(request) == (7, 1 << 20, source, b"", b"")


@pytest.mark.parametrize("source", SOURCES)
def test_a_request_with_meta_and_data_crosses_a_pipe_whole(source: str) -> None:
    meta = b'{"input": [1, "\xc3\xa9"], "files": [["a.bin", 300000]]}'
    data = bytes(range(256)) * 1171 + b"\n" * 224
    request = protocol.request_bytes(
        7, 1 << 20, source.encode("utf-8", "surrogatepass"), meta, data
    )
    assert read_request_from_pipe(request) == (7, 1 << 20, source, meta, data)


def test_a_request_read_one_byte_at_a_time_is_read_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        runner,
        "posix",
        types.SimpleNamespace(
            read=lambda fd, _: os.read(fd, 1),
            readv=lambda fd, buffers: os.readv(fd, [buffers[0][:1]]),
        ),
    )
    source = "def main():\n    return '\u00e9'\n"
    request = protocol.request_bytes(3, 2048, source.encode(), b'{"input": 1}', b"xyz")
    assert read_request_from_pipe(request) == (3, 2048, source, b'{"input": 1}', b"xyz")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the service sent no request"),
        (b"5 1024 10 0 0", "the service sent no request"),
        (b"5 1024 10 0 0\nabc", "the request was cut short"),
        (b"5 1024 3 2 4\nabc{}xy", "the request was cut short"),
    ],
    ids=["nothing", "within the header", "within the source", "within the data"],
)
def test_eof_before_the_request_is_whole_raises_eoferror(data: bytes, message: str) -> None:
    with pytest.raises(EOFError, match=f"^{message}$"):
        read_request_from_pipe(data)


def test_a_request_header_round_trips() -> None:
    header = protocol.first_line(protocol.request_bytes(60, 1 << 26, b"x" * 123, b"{}", b"ab"))
    assert header == b"60 67108864 123 2 2"
    assert protocol.parse_request_header(header) == (60, 1 << 26, 123, 2, 2)


@pytest.mark.parametrize(
    "header", [b"", b"5 1024", b"5 1024 3", b"5 1024 3 4", b"five 1024 3 0 0", b"5 1.5 3 0 0"]
)
def test_a_malformed_request_header_raises_valueerror(header: bytes) -> None:
    with pytest.raises(ValueError, match=r"."):
        protocol.parse_request_header(header)


# --- runner -> service: the ready line and the report --------------------------------------


@pytest.mark.parametrize(
    ("cpu_ms", "line"),
    [(12.5, b"ready 12.500\n"), (0.0004, b"ready 0.000\n"), (1 / 3, b"ready 0.333\n")],
)
def test_the_runner_s_ready_line_carries_its_cpu_milliseconds(cpu_ms: float, line: bytes) -> None:
    assert runner.ready_line(cpu_ms) == line


def test_the_runner_s_ready_line_parses_on_the_service_side() -> None:
    line = protocol.first_line(runner.ready_line(12.5))
    assert line is not None
    assert protocol.parse_ready(line) == 12.5


@pytest.mark.parametrize(
    "line",
    [b"ready abc", b"ready ", b"ready", b"12.5", b"Ready 12.5", b" ready 12.5", b"", b"go 1"],
)
def test_a_ready_line_that_is_garbage_or_lacks_the_prefix_parses_to_none(line: bytes) -> None:
    assert protocol.parse_ready(line) is None


@pytest.mark.parametrize(
    "payload", [b'{"status": "ok", "result": 1}', b"", b'"\\ud800"', b"[1, 2]"]
)
def test_a_report_frame_gives_back_its_payload_as_the_first_line(payload: bytes) -> None:
    assert runner.report_frame(payload) == payload + b"\n"
    assert protocol.first_line(runner.report_frame(payload)) == payload


@pytest.mark.parametrize(
    "received", [b"", b'{"status": "ok"', bytearray(b'{"status": "ok", "result": 1}')]
)
def test_first_line_is_none_until_the_line_end_arrives(received: bytes | bytearray) -> None:
    assert protocol.first_line(received) is None


def test_first_line_gives_only_the_first_line_as_bytes() -> None:
    line = protocol.first_line(bytearray(b"one\ntwo\n"))
    assert line == b"one"
    assert type(line) is bytes


# --- runner -> service: every report the runner writes is one the service trusts ---------------

LIMITS = Limits(timeout_seconds=5.0, cpu_seconds=2, memory_mb=256)
SCHEMAS = {True: validator(load_schema("success")), False: validator(load_schema("error"))}
MAX_INT: int = 10**protocol.MAX_INT_DIGITS


def through_the_wire(source: str, max_result_bytes: int = 1 << 20) -> Outcome:
    """Run ``source`` in the runner, send its report as the runner does, and interpret
    it as the service does; the answer checked against its schema."""
    report = runner._run_reported(source)
    start = resource.getrusage(resource.RUSAGE_SELF)
    data = runner._final_report(report, start, max_result_bytes)
    record = RunRecord(report=runner.report_frame(data), limits=LIMITS)
    outcome = interpret(record, 1 << 20)
    SCHEMAS[outcome.status == 200].validate(outcome.body)
    return outcome


@pytest.mark.parametrize(
    ("source", "result"),
    [
        pytest.param(
            "def main():\n    return {'hello': 'world'}\n", {"hello": "world"}, id="dict"
        ),
        pytest.param(
            "def main():\n    return ['h\u00e9', '\\ud800', ('t',)]\n",
            ["h\u00e9", "\ud800", ["t"]],
            id="non-ASCII, a lone surrogate and a tuple",
        ),
        pytest.param(
            f"def main():\n    return 10**{protocol.MAX_INT_DIGITS} - 1\n",
            MAX_INT - 1,
            id="the largest int",
        ),
        pytest.param(
            f"def main():\n    return -(10**{protocol.MAX_INT_DIGITS} - 1)\n",
            -(MAX_INT - 1),
            id="the smallest int",
        ),
        pytest.param("def main():\n    return 0.1\n", 0.1, id="float"),
        pytest.param("def main():\n    pass\n", None, id="None"),
    ],
)
def test_a_result_crosses_from_runner_to_client_unchanged(source: str, result: Any) -> None:
    outcome = through_the_wire(source)
    assert (outcome.status, outcome.body["result"]) == (200, result)


RUNNER_FAILURES = [
    ("x = = 1\n", "syntax_error"),
    ("def main():\n    raise ValueError('boom')\n", "exception"),
    ("x = 1\n", "no_main"),
    ("main = 'text'\n", "main_not_callable"),
    ("async def main():\n    return 1\n", "main_async"),
    ("def main(x):\n    return x\n", "main_signature"),
    ("def main():\n    return {1}\n", "invalid_result"),
    ("def main():\n    return 'x' * 2000\n", "result_too_large"),
    ("import sys\ndef main():\n    sys.exit(3)\n", "exited"),
    ("def main():\n    raise MemoryError\n", "memory_limit"),
    ("def main():\n    raise OSError(27, 'File too large')\n", "file_size_limit"),
]


@pytest.mark.parametrize(("source", "kind"), RUNNER_FAILURES, ids=[k for _, k in RUNNER_FAILURES])
def test_every_failure_the_runner_reports_reaches_the_client_as_its_kind(
    source: str, kind: str
) -> None:
    outcome = through_the_wire(source, max_result_bytes=1024)
    assert (outcome.status, outcome.body["kind"]) == (400, kind)


def test_the_failure_table_covers_every_runner_kind() -> None:
    assert {kind for _, kind in RUNNER_FAILURES} == RUNNER_KINDS
