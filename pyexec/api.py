"""The HTTP endpoints' logic, independent of routing: parse, validate, execute, answer.

main.py routes requests here. Every answer is an Outcome whose body matches one
of the schemas in schemas/; nothing here ever puts service internals in a body.
"""

from __future__ import annotations

import atexit
import hmac
import json
import logging
import threading
import time
import uuid
from typing import Any

import flask
from werkzeug.exceptions import HTTPException

from pyexec.executor import Executor
from pyexec.logs import TRACE_HEADER, severity_for, trace_fields
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


log = logging.getLogger("pyexec.request")


class Service:
    """The service's endpoints over one Executor and one RequestValidator."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.executor = Executor(settings)
        self.validator = RequestValidator(settings)
        self.openapi_document = build_openapi(settings)

    def warm_up(self) -> None:
        """In the serving process: start the sandbox self-test (and then the pool) in
        the background now, and stop every jail when the process exits."""
        atexit.register(self.executor.shutdown)
        threading.Thread(target=self.executor.health, name="self-test", daemon=True).start()

    def authorize(self, request: flask.Request) -> Outcome | None:
        """None when the request may run scripts, else the 401 answer.

        Only when PYEXEC_API_KEYS is set (deployments that allow unauthenticated
        invocations); Cloud Run IAM is the default. The key comes as
        ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``; every configured key is
        compared in constant time.
        """
        if not self.settings.api_keys:
            return None
        header = request.headers.get("Authorization", "")
        if header[:7].lower() == "bearer ":
            supplied = header[7:].strip()
        else:
            supplied = request.headers.get("X-API-Key", "").strip()
        matched = False
        for key in self.settings.api_keys:
            matched |= hmac.compare_digest(supplied.encode(), key.encode())
        if matched:
            return None
        return Outcome(
            401,
            {
                "error": "A valid API key is required: send 'Authorization: Bearer KEY' "
                "or 'X-API-Key: KEY'.",
                "kind": "unauthorized",
            },
            (("WWW-Authenticate", 'Bearer realm="pyexec"'),),
        )

    def log_request(self, request: flask.Request, outcome: Outcome, started: float) -> Outcome:
        """Write the request's one structured log line; return the outcome with its id."""
        request_id = uuid.uuid4().hex
        body = outcome.body
        fields: dict[str, Any] = {
            "request_id": request_id,
            "httpRequest": {
                "requestMethod": request.method,
                "requestUrl": request.path,
                "status": outcome.status,
                "latency": f"{time.monotonic() - started:.6f}s",
                "userAgent": request.headers.get("User-Agent", "")[:200],
            },
            "kind": body.get("kind", "ok") if outcome.status != 200 or "result" in body else "ok",
            **trace_fields(request.headers.get(TRACE_HEADER), self.settings.gcp_project),
        }
        if isinstance(body.get("usage"), dict):
            fields["usage"] = body["usage"]
        script_chars = flask.g.get("script_chars")
        if script_chars is not None:
            fields["script_chars"] = script_chars
        log.log(
            severity_for(outcome.status),
            "%s %s %d %s",
            request.method,
            request.path,
            outcome.status,
            fields["kind"],
            extra={"fields": fields},
        )
        return Outcome(outcome.status, body, (*outcome.headers, ("X-Request-Id", request_id)))

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
        if isinstance(body, dict) and isinstance(body.get("script"), str):
            flask.g.script_chars = len(body["script"])
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
        if health.ok and self.executor.draining():
            return self.executor.shutting_down()
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


def http_error(exc: HTTPException) -> Outcome:
    """A JSON body for an error Flask raised itself (404, ...). Oversized and slow
    bodies never get this far: pyexec.bodylimit answers them."""
    status = exc.code or 500
    if status == 404:
        return not_found()
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
    text = json.dumps(outcome.body, ensure_ascii=False, allow_nan=False)
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        data = json.dumps(outcome.body, allow_nan=False).encode("ascii")
    response = flask.Response(
        data,
        status=outcome.status,
        mimetype="application/json",
    )
    for name, value in outcome.headers:
        response.headers[name] = value
    return response
