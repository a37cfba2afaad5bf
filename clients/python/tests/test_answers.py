"""Error answers become the client's errors: every kind of the service's error schema,
every status, and answers that are not pyexec's. No server."""

from __future__ import annotations

import base64
import email.utils
import json
from typing import Any

import pytest
from live import PROJECT_DIR

from pyexec_client import (
    AuthError,
    OverloadedError,
    PyexecError,
    RequestError,
    ScriptError,
    ServerError,
    UnavailableError,
)
from pyexec_client._answers import KIND_ERRORS, error_for, parse_retry_after

ERROR_SCHEMA = json.loads((PROJECT_DIR / "schemas/error.schema.json").read_text())
SCHEMA_STATUS: dict[str, int] = {
    entry["const"]: entry["x-status"] for entry in ERROR_SCHEMA["properties"]["kind"]["oneOf"]
}
URL = "http://127.0.0.1:8080"

# The families, written out here rather than read from the code.
EXPECTED: dict[type[PyexecError], set[str]] = {
    ScriptError: {
        "syntax_error",
        "exception",
        "no_main",
        "main_not_callable",
        "main_async",
        "main_signature",
        "invalid_result",
        "result_too_large",
        "answer_too_large",
        "exited",
        "crashed",
        "timeout",
        "cpu_limit",
        "memory_limit",
        "output_limit",
        "file_size_limit",
    },
    RequestError: {
        "bad_request",
        "invalid_json",
        "unsupported_media_type",
        "body_too_large",
        "request_timeout",
        "uri_too_long",
        "headers_too_large",
        "expectation_failed",
        "unsupported_transfer_coding",
    },
    AuthError: {"unauthorized", "forbidden"},
    OverloadedError: {"overloaded", "shutting_down"},
    UnavailableError: {"starting", "sandbox_unavailable"},
    ServerError: {"internal_error", "not_found", "method_not_allowed"},
}


def run_fields() -> dict[str, Any]:
    return {
        "stdout": "printed\n",
        "stderr": "warned\n",
        "stdout_truncated": False,
        "stderr_truncated": True,
        "usage": {"wall_time_ms": 12.5, "cpu_time_ms": 3.0, "peak_memory_bytes": 1024},
        "limits": {"timeout_seconds": 10.0, "cpu_seconds": 10, "memory_mb": 256},
    }


def test_every_kind_of_the_error_schema_maps_to_one_error_class() -> None:
    assert set(KIND_ERRORS) == set(SCHEMA_STATUS)


def test_the_expected_families_cover_every_kind_once() -> None:
    kinds = [kind for family in EXPECTED.values() for kind in family]
    assert sorted(kinds) == sorted(SCHEMA_STATUS)


@pytest.mark.parametrize("kind", sorted(SCHEMA_STATUS))
def test_each_kind_at_its_schema_status_raises_its_family(kind: str) -> None:
    body: dict[str, Any] = {"error": f"A sentence about {kind}.", "kind": kind}
    if kind in EXPECTED[ScriptError]:
        body.update(run_fields())
    error = error_for(SCHEMA_STATUS[kind], body, url=URL, retry_after="1")
    family = next(cls for cls, kinds in EXPECTED.items() if kind in kinds)
    assert type(error) is family
    assert (error.status, error.kind) == (SCHEMA_STATUS[kind], kind)
    assert error.body == body


@pytest.mark.parametrize(
    ("status", "family"),
    [
        (400, RequestError),
        (401, AuthError),
        (403, AuthError),
        (404, ServerError),
        (405, ServerError),
        (408, RequestError),
        (413, RequestError),
        (415, RequestError),
        (429, OverloadedError),
        (500, ServerError),
        (501, RequestError),
        (502, ServerError),
        (503, UnavailableError),
        (504, ServerError),
    ],
)
def test_answers_that_are_not_pyexecs_are_classified_by_status(
    status: int, family: type[PyexecError]
) -> None:
    error = error_for(status, None, url=URL)
    assert type(error) is family
    assert (error.status, error.kind, error.body) == (status, None, {})
    assert URL in str(error)


def test_an_unknown_kind_with_a_run_is_a_script_failure_and_without_one_a_bad_request() -> None:
    script = error_for(400, {"error": "New.", "kind": "brand_new", **run_fields()}, url=URL)
    request = error_for(400, {"error": "New.", "kind": "brand_new_too"}, url=URL)
    assert type(script) is ScriptError
    assert type(request) is RequestError


def test_a_wrong_url_says_so() -> None:
    error = error_for(404, {"error": "No such path.", "kind": "not_found"}, url=f"{URL}/execute")
    assert "wrong URL?" in str(error)
    assert f"{URL}/execute" in str(error)


def test_a_service_fault_names_the_request_id_to_report() -> None:
    body = {"error": "The service failed to handle this request.", "kind": "internal_error"}
    error = error_for(500, body, url=URL, request_id="abc123")
    assert isinstance(error, ServerError)
    assert "abc123" in str(error)
    assert str(error).startswith("The service failed to handle this request.")


