"""The HTTP endpoints' logic, independent of routing: parse, validate, execute, answer.

main.py routes requests here. Every answer is an Outcome whose body matches one
of the schemas in schemas/; nothing here ever puts service internals in a body.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import flask
from werkzeug.exceptions import HTTPException

from pyexec.executor import Executor
from pyexec.openapi import build_openapi
from pyexec.outcome import Outcome, error
from pyexec.schemas import RequestError, RequestValidator
from pyexec.settings import Settings

# HTTP status -> kind, for errors raised by Flask/Werkzeug themselves.
HTTP_KINDS = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}


class Service:
    """The service's endpoints over one Executor and one RequestValidator."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.executor = Executor(settings)
        self.validator = RequestValidator(settings)
        self.openapi_document = build_openapi(settings)

    def warm_up(self) -> None:
        """Start the sandbox self-test (and then the pool) in the background now."""
        threading.Thread(target=self.executor.health, name="self-test", daemon=True).start()

    def execute(self, request: flask.Request) -> Outcome:
        """POST /execute: run the body's script and answer with its outcome."""
        if not request.is_json:
            return error(
                415,
                "unsupported_media_type",
                "Send the request body as JSON with 'Content-Type: application/json'.",
            )
        raw = request.get_data(cache=False)
        try:
            body: Any = json.loads(raw)
        except RecursionError:
            return error(400, "invalid_json", "The request body is nested too deeply.")
        except (ValueError, UnicodeDecodeError) as exc:
            where = (
                f" (line {exc.lineno}, column {exc.colno})"
                if isinstance(exc, json.JSONDecodeError)
                else ""
            )
            return error(400, "invalid_json", f"The request body is not valid JSON{where}.")
        try:
            script, limits = self.validator.validate(body)
        except RequestError as exc:
            return error(400, "bad_request", str(exc), **exc.details)
        return self.executor.run(script, limits)

    def openapi(self) -> Outcome:
        """GET /openapi.json: the OpenAPI 3.1 document, built from schemas/."""
        return Outcome(200, self.openapi_document)

    def healthz(self) -> Outcome:
        """GET /healthz: 200 only when a real sandboxed run works (checked once)."""
        health = self.executor.health()
        if health.ok:
            return Outcome(
                200,
                {
                    "status": "ok",
                    "cgroups": health.cgroups,
                    "pool": self.executor.pools.idle_counts(),
                },
            )
        return self.executor.unavailable(health.reason)


def not_found() -> Outcome:
    """404 for any path but the service's own."""
    return error(
        404,
        "not_found",
        "Unknown path; the service answers POST /execute, GET /healthz and GET /openapi.json.",
    )


def method_not_allowed(path: str, allowed: tuple[str, ...]) -> Outcome:
    """405 naming the methods the path takes, with the Allow header."""
    names = ", ".join(allowed)
    return Outcome(
        405,
        {
            "error": f"{path} accepts {names} only.",
            "kind": "method_not_allowed",
            "allowed": list(allowed),
        },
        (("Allow", names),),
    )


def http_error(exc: HTTPException, max_body_bytes: int) -> Outcome:
    """A JSON body for an error Flask raised itself (404, 413, ...)."""
    status = exc.code or 500
    if status == 404:
        return not_found()
    if status == 413:
        return error(
            413,
            "body_too_large",
            f"The request body is larger than the limit of {max_body_bytes} bytes.",
        )
    kind = HTTP_KINDS.get(status, "bad_request" if status < 500 else "internal_error")
    return error(status, kind, exc.description or exc.name)


def internal_error() -> Outcome:
    """The only 500 body: no paths, logs or tracebacks."""
    return error(500, "internal_error", "The service failed to handle this request.")


def to_response(outcome: Outcome) -> flask.Response:
    """Serialize an Outcome as a JSON response (UTF-8).

    A result may hold a lone surrogate (``"\\ud800"``), which UTF-8 cannot carry:
    then every non-ASCII character is sent as a JSON escape instead.
    """
    text = json.dumps(outcome.body, ensure_ascii=False)
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        data = json.dumps(outcome.body).encode("ascii")
    response = flask.Response(
        data,
        status=outcome.status,
        mimetype="application/json",
    )
    for name, value in outcome.headers:
        response.headers[name] = value
    return response
