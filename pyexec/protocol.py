"""The wire format between the service and the in-jail runner.

The runner (``pyexec/runner.py``) is passed to Python with ``-c`` inside the jail,
where it cannot import this package, so it holds a byte-identical copy of the block
between the PROTOCOL markers below; ``tests/unit/test_protocol.py`` checks that the
two copies are equal and round-trips both directions.

1. Ready: once its pre-imports are done the runner writes ``ready <cpu_ms>\\n`` on
   the result fd (the CPU it spent getting ready, which the service subtracts).
2. Request: the service writes ``<cpu_seconds> <max_result_bytes> <source> <meta>
   <data>\\n`` (the last three are lengths) and then the script's source (UTF-8,
   surrogates passed), the meta JSON (``input``, the input files' paths and sizes,
   ``output_files`` and their caps; empty for a bare script, so the runner need not
   import json) and the input files' bytes, on the control fd, which it keeps open
   until it has read the jail's cgroup figures.
3. Report: the runner writes one JSON object (ASCII) and a newline on the result fd;
   when ``output_files`` were asked for, then the length of the files' bytes on a line
   and the bytes themselves (raw, not base64 inside the JSON).
"""

from __future__ import annotations

# --- PROTOCOL (pyexec/protocol.py and pyexec/runner.py hold this block byte for byte) ---
READY_PREFIX = b"ready "
LINE_END = b"\n"
MAX_INT_DIGITS = 4300  # CPython's int <-> str limit; longer integers are refused both ways


def ready_line(cpu_ms: float) -> bytes:
    """The runner's ready line: the CPU milliseconds it spent getting ready."""
    return READY_PREFIX + f"{cpu_ms:.3f}".encode() + LINE_END


def parse_ready(line: bytes) -> float | None:
    """The CPU milliseconds of a ready line (without its newline), or None."""
    if not line.startswith(READY_PREFIX):
        return None
    try:
        return float(line[len(READY_PREFIX) :])
    except ValueError:
        return None


def request_bytes(
    cpu_seconds: int, max_result_bytes: int, source: bytes, meta: bytes = b"", data: bytes = b""
) -> bytes:
    """The request: its header line, the script's source, then (only when the request
    has input or files) the meta JSON and the input files' bytes."""
    header = f"{cpu_seconds} {max_result_bytes} {len(source)} {len(meta)} {len(data)}"
    return header.encode() + LINE_END + source + meta + data


def parse_request_header(line: bytes) -> tuple[int, int, int, int, int]:
    """(cpu_seconds, max_result_bytes, source, meta and data lengths) of a request's
    header line."""
    cpu_seconds, max_result_bytes, source, meta, data = (int(field) for field in line.split())
    return cpu_seconds, max_result_bytes, source, meta, data


def report_frame(payload: bytes, files: bytes | None = None) -> bytes:
    """A report as it travels: the JSON text and the line end; when files were asked
    for, then their length on a line of its own and their bytes."""
    if files is None:
        return payload + LINE_END
    return payload + LINE_END + str(len(files)).encode() + LINE_END + files


def report_length(received: bytes | bytearray, with_files: bool) -> int | None:
    """How long the whole report frame is, once that can be told from ``received``
    (None before); a frame whose length line is not a number is as long as
    what has arrived (complete, and not the runner's)."""
    payload = first_line(received)
    if payload is None:
        return None
    end = len(payload) + len(LINE_END)
    if not with_files:
        return end
    size = first_line(received[end : end + 24])
    if size is None:
        return None if len(received) < end + 24 else len(received)
    if not size.isdigit():
        return len(received)
    return end + len(size) + len(LINE_END) + int(size)


def split_report(received: bytes, with_files: bool) -> tuple[bytes, bytes] | None:
    """(the report's JSON text, the files' bytes) of a whole frame, else None."""
    length = report_length(received, with_files)
    payload = first_line(received)
    if length is None or payload is None or length != len(received):
        return None
    if not with_files:
        return payload, b""
    end = len(payload) + len(LINE_END)
    size = first_line(received[end:])
    if size is None or not size.isdigit():
        return None
    return payload, received[end + len(size) + len(LINE_END) :]


def first_line(received: bytes | bytearray) -> bytes | None:
    """The first complete line received (a ready line, a request header or a
    report's JSON text) without its line end; None until the line end has arrived."""
    end = received.find(LINE_END)
    if end < 0:
        return None
    return bytes(received[:end])


# --- END PROTOCOL ---