def test_a_script_error_carries_what_the_script_left() -> None:
    body = {
        "error": "ValueError in main(): bad",
        "kind": "exception",
        "traceback_text": "Traceback (most recent call last):\n  ...\nValueError: bad\n",
        "files": [
            {
                "path": "out/a.bin",
                "size": 2,
                "mime_type": "application/octet-stream",
                "encoding": "base64",
                "content": base64.b64encode(b"\x00\xff").decode(),
            },
            {"path": "big.csv", "size": 10**9, "omitted": "file_too_large"},
        ],
        "files_collected": True,
        **run_fields(),
    }
    error = error_for(400, body, url=URL)
    assert isinstance(error, ScriptError)
    assert str(error) == "ValueError in main(): bad"
    assert error.traceback is not None
    assert error.traceback.endswith("ValueError: bad\n")
    assert (error.stdout, error.stderr) == ("printed\n", "warned\n")
    assert (error.stdout_truncated, error.stderr_truncated) == (False, True)
    assert error.usage is not None
    assert error.usage.wall_time_ms == 12.5
    assert error.limits is not None
    assert error.limits.memory_mb == 256
    assert [(f.path, f.content, f.omitted) for f in error.files] == [
        ("out/a.bin", b"\x00\xff", None),
        ("big.csv", None, "file_too_large"),
    ]
    assert error.files_collected is True


def test_a_bad_request_names_the_field_and_the_maximum() -> None:
    body = {"error": "Too long.", "kind": "bad_request", "field": "timeout_seconds", "maximum": 60}
    error = error_for(400, body, url=URL)
    assert isinstance(error, RequestError)
    assert (error.field, error.maximum) == ("timeout_seconds", 60)


def test_the_fields_the_errors_expose_are_the_error_schemas() -> None:
    assert {"field", "maximum", "index", "module"} <= set(ERROR_SCHEMA["properties"])


@pytest.mark.parametrize(
    ("kind", "field", "maximum"),
    [
        ("timeout", "timeout_seconds", 60.0),
        ("cpu_limit", "cpu_seconds", 60),
        ("memory_limit", "memory_mb", 1024),
    ],
)
def test_a_limit_failure_names_the_field_that_raises_it_and_the_maximum(
    kind: str, field: str, maximum: float
) -> None:
    body = {
        "error": "Over.",
        "kind": kind,
        "signal": "SIGKILL",
        "field": field,
        "maximum": maximum,
    }
    error = error_for(400, {**body, **run_fields()}, url=URL)
    assert isinstance(error, ScriptError)
    assert (error.field, error.maximum, error.module) == (field, maximum, None)
    assert type(error.maximum) is type(maximum)
    assert error.body["signal"] == "SIGKILL"


def test_a_missing_module_is_named() -> None:
    body = {
        "error": "ModuleNotFoundError in main(): No module named 'polars'",
        "kind": "exception",
        "module": "polars",
        **run_fields(),
    }
    error = error_for(400, body, url=URL)
    assert isinstance(error, ScriptError)
    assert (error.module, error.field, error.maximum) == ("polars", None, None)


def test_a_script_error_without_them_has_none() -> None:
    error = error_for(400, {"error": "No main.", "kind": "no_main", **run_fields()}, url=URL)
    assert isinstance(error, ScriptError)
    assert (error.module, error.field, error.maximum) == (None, None, None)


def test_fields_of_the_wrong_type_are_none_and_stay_in_the_body() -> None:
    odd = {"field": 3, "maximum": True, "module": ["x"], "index": "1"}
    script = error_for(400, {"error": "?", "kind": "timeout", **odd, **run_fields()}, url=URL)
    assert isinstance(script, ScriptError)
    assert (script.field, script.maximum, script.module) == (None, None, None)
    request = error_for(400, {"error": "?", "kind": "bad_request", **odd}, url=URL)
    assert isinstance(request, RequestError)
    assert (request.field, request.maximum, request.index) == (None, None, None)
    assert request.body["index"] == "1"


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("1", 1.0),
        ("0", 0.0),
        ("30", 10.0),
        (" 2 ", 2.0),
        ("soon", None),
        ("-1", None),
        (None, None),
    ],
)
def test_retry_after_in_seconds_is_read_and_capped_at_ten(
    header: str | None, seconds: float | None
) -> None:
    assert parse_retry_after(header) == seconds


def test_retry_after_as_an_http_date_counts_from_now() -> None:
    now = 1_800_000_000.0
    assert parse_retry_after(email.utils.formatdate(now + 4, usegmt=True), now=now) == 4.0
    assert parse_retry_after(email.utils.formatdate(now - 4, usegmt=True), now=now) == 0.0


def test_overloaded_and_unavailable_carry_retry_after() -> None:
    overloaded = error_for(503, {"error": "Busy.", "kind": "overloaded"}, url=URL, retry_after="1")
    broken = error_for(
        503, {"error": "No jail.", "kind": "sandbox_unavailable"}, url=URL, retry_after="30"
    )
    assert isinstance(overloaded, OverloadedError)
    assert overloaded.retry_after == 1.0
    assert isinstance(broken, UnavailableError)
    assert broken.retry_after == 10.0
