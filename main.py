"""functions-framework entrypoint: routing only; the logic lives in pyexec.api.

Run: ``make run`` (``scripts/serve``: functions-framework's app under gunicorn with
``gunicorn.conf.py``); ``functions-framework --target=handle --source=main.py``
serves the same app for development.

Endpoints
---------
``POST /execute`` with ``Content-Type: application/json`` and ``{"script": "<source>"}``.
The script must define ``main()``; it runs once in a fresh nsjail jail.

- 200 ``{"result": <main()'s JSON value>, "stdout": "<printed text>", "stderr",
  "stdout_truncated", "stderr_truncated", "usage", "limits"}``
- 400 ``{"error": "...", "kind": "...", "stdout": "...", ...}``: a bad request
  (``bad_request``, ``invalid_json``) or a script that failed; ``kind`` is one of
  ``syntax_error, exception, no_main, main_not_callable, main_async, main_signature,
  invalid_result, result_too_large, exited, crashed, timeout, cpu_limit,
  memory_limit, output_limit, file_size_limit`` (README has the table).
- 401 ``unauthorized`` when PYEXEC_API_KEYS is set and no valid key came,
  404 unknown path, 405 wrong method (with ``Allow``), 408 body too slow,
  413 body over the limit, 415 body not JSON,
  503 ``overloaded`` / ``shutting_down`` / ``sandbox_unavailable`` (with
  ``Retry-After``), 500 ``internal_error`` only for a fault of the service itself.

``GET /openapi.json``: the OpenAPI 3.1 document, built from ``schemas/``.

``GET /healthz``: 200 ``{"status": "ok"}`` only when a real sandboxed run works
(checked once at start-up, cached), else 503 with the reason.

Every body is JSON and matches a schema in ``schemas/``.
"""

from __future__ import annotations

import logging
import os
import time

import flask
import functions_framework
from werkzeug.exceptions import HTTPException

from pyexec import api, logs
from pyexec.bodylimit import BodyLimit
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
}

# functions-framework executes this module inside its Flask app's context.
flask.current_app.wsgi_app = BodyLimit(  # type: ignore[method-assign]
    flask.current_app.wsgi_app, SETTINGS.max_body_bytes, SETTINGS.body_timeout_seconds
)


def _http_error(exc: HTTPException) -> flask.Response:
    return api.to_response(api.http_error(exc))


def _unexpected(exc: Exception) -> flask.Response:
    logging.getLogger("pyexec").exception("unhandled error")
    return api.to_response(api.internal_error())


flask.current_app.register_error_handler(HTTPException, _http_error)
flask.current_app.register_error_handler(Exception, _unexpected)


@functions_framework.http
def handle(request: flask.Request) -> flask.Response:
    """Route by path and method; see the module docstring for the API."""
    started = time.monotonic()
    path = request.path.rstrip("/") or "/"
    route = ROUTES.get(path)
    if route is None:
        outcome = api.not_found()
    elif request.method not in route[0]:
        outcome = api.method_not_allowed(request.path, route[0])
    elif path == "/execute" and (refused := SERVICE.authorize(request)):
        outcome = refused
    else:
        outcome = route[1](request)
    return api.to_response(SERVICE.log_request(request, outcome, started))
