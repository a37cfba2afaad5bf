"""Every HTTP answer the service gives, built here: from an exception of
``pyexec.errors``, for routing failures, and as raw WSGI for the body-limit middleware.

A kind's status comes from ``schemas/error.schema.json`` (its ``x-status``), the one
source of the kinds. No answer holds internals: an exception that is not meant for
users (``public = False``) becomes the generic 500.
"""

from __future__ import annotations

import http
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import flask
from werkzeug.exceptions import HTTPException

from pyexec.errors import PyexecError, Unauthorized
from pyexec.schemas import load_schema


@dataclass(frozen=True)
class Outcome:
    """An HTTP answer: status code, JSON body and extra headers; or, with ``raw``, those
    bytes as the body instead (the try-it page, whose headers say its type)."""

    status: int
    body: dict[str, Any]
    headers: tuple[tuple[str, str], ...] = ()
    raw: bytes | None = None


def kind_statuses() -> dict[str, int]:
    """Every error kind and its HTTP status, from the error schema."""
    entries = load_schema("error")["properties"]["kind"]["oneOf"]
    return {entry["const"]: entry["x-status"] for entry in entries}


KIND_STATUS = kind_statuses()
# Seconds a client should wait before it retries, for the kinds that are worth a retry.
RETRY_AFTER = {"overloaded": 1, "shutting_down": 1, "starting": 2, "sandbox_unavailable": 30}
INTERNAL_MESSAGE = "The service failed to handle this request."


def error(kind: str, message: str, **extra: Any) -> Outcome:
    """An error answer of ``kind`` with its schema status; every error body has
    ``error`` and ``kind``."""
    headers: tuple[tuple[str, str], ...] = ()
    if kind in RETRY_AFTER:
        headers = (("Retry-After", str(RETRY_AFTER[kind])),)
    return Outcome(KIND_STATUS[kind], {"error": message, "kind": kind, **extra}, headers)


def for_error(exc: PyexecError) -> Outcome:
    """The answer for one of the service's exceptions: the one place they meet HTTP."""
    if exc.kind == "internal_error":
        return internal_error()
    answer = error(exc.kind, exc.message, **exc.details)
    if isinstance(exc, Unauthorized):
        return Outcome(
            answer.status, answer.body, (("WWW-Authenticate", 'Bearer realm="pyexec"'),)
        )
    return answer


def not_found() -> Outcome:
    """404 for any path but the service's own."""
    return error(
        "not_found",
        "Unknown path; the service answers POST /execute, GET /runtime, GET /healthz, "
        "GET /openapi.json and (with PYEXEC_PAGE=on) GET /.",
    )


def method_not_allowed(path: str, allowed: tuple[str, ...]) -> Outcome:
    """405 naming the methods the path takes, with the Allow header."""
    names = ", ".join(allowed)
    answer = error("method_not_allowed", f"{path} accepts {names} only.", allowed=list(allowed))
    return Outcome(answer.status, answer.body, (("Allow", names),))


def http_error(exc: HTTPException) -> Outcome:
    """A JSON body for an error Flask raised itself (404, ...). Oversized and slow
    bodies never get this far: pyexec.bodylimit answers them."""
    status = exc.code or 500
    if status == 404:
        return not_found()
    if status >= 500:  # its description may hold internals
        return Outcome(status, internal_error().body)
    kinds = [kind for kind, kind_status in KIND_STATUS.items() if kind_status == status]
    kind = kinds[0] if len(kinds) == 1 else "bad_request"
    return Outcome(status, {"error": exc.description or exc.name, "kind": kind})


def internal_error() -> Outcome:
    """The only 500 body: no paths, logs or tracebacks."""
    return error("internal_error", INTERNAL_MESSAGE)


def encode(body: dict[str, Any]) -> bytes:
    """A body as JSON in UTF-8.

    A result may hold a lone surrogate (``"\\ud800"``), which UTF-8 cannot carry:
    then every non-ASCII character is sent as a JSON escape instead.
    """
    text = json.dumps(body, ensure_ascii=False, allow_nan=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(body, allow_nan=False).encode("ascii")


def to_response(outcome: Outcome) -> flask.Response:
    """An Outcome as a Flask response."""
    content = encode(outcome.body) if outcome.raw is None else outcome.raw
    response = flask.Response(content, status=outcome.status, mimetype="application/json")
    for name, value in outcome.headers:
        response.headers[name] = value
    return response


def to_wsgi(exc: PyexecError, start_response: Callable[..., Any]) -> list[bytes]:
    """An exception's answer as a bare WSGI response that closes the connection
    (for middleware that answers before the app runs, with the body unread)."""
    outcome = for_error(exc)
    body = encode(outcome.body)
    start_response(
        f"{outcome.status} {http.HTTPStatus(outcome.status).phrase}",
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
            *outcome.headers,
        ],
    )
    return [body]
