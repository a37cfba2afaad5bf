"""functions-framework entrypoint: routing only; the logic lives in pyexec.api.

Run: ``make run`` (``scripts/serve``: functions-framework's app under gunicorn with
``gunicorn.conf.py``); ``functions-framework --target=handle --source=main.py``
serves the same app for development.

Endpoints (docs/api.md has every field; ``schemas/`` every body)
----------------------------------------------------------------
``POST /execute`` with ``Content-Type: application/json`` and ``{"script": "<source>"}``
(optionally ``input`` for ``main(input)``, ``files`` to write into the working
directory, ``output_files`` patterns of files to return, and limits).
The script must define ``main()``; it runs once in a fresh nsjail jail.

- 200 ``{"result": <main()'s JSON value>, "stdout": "<printed text>", "stderr",
  "stdout_truncated", "stderr_truncated", "usage", "limits"}`` (and ``files``,
  ``files_collected`` when ``output_files`` was sent, on 400 answers too)
- 400 ``{"error": "...", "kind": "...", "stdout": "...", ...}``: a bad request
  (``bad_request``, ``invalid_json``) or a script that failed; ``kind`` is one of
  ``syntax_error, exception, no_main, main_not_callable, main_async, main_signature,
  invalid_result, result_too_large, answer_too_large, exited, crashed, timeout, cpu_limit,
  memory_limit, output_limit, file_size_limit``.
- 401 ``unauthorized`` when PYEXEC_API_KEYS is set and no valid key came,
  404 ``not_found``, 405 ``method_not_allowed`` (with ``Allow``),
  408 ``request_timeout`` (body too slow), 413 ``body_too_large``,
  415 ``unsupported_media_type``,
  503 ``overloaded`` (also when the body or the answer does not fit in the bytes held
  for clients, PYEXEC_INFLIGHT_MB) / ``shutting_down`` / ``starting`` / ``sandbox_unavailable``
  (with ``Retry-After``), 500 ``internal_error`` only for a fault of the service itself.
- Refused by gunicorn before the app runs (pyexec/gunicorn_worker.py), in JSON too, and
  the connection closes: 400 ``bad_request`` (a malformed request line, header or
  chunked body), 414 ``uri_too_long`` (request line over 8190 bytes),
  431 ``headers_too_large`` (over 64 header fields, or one over 8190 bytes),
  417 ``expectation_failed``, 501 ``unsupported_transfer_coding``, 403 ``forbidden``.

(tests/unit/test_answers.py keeps this list equal to the kinds of schemas/error.schema.json.)

``GET /openapi.json``: the OpenAPI 3.1 document, built from ``schemas/``.

``GET /runtime``: the jail's Python version and packages (read from a real jail at
start-up), the pre-imported modules and each limit's default and maximum; behind the
API key when keys are on; 503 like /healthz until the self-test has passed.

``GET /healthz``: 200 ``{"status": "ok", "cgroups", "pool"}`` only when a real sandboxed
run works (checked once at start-up); 503 ``starting`` while that check runs, else 503
with the reason.

``GET /`` (PYEXEC_PAGE=on, the default): the try-it page, one HTML document with its
CSS and script inline, allowed by their hashes in its Content-Security-Policy
(pyexec/page.py); with PYEXEC_PAGE=off, a 404 like any unknown path.

Every body but the page's is JSON and matches a schema in ``schemas/``.
"""

from __future__ import annotations

import logging
import os
import time

import flask
import functions_framework
from werkzeug.exceptions import HTTPException

from pyexec import answers, api, logs, page
from pyexec.bodylimit import BodyLimit
from pyexec.errors import PyexecError
from pyexec.inflight import InFlight
from pyexec.settings import load_settings

logs.configure()
SETTINGS = load_settings()
# No thread or jail starts at import: gunicorn imports this module in its master
# and forks the worker, and threads (and a jail's pipes) do not survive a fork.
# The sandbox self-test starts in the worker right after the fork (or on the first
# request, under a test client that does not fork); the pool of warm jails
# starts once it has passed.
SERVICE = api.Service(SETTINGS)
os.register_at_fork(after_in_child=SERVICE.warm_up)
ROUTES = {
    "/execute": (("POST",), SERVICE.execute),
    "/healthz": (("GET", "HEAD"), lambda _request: SERVICE.healthz()),
    "/openapi.json": (("GET", "HEAD"), lambda _request: SERVICE.openapi()),
    "/runtime": (("GET", "HEAD"), SERVICE.runtime),
    **page.routes(SETTINGS),  # "/" unless PYEXEC_PAGE=off
}

# The body limit must hold below Flask, so it wraps the WSGI app rather than being
# an error handler: functions-framework's after-request hook reads the whole body
# again, and a stalled body must be cut off before anything reads it
# (pyexec/bodylimit.py). functions-framework executes this module inside its Flask
# app's context.
flask.current_app.wsgi_app = BodyLimit(  # type: ignore[method-assign]
    flask.current_app.wsgi_app,
    SETTINGS.max_body_bytes,
    SETTINGS.body_timeout_seconds,
    SETTINGS.body_min_rate,
    InFlight(SETTINGS.inflight_mb * 1024 * 1024),
    SETTINGS.api_keys,
)


@functions_framework.errorhandler(HTTPException)  # type: ignore[untyped-decorator]
def _http_error(exc: HTTPException) -> flask.Response:
    return answers.to_response(answers.http_error(exc))


@functions_framework.errorhandler(Exception)  # type: ignore[untyped-decorator]
def _unexpected(exc: Exception) -> flask.Response:
    logging.getLogger("pyexec").exception("unhandled error")
    return answers.to_response(answers.internal_error())


@functions_framework.http
def handle(request: flask.Request) -> flask.Response:
    """Route by path and method; see the module docstring for the API."""
    started = time.monotonic()
    path = request.path.rstrip("/") or "/"
    route = ROUTES.get(path)
    if route is None:
        outcome = answers.not_found()
    elif request.method not in route[0]:
        outcome = answers.method_not_allowed(request.path, route[0])
    else:
        # Caught here, not by an error handler, so that the request's log line and
        # X-Request-Id cover refusals too.
        try:
            outcome = route[1](request)
        except PyexecError as exc:
            outcome = answers.for_error(exc)
    return answers.to_response(SERVICE.log_request(request, outcome, started))
