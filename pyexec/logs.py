"""Structured logs in Cloud Logging's JSON format: one line per request, and start-up facts.

Cloud Run collects JSON lines from stdout/stderr and reads ``severity``,
``message``, ``httpRequest`` and ``logging.googleapis.com/trace``. A line never
holds a script, its output or an API key.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

TRACE_HEADER = "X-Cloud-Trace-Context"


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON object; ``extra={"fields": {...}}`` adds keys."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["stack_trace"] = self.formatException(record.exc_info)
        # ASCII only: a client's text (a path, a user agent) may hold U+2028 or U+0085,
        # which JSON leaves raw but line readers (Python's splitlines among them) take
        # for line breaks, cutting the record in two.
        return json.dumps(entry, default=str, allow_nan=False)


def configure() -> None:
    """Send the ``pyexec`` loggers' records to stderr as JSON lines (once).

    A record also stops collecting what no line shows, as the logging HOWTO's
    "Optimization" section describes: the caller's file, line and function (a walk
    up the stack, ~40 frames deep under gunicorn and Flask), the thread and the
    multiprocessing name. The process id stays: gunicorn's own lines show it. One
    line per request is written, so this is on every request's path (issue 20).
    """
    logging._srcfile = None  # the HOWTO's documented switch
    logging.logThreads = False
    logging.logMultiprocessing = False
    logger = logging.getLogger("pyexec")
    if any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def trace_fields(header: str | None, project: str) -> dict[str, Any]:
    """Cloud Logging trace fields from ``X-Cloud-Trace-Context: TRACE/SPAN;o=1``."""
    if not header:
        return {}
    trace, _, rest = header.partition("/")
    trace = trace.strip()
    if not trace or not all(c in "0123456789abcdefABCDEF" for c in trace) or len(trace) > 64:
        return {}
    fields: dict[str, Any] = {
        "logging.googleapis.com/trace": f"projects/{project}/traces/{trace}" if project else trace
    }
    span = rest.split(";", 1)[0].strip()
    if span.isascii() and span.isdigit():  # isdigit alone takes "²" and other digits
        fields["logging.googleapis.com/spanId"] = span
    if rest.endswith("o=1"):
        fields["logging.googleapis.com/trace_sampled"] = True
    return fields


def severity_for(status: int) -> int:
    """INFO for answers about scripts (their failures are normal), WARNING for 503,
    ERROR for the service's own faults."""
    if status >= 500 and status != 503:
        return logging.ERROR
    if status == 503:
        return logging.WARNING
    return logging.INFO
