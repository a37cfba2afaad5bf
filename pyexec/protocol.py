"""The wire format between the service and the in-jail runner.

The runner (``pyexec/runner.py``) is passed to Python with ``-c`` inside the jail,
where it cannot import this package, so it holds a byte-identical copy of the block
between the PROTOCOL markers below; ``tests/unit/test_protocol.py`` checks that the
two copies are equal and round-trips both directions.

1. Ready: once its pre-imports are done the runner writes ``ready <cpu_ms>\\n`` on
   the result fd (the CPU it spent getting ready, which the service subtracts).
2. Request: the service writes ``<cpu_seconds> <max_result_bytes> <length>\\n`` and
   then ``length`` bytes of the script's source (UTF-8, surrogates passed) on the
   control fd, which it keeps open until it has read the jail's cgroup figures.
3. Report: the runner writes one JSON object (ASCII) and a newline on the result fd.
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


def request_bytes(cpu_seconds: int, max_result_bytes: int, source: bytes) -> bytes:
    """The request: its header line, then the script's source."""
    header = f"{cpu_seconds} {max_result_bytes} {len(source)}"
    return header.encode() + LINE_END + source


def parse_request_header(line: bytes) -> tuple[int, int, int]:
    """(cpu_seconds, max_result_bytes, source length) of a request's header line."""
    cpu_seconds, max_result_bytes, length = (int(field) for field in line.split())
    return cpu_seconds, max_result_bytes, length


def report_frame(payload: bytes) -> bytes:
    """A report as it travels: the JSON text, then the line end."""
    return payload + LINE_END


def first_line(received: bytes | bytearray) -> bytes | None:
    """The first complete line received (a ready line, a request header or a
    report's JSON text) without its line end; None until the line end has arrived."""
    end = received.find(LINE_END)
    if end < 0:
        return None
    return bytes(received[:end])


# --- END PROTOCOL ---
