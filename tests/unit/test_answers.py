"""pyexec.answers and pyexec.errors: every exception's kind is a kind of the error schema,
and every answer has the schema's status, a body valid against the schema and the
headers its kind promises; nothing internal reaches a 500 body.

Also the two other places that name kinds: main.py's docstring (the API summary) and
the reports the in-jail runner writes (pyexec/runner.py), against
pyexec.outcome.RUNNER_KINDS.
"""

from __future__ import annotations

import ast
import http
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from werkzeug import exceptions as wz

from pyexec import answers, runner
from pyexec.errors import (
    BodyTooLarge,
    JailUsedError,
    Overloaded,
    PyexecError,
    RequestError,
    RequestTimeout,
    SettingsError,
    Unauthorized,
)
from pyexec.outcome import RUNNER_KINDS
from pyexec.schemas import load_schema, validator
from tests.support import SCHEMA_STATUS

ROOT = Path(__file__).resolve().parent.parent.parent
ERROR_VALIDATOR = validator(load_schema("error"))
RETRY_KINDS = {"overloaded", "shutting_down", "starting", "sandbox_unavailable"}
LEAKY_MESSAGE = "nsjail: /srv/pyexec/jail.py line 99: secret-detail"


def _subclasses(cls: type[PyexecError]) -> list[type[PyexecError]]:
    found: list[type[PyexecError]] = []
    for subclass in cls.__subclasses__():
        found += [subclass, *_subclasses(subclass)]
    return found


ERROR_CLASSES: list[type[PyexecError]] = [PyexecError, *_subclasses(PyexecError)]
PUBLIC_CLASSES = [cls for cls in ERROR_CLASSES if SCHEMA_STATUS.get(cls.kind) != 500]
INTERNAL_CLASSES = [cls for cls in ERROR_CLASSES if SCHEMA_STATUS.get(cls.kind) == 500]


def _name(cls: type[PyexecError]) -> str:
    return cls.__name__


class StartResponse:
    """A WSGI start_response that records what it was given."""

    def __init__(self) -> None:
        self.status = ""
        self.headers: list[tuple[str, str]] = []

    def __call__(self, status: str, headers: list[tuple[str, str]]) -> None:
        self.status = status
        self.headers = headers


def test_the_hierarchy_is_walked_to_every_class_of_the_errors_module() -> None:
    # Guards the tables below: a walk that found nothing would make them pass vacuously.
    assert {JailUsedError, SettingsError, RequestError, Unauthorized} <= set(ERROR_CLASSES)
    assert len(INTERNAL_CLASSES) >= 3
    assert len(PUBLIC_CLASSES) >= 10


@pytest.mark.parametrize("error_class", ERROR_CLASSES, ids=_name)
def test_every_exception_names_a_kind_of_the_error_schema(
    error_class: type[PyexecError],
) -> None:
    assert error_class.kind in SCHEMA_STATUS


@pytest.mark.parametrize("error_class", PUBLIC_CLASSES, ids=_name)
def test_a_public_exception_answers_with_its_kinds_status_and_its_message(
    error_class: type[PyexecError],
) -> None:
    answer = answers.for_error(error_class("Do this to fix it."))
    assert answer.status == SCHEMA_STATUS[error_class.kind]
    assert answer.body == {"error": "Do this to fix it.", "kind": error_class.kind}
    ERROR_VALIDATOR.validate(answer.body)


def test_an_exceptions_details_become_fields_of_the_body() -> None:
    answer = answers.for_error(
        RequestError('"timeout_seconds" is 99; at most 60.', field="timeout_seconds", maximum=60)
    )
    assert answer.body == {
        "error": '"timeout_seconds" is 99; at most 60.',
        "kind": "bad_request",
        "field": "timeout_seconds",
        "maximum": 60,
    }
    ERROR_VALIDATOR.validate(answer.body)


