"""The HTTP endpoints' logic, independent of routing: parse, validate, execute, answer.

main.py routes requests here. Each endpoint returns an Outcome (a body that
matches one of the schemas in schemas/) or raises a ``pyexec.errors`` exception,
which ``pyexec.answers`` turns into its answer.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import json
import logging
import math
import re
import threading
import time
import uuid
from typing import Any

import flask

from pyexec import keys
from pyexec.answers import Outcome
from pyexec.errors import InvalidJson, RequestError, Unauthorized, UnsupportedMediaType
from pyexec.executor import Executor, shutting_down, starting, unavailable
from pyexec.inflight import LARGE_BYTES
from pyexec.logs import TRACE_HEADER, severity_for, trace_fields
from pyexec.openapi import build_openapi
from pyexec.schemas import RequestValidator
from pyexec.settings import Settings

log = logging.getLogger("pyexec.request")


class Service:
    """The service's endpoints over one Executor and one RequestValidator."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.executor = Executor(settings)
        self.validator = RequestValidator(settings)
        self.openapi_document = build_openapi(settings)
        self._exit_hook = False
        self._large_parse = threading.Lock()

    def warm_up(self) -> None:
        """In the serving process: start the sandbox self-test (and then the pool) in
        the background now, and stop every jail when the process exits."""
        if not self._exit_hook:
            atexit.register(self.executor.shutdown)
            self._exit_hook = True
        self.executor.warm_up()

    def authorize(self, request: flask.Request) -> None:
        """Raise Unauthorized unless the request may run scripts.

        Only when PYEXEC_API_KEYS is set (deployments that allow unauthenticated
        invocations); Cloud Run IAM is the default. The key comes as
        ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``; every configured key is
        compared in constant time.
        """
        if self.settings.api_keys and not keys.key_matches(
            self.settings.api_keys,
            request.headers.get("Authorization", ""),
            request.headers.get("X-API-Key", ""),
        ):
            raise Unauthorized(keys.REFUSAL)

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
        return dataclasses.replace(
            outcome, headers=(*outcome.headers, ("X-Request-Id", request_id))
        )

    def execute(self, request: flask.Request) -> Outcome:
        """POST /execute: run the body's script and answer with its outcome."""
        self.authorize(request)
        if not request.is_json:
            raise UnsupportedMediaType(
                "Send the request body as JSON with 'Content-Type: application/json'."
            )
        raw = request.get_data(cache=False)
        _refuse_bulky_structure(raw, self.settings.max_input_bytes)
        # One large body parsed at a time: its objects can take ~20 times its bytes,
        # and the parse holds the GIL.
        with self._large_parse if len(raw) > LARGE_BYTES else contextlib.nullcontext():
            body = _parse_json(raw)
        if isinstance(body, dict) and isinstance(body.get("script"), str):
            flask.g.script_chars = len(body["script"])
        script, limits, payload = self.validator.validate(body)
        return self.executor.run(script, limits, payload)

    def openapi(self) -> Outcome:
        """GET /openapi.json: the OpenAPI 3.1 document, built from schemas/."""
        return Outcome(200, self.openapi_document)

    def runtime(self, request: flask.Request) -> Outcome:
        """GET /runtime: what a script gets (the jail's Python and packages, read by
        the start-up self-test), the pre-imported modules and the limits a request can
        set. Behind the API key when keys are on; 503 like /healthz until known."""
        self.authorize(request)
        self.executor.warm_up()
        health = self.executor.health()
        if health is None:
            raise starting()
        if not health.ok or health.runtime is None:
            raise unavailable(health.reason)
        defaults, maxima = self.settings.default_limits(), self.settings.maximum_limits()
        limits = {
            name: {"default": getattr(defaults, name), "maximum": getattr(maxima, name)}
            for name in ("timeout_seconds", "cpu_seconds", "memory_mb")
        }
        return Outcome(
            200,
            {**health.runtime, "preimported": list(self.settings.preimport), "limits": limits},
        )

    def healthz(self) -> Outcome:
        """GET /healthz: 200 only when a real sandboxed run has worked. Never blocks:
        while the self-test runs, 503 ``starting``."""
        self.executor.warm_up()
        health = self.executor.health()
        if health is None:
            raise starting()
        if not health.ok:
            raise unavailable(health.reason)
        if self.executor.draining():
            raise shutting_down()
        return Outcome(
            200,
            {
                "status": "ok",
                "cgroups": health.cgroups,
                "pool": self.executor.pools.idle_counts(),
                **self.executor.enforcement(),
            },
        )


# A JSON string, its escapes included (the loop unrolled, so runs of plain
# characters go in one step).
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
# Arrays and objects a valid request can hold besides its input's: the request's own
# object, files and output_files lists and their entries, limits.
STRUCTURE_SLACK = 1000


def _refuse_bulky_structure(raw: bytes, max_input_bytes: int) -> None:
    """Refuse, before parsing, a body with more arrays and objects than any valid
    request holds: each costs the parser a Python object of ~60 bytes from 2 or 3
    bytes of JSON (8 MiB of ``[],`` took 3.3 s of the worker's CPU and ~190 MB, then
    failed the input's limit anyway). Valid input has at most one per 2 bytes.

    Counting brackets is cheap; only a body with many (a JSON file sent as text may
    have them in its strings) is scanned again without its strings."""
    most = max_input_bytes // 2 + STRUCTURE_SLACK
    if raw.count(b"[") + raw.count(b"{") <= most:
        return
    outside = _JSON_STRING.sub(b"", raw)
    containers = outside.count(b"[") + outside.count(b"{")
    if containers > most:
        raise RequestError(
            f"The request body holds {containers} JSON arrays and objects; a request "
            f"holds at most {most} (its input is at most {max_input_bytes} bytes of "
            "JSON, PYEXEC_MAX_INPUT_BYTES). Send big data as a file instead."
        )


def _parse_json(raw: bytes) -> Any:
    """The request body as JSON, or InvalidJson saying where it broke.

    Python's parser also takes NaN, Infinity and -Infinity, and reads 1e999 as
    infinity. None of them is JSON, and every schema comparison with NaN is false
    (a NaN limit would pass the request schema and reach the jail), so each is
    refused here, before anything else looks at the body.
    """
    try:
        return json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise InvalidJson("The request body is nested too deeply.") from None
    except (ValueError, UnicodeDecodeError) as exc:
        where = (
            f" (line {exc.lineno}, column {exc.colno})"
            if isinstance(exc, json.JSONDecodeError)
            else ""
        )
        raise InvalidJson(f"The request body is not valid JSON{where}.") from None


def _refuse_constant(name: str) -> Any:
    """json.loads calls this for NaN, Infinity and -Infinity: refuse each by name
    (InvalidJson is no ValueError, so it passes through the parser unchanged)."""
    raise InvalidJson(f"The request body contains {name}, which is not JSON.")


def _finite_float(text: str) -> float:
    """A JSON number with a fraction or exponent; one too large for a float would be
    infinity, so it is refused, named (cut: a number can be as long as the body)."""
    value = float(text)
    if math.isinf(value):
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise InvalidJson(
            f"The request body contains the number {shown}, which is too large "
            "(it would be Infinity, which is not JSON)."
        )
    return value
