"""pyexec.logs: Cloud Logging's JSON lines, trace fields and severities."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyexec.logs import JsonFormatter, configure, severity_for, trace_fields

TRACE = "105445aa7843bc8bf206b12000100000"
# 2023-11-14T22:13:20.250Z
CREATED = 1_700_000_000.25


def _record(**overrides: Any) -> logging.LogRecord:
    fields: dict[str, Any] = {
        "name": "pyexec.api",
        "levelno": logging.WARNING,
        "levelname": "WARNING",
        "msg": "request %s",
        "args": ("done",),
        "created": CREATED,
        "msecs": 250.0,
    }
    fields.update(overrides)
    return logging.makeLogRecord(fields)


def _format(record: logging.LogRecord) -> dict[str, Any]:
    line = JsonFormatter().format(record)
    assert "\n" not in line, "one record, one line"
    parsed: dict[str, Any] = json.loads(line)
    return parsed


@pytest.fixture
def pyexec_logger() -> Iterator[logging.Logger]:
    """The "pyexec" logger without handlers, restored after the test."""
    logger = logging.getLogger("pyexec")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    logger.handlers.clear()
    yield logger
    logger.handlers[:] = saved[0]
    logger.setLevel(saved[1])
    logger.propagate = saved[2]


def test_trace_field_names_the_project_when_known() -> None:
    fields = trace_fields("abc123/7;o=0", "my-project")
    assert fields["logging.googleapis.com/trace"] == "projects/my-project/traces/abc123"
    assert "logging.googleapis.com/trace_sampled" not in fields
    assert trace_fields("not a trace!/x", "p") == {}


def test_a_line_has_severity_message_logger_and_time() -> None:
    assert _format(_record()) == {
        "severity": "WARNING",
        "message": "request done",
        "logger": "pyexec.api",
        "time": "2023-11-14T22:13:20.250Z",
    }


@pytest.mark.parametrize(
    ("created", "msecs", "time"),
    [
        (0.0, 0.0, "1970-01-01T00:00:00.000Z"),
        (1_700_000_000.999, 999.0, "2023-11-14T22:13:20.999Z"),
        (1_700_000_000.007, 7.0, "2023-11-14T22:13:20.007Z"),
    ],
)
def test_time_is_utc_with_milliseconds(created: float, msecs: float, time: str) -> None:
    entry = _format(_record(created=created, msecs=msecs))
    assert entry["time"] == time
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"])


@pytest.mark.parametrize(
    ("level", "severity"),
    [(logging.DEBUG, "DEBUG"), (logging.INFO, "INFO"), (logging.ERROR, "ERROR")],
)
def test_severity_is_the_level_name(level: int, severity: str) -> None:
    record = _record(levelno=level, levelname=logging.getLevelName(level))
    assert _format(record)["severity"] == severity


def test_extra_fields_become_keys_of_the_line() -> None:
    fields = {"status": 400, "kind": "timeout", "path": Path("/tmp/x"), "text": "Zürich"}
    entry = _format(_record(fields=fields))
    assert entry["status"] == 400
    assert entry["kind"] == "timeout"
    assert entry["path"] == "/tmp/x"  # anything else as its str()
    assert entry["text"] == "Zürich"
    assert entry["message"] == "request done"


def test_an_exception_comes_as_its_stack_trace() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = _record(exc_info=sys.exc_info())
    trace = _format(record)["stack_trace"]
    assert trace.startswith("Traceback (most recent call last):")
    assert trace.endswith("ValueError: boom")


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\u0085", "\x1c", "\x1e"])
def test_a_client_s_line_separator_never_splits_a_line(separator: str) -> None:
    """A path or user agent may carry what JSON leaves raw but line readers split on
    (Python's splitlines: U+2028, U+2029, NEL and the ASCII separators)."""
    line = JsonFormatter().format(_record(args=(f"/a{separator}b",)))
    assert line.splitlines() == [line]
    assert json.loads(line)["message"] == f"request /a{separator}b"


def test_a_line_without_an_exception_has_no_stack_trace() -> None:
    assert "stack_trace" not in _format(_record())


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_line_never_holds_nan_or_infinity(value: float) -> None:
    # Refused rather than written: NaN is not JSON, and Cloud Logging would not parse it.
    with pytest.raises(ValueError, match="JSON"):
        JsonFormatter().format(_record(fields={"cpu_ms": value}))


def test_configure_sends_pyexec_records_to_stderr_as_json(
    pyexec_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure()
    logging.getLogger("pyexec.unit").info("hello", extra={"fields": {"n": 1}})
    logging.getLogger("pyexec.unit").debug("below INFO")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert (entry["severity"], entry["message"], entry["logger"], entry["n"]) == (
        "INFO",
        "hello",
        "pyexec.unit",
        1,
    )
    assert pyexec_logger.propagate is False


class Catcher(logging.Handler):
    """Keeps the records it is handed."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_configure_stops_records_collecting_what_no_line_shows(
    pyexec_logger: logging.Logger,
) -> None:
    configure()
    catcher = Catcher()
    records = catcher.records
    pyexec_logger.addHandler(catcher)
    try:
        logging.getLogger("pyexec.unit").info("hello")
    finally:
        pyexec_logger.removeHandler(catcher)
    (record,) = records
    assert (record.funcName, record.lineno) == ("(unknown function)", 0)  # no stack walk
    assert record.threadName is None
    assert record.processName is None
    assert record.process == os.getpid()  # gunicorn's own lines show it


def test_configure_twice_keeps_one_handler(pyexec_logger: logging.Logger) -> None:
    configure()
    configure()
    assert len(pyexec_logger.handlers) == 1
    assert isinstance(pyexec_logger.handlers[0].formatter, JsonFormatter)


@pytest.mark.parametrize(
    ("header", "project", "expected"),
    [
        (None, "p", {}),
        ("", "p", {}),
        ("/123;o=1", "p", {}),
        ("  /123", "p", {}),
        ("not-hex/123;o=1", "p", {}),
        ("a" * 65 + "/1", "p", {}),
        ("a" * 64, "", {"logging.googleapis.com/trace": "a" * 64}),
        (TRACE, "", {"logging.googleapis.com/trace": TRACE}),
        (
            f"{TRACE}/1;o=0",
            "my-project",
            {
                "logging.googleapis.com/trace": f"projects/my-project/traces/{TRACE}",
                "logging.googleapis.com/spanId": "1",
            },
        ),
        (
            f"{TRACE.upper()}/42;o=1",
            "",
            {
                "logging.googleapis.com/trace": TRACE.upper(),
                "logging.googleapis.com/spanId": "42",
                "logging.googleapis.com/trace_sampled": True,
            },
        ),
        (
            f"{TRACE}/span;o=1",
            "",
            {
                "logging.googleapis.com/trace": TRACE,
                "logging.googleapis.com/trace_sampled": True,
            },
        ),
        (f"{TRACE}/-5", "", {"logging.googleapis.com/trace": TRACE}),
        (f"{TRACE}/", "", {"logging.googleapis.com/trace": TRACE}),
        (f"{TRACE}/\u00b2\u00b3", "", {"logging.googleapis.com/trace": TRACE}),
    ],
    ids=[
        "absent",
        "empty",
        "no trace",
        "blank trace",
        "not hex",
        "too long",
        "64 hex digits",
        "trace only",
        "span, not sampled",
        "upper case, sampled",
        "span not digits",
        "negative span",
        "empty span",
        "superscript digits",
    ],
)
def test_trace_fields_from_the_cloud_trace_header(
    header: str | None, project: str, expected: dict[str, Any]
) -> None:
    assert trace_fields(header, project) == expected


@pytest.mark.parametrize(
    ("status", "level"),
    [
        (200, logging.INFO),
        (400, logging.INFO),
        (404, logging.INFO),
        (413, logging.INFO),
        (500, logging.ERROR),
        (502, logging.ERROR),
        (503, logging.WARNING),
    ],
)
def test_severity_for_a_status(status: int, level: int) -> None:
    assert severity_for(status) == level