@pytest.mark.parametrize("error_class", PUBLIC_CLASSES, ids=_name)
def test_retry_after_comes_with_exactly_the_kinds_worth_a_retry(
    error_class: type[PyexecError],
) -> None:
    headers = dict(answers.for_error(error_class("Busy.")).headers)
    if error_class.kind in RETRY_KINDS:
        assert headers["Retry-After"].isdigit()
        assert int(headers["Retry-After"]) > 0
    else:
        assert "Retry-After" not in headers


@pytest.mark.parametrize("error_class", PUBLIC_CLASSES, ids=_name)
def test_www_authenticate_comes_with_unauthorized_only(error_class: type[PyexecError]) -> None:
    headers = dict(answers.for_error(error_class("Who are you?")).headers)
    if issubclass(error_class, Unauthorized):
        assert headers == {"WWW-Authenticate": 'Bearer realm="pyexec"'}
    else:
        assert "WWW-Authenticate" not in headers


@pytest.mark.parametrize("error_class", INTERNAL_CLASSES, ids=_name)
def test_an_internal_exception_gets_the_generic_500_without_a_trace_of_its_message(
    error_class: type[PyexecError],
) -> None:
    answer = answers.for_error(error_class(LEAKY_MESSAGE, path="/srv/pyexec"))
    assert answer.status == 500
    assert answer.body == {"error": answers.INTERNAL_MESSAGE, "kind": "internal_error"}
    assert answer.headers == ()
    encoded = answers.encode(answer.body)
    assert b"secret-detail" not in encoded
    assert b"/srv" not in encoded
    ERROR_VALIDATOR.validate(answer.body)


@pytest.mark.parametrize(
    ("exc", "status", "kind"),
    [
        (wz.NotFound(), 404, "not_found"),
        (wz.MethodNotAllowed(valid_methods=["POST"]), 405, "method_not_allowed"),
        (wz.UnsupportedMediaType(), 415, "unsupported_media_type"),
        (wz.BadRequest(), 400, "bad_request"),
        (wz.RequestEntityTooLarge(), 413, "body_too_large"),
        (wz.RequestTimeout(), 408, "request_timeout"),
        (wz.InternalServerError(), 500, "internal_error"),
        # 503 has several kinds, none of them right for werkzeug's own 503.
        (wz.ServiceUnavailable(), 503, "internal_error"),
        # A 4xx with no kind of its own keeps its status.
        (wz.Conflict(), 409, "bad_request"),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, wz.HTTPException) else None,
)
def test_werkzeugs_exceptions_get_a_json_body_of_the_matching_kind(
    exc: wz.HTTPException, status: int, kind: str
) -> None:
    answer = answers.http_error(exc)
    assert (answer.status, answer.body["kind"]) == (status, kind)
    assert answer.body["error"]
    ERROR_VALIDATOR.validate(answer.body)


def test_werkzeugs_not_found_gets_the_services_own_404() -> None:
    assert answers.http_error(wz.NotFound()) == answers.not_found()
    assert "/execute" in answers.not_found().body["error"]


def test_a_werkzeug_500_gets_the_one_generic_500_body() -> None:
    exc = wz.InternalServerError(description="KeyError at /srv/pyexec/api.py line 42")
    assert answers.http_error(exc).body == answers.internal_error().body


@pytest.mark.parametrize(
    ("allowed", "allow_header"),
    [(("POST",), "POST"), (("GET", "HEAD"), "GET, HEAD")],
)
def test_method_not_allowed_names_the_methods_in_allow_and_in_the_body(
    allowed: tuple[str, ...], allow_header: str
) -> None:
    answer = answers.method_not_allowed("/healthz", allowed)
    assert answer.status == 405
    assert dict(answer.headers) == {"Allow": allow_header}
    assert answer.body["kind"] == "method_not_allowed"
    assert answer.body["allowed"] == list(allowed)
    assert "/healthz" in answer.body["error"]
    ERROR_VALIDATOR.validate(answer.body)


def test_encode_keeps_non_ascii_text_as_utf8() -> None:
    body = {"error": "Zürich ✓", "kind": "exception"}
    data = answers.encode(body)
    assert "Zürich ✓".encode() in data
    assert json.loads(data) == body


