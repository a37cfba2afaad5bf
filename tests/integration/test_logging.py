"""One structured log line per request, with its trace and without the script's data."""

from __future__ import annotations

import json
import logging

import pytest
from flask.testing import FlaskClient

from pyexec.logs import JsonFormatter


def test_one_structured_log_line_per_request(
    app_client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    # at_level attaches the capturing handler to this logger ("pyexec" does not propagate).
    with caplog.at_level(logging.INFO, logger="pyexec.request"):
        source = 'def main():\n    print("secret output")\n    return "secret result"\n'
        response = app_client.post(
            "/execute",
            json={"script": source},
            headers={"X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/42;o=1"},
        )
    lines = [r for r in caplog.records if r.name == "pyexec.request"]
    assert len(lines) == 1
    entry = json.loads(JsonFormatter().format(lines[0]))
    assert entry["severity"] == "INFO"
    assert entry["message"] == "POST /execute 200 ok"
    assert entry["request_id"] == response.headers["X-Request-Id"]
    assert entry["logging.googleapis.com/trace"] == "105445aa7843bc8bf206b12000100000"
    assert entry["logging.googleapis.com/spanId"] == "42"
    assert entry["httpRequest"]["status"] == 200
    assert entry["httpRequest"]["latency"].endswith("s")
    assert entry["kind"] == "ok"
    assert entry["script_chars"] == len(source)
    assert set(entry["usage"]) == {"wall_time_ms", "cpu_time_ms", "peak_memory_bytes"}
    text = json.dumps(entry)
    assert "secret" not in text
    assert "def main" not in text