def test_encode_of_a_lone_surrogate_falls_back_to_ascii_escapes_of_the_same_object() -> None:
    body = {"error": "bad \ud800 and Zürich", "kind": "exception"}
    data = answers.encode(body)
    assert data.isascii()
    assert b"\\ud800" in data
    assert json.loads(data) == body


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_encode_refuses_what_json_cannot_hold(value: float) -> None:
    with pytest.raises(ValueError, match="JSON"):
        answers.encode({"error": "x", "kind": "exception", "usage": value})


def test_to_response_sends_the_json_body_with_status_mimetype_and_headers() -> None:
    outcome = answers.for_error(Overloaded("Busy; retry."))
    response = answers.to_response(outcome)
    assert response.status_code == 503
    assert response.mimetype == "application/json"
    assert response.headers["Retry-After"] == dict(outcome.headers)["Retry-After"]
    assert json.loads(response.get_data()) == {"error": "Busy; retry.", "kind": "overloaded"}


def test_to_response_sends_a_surrogate_as_an_escape() -> None:
    response = answers.to_response(answers.Outcome(400, {"error": "\udcff", "kind": "exception"}))
    assert json.loads(response.get_data())["error"] == "\udcff"


@pytest.mark.parametrize(
    ("exc", "status_line", "extra_header"),
    [
        (BodyTooLarge("Too big."), f"413 {http.HTTPStatus(413).phrase}", None),
        (RequestTimeout("Too slow."), "408 Request Timeout", None),
        (Overloaded("Busy."), "503 Service Unavailable", "Retry-After"),
        (Unauthorized("No key."), "401 Unauthorized", "WWW-Authenticate"),
        (JailUsedError(LEAKY_MESSAGE), "500 Internal Server Error", None),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, PyexecError) else None,
)
def test_to_wsgi_answers_with_a_status_line_an_exact_length_and_a_closed_connection(
    exc: PyexecError, status_line: str, extra_header: str | None
) -> None:
    start_response = StartResponse()
    body = b"".join(answers.to_wsgi(exc, start_response))
    headers = dict(start_response.headers)
    assert start_response.status == status_line
    assert headers["Content-Type"] == "application/json"
    assert headers["Content-Length"] == str(len(body))
    assert headers["Connection"] == "close"
    if extra_header is not None:
        assert extra_header in headers
    parsed: dict[str, Any] = json.loads(body)
    ERROR_VALIDATOR.validate(parsed)
    assert b"secret-detail" not in body


def test_main_docstring_names_every_kind_of_the_error_schema() -> None:
    # Read as text: importing main builds the service.
    docstring = ast.get_docstring(ast.parse((ROOT / "main.py").read_text(encoding="utf-8")))
    assert docstring
    quoted = " ".join(re.findall(r"``(.+?)``", docstring, flags=re.DOTALL))
    named = set(re.findall(r"[a-z][a-z_]*", quoted))
    missing = sorted(set(SCHEMA_STATUS) - named)
    assert not missing, f"main.py's docstring does not name: {missing}"


def _runner_report_kinds() -> set[str]:
    """The first argument of every ``Report(...)`` call in pyexec/runner.py."""
    tree = ast.parse((ROOT / "pyexec" / "runner.py").read_text(encoding="utf-8"))
    kinds: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id != "Report":
                continue
            first = node.args[0] if node.args else None
            assert isinstance(first, ast.Constant), f"line {node.lineno}: kind is not a literal"
            assert isinstance(first.value, str)
            kinds.add(first.value)
    return kinds


def test_the_kinds_the_runner_writes_are_exactly_the_runner_kinds() -> None:
    assert _runner_report_kinds() == RUNNER_KINDS


@pytest.mark.parametrize("kind", sorted(RUNNER_KINDS))
def test_every_runner_kind_is_a_400_of_the_error_schema(kind: str) -> None:
    assert SCHEMA_STATUS[kind] == 400


def test_the_runners_last_resort_report_is_of_a_runner_kind() -> None:
    report = json.loads(runner.LAST_RESORT_REPORT)
    assert report["kind"] in RUNNER_KINDS
