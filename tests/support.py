"""Test helpers: sample scripts from tests/scripts/, a client that validates answers, a
check for internals in a body, and waiting on observable state instead of sleeping.

Each response is validated against its JSON Schema in schemas/ before a test sees it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import flask
from flask.testing import FlaskClient

from pyexec.answers import Outcome, for_error
from pyexec.api import Service
from pyexec.errors import PyexecError
from pyexec.schemas import load_schema, validator

PROJECT_DIR = Path(__file__).resolve().parent.parent
SCRIPTS_DIR = Path(__file__).resolve().parent / "scripts"
CANARY = "pyexec-canary-5f3a9c"
# What no answer may hold (docs/api.md: "no paths, nsjail logs or service tracebacks"):
# where the service lives (this checkout, the image's directories, root's home), nsjail's
# log, the runner's own frames and a Python traceback.
INTERNAL_MARKERS = (
    str(PROJECT_DIR),
    "/srv/pyexec",
    "/opt/pyexec",
    "/root",
    "[E]",
    "nsjail",
    "runner.py",
    "<string>",
    "Traceback (most recent call last)",
    'File "/',
)


# Files nsjail.cfg binds read-only into every jail's /tmp (matplotlib's font cache):
# there from the start in every jail, so not state left by an earlier request.
JAIL_TMP_FILES = sorted(
    re.findall(r'dst: "/tmp/([^"/]+)"', (PROJECT_DIR / "nsjail.cfg").read_text())
)


# Each kind's status, read from the error schema here rather than through
# pyexec.answers: a test must not share the code's reading of its source.
SCHEMA_STATUS: dict[str, int] = {
    entry["const"]: entry["x-status"]
    for entry in load_schema("error")["properties"]["kind"]["oneOf"]
}


def script(name: str, **tokens: str) -> str:
    """The source of tests/scripts/<name>.py with ``__TOKEN__`` placeholders filled."""
    source = (SCRIPTS_DIR / f"{name}.py").read_text(encoding="utf-8")
    for key, value in tokens.items():
        source = source.replace(f"__{key}__", value)
    return source


def call(service: Service, body: dict[str, Any]) -> Outcome:
    """POST /execute straight to a Service (for services with their own settings),
    answered as main.py answers: refusals through pyexec.answers."""
    with flask.Flask("direct").test_request_context("/execute", method="POST", json=body):
        try:
            return service.execute(flask.request)
        except PyexecError as exc:
            return for_error(exc)


def answer_health(service: Service) -> Outcome:
    """GET /healthz straight to a Service, answered as main.py answers."""
    try:
        return service.healthz()
    except PyexecError as exc:
        return for_error(exc)


def wait_healthy(service: Service) -> None:
    """Block until the service's self-test has passed."""
    health = service.executor.wait_health(timeout=120)
    assert health is not None
    assert health.ok


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:g} s for {what}")
        time.sleep(0.01)


def strings_in(value: Any) -> Iterator[str]:
    """Every string in a JSON value, object keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


def internals_in(body: Any) -> list[str]:
    """The INTERNAL_MARKERS found in any string of a JSON body (decoded, so that a
    quote escaped in the JSON text cannot hide ``File "/``)."""
    found = {marker for text in strings_in(body) for marker in INTERNAL_MARKERS if marker in text}
    return sorted(found)


def check_schema(status: int, body: Any, name: str = "") -> None:
    """Fail unless ``body`` matches the schema for its status (or the one named)."""
    name = name or ("success" if status == 200 else "error")
    validator(load_schema(name)).validate(body)


def core(answer: tuple[int, dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    """(status, body) with only the contract's original fields: result/error and stdout."""
    status, body = answer
    keep = ("result", "stdout") if status == 200 else ("error", "kind", "stdout")
    return status, {key: body[key] for key in keep if key in body}


class Api:
    """A thin HTTP client over the app that validates every JSON answer."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def post(self, body: Any = None, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        if body is not None:
            kwargs["json"] = body
        response = self.client.post("/execute", **kwargs)
        assert response.mimetype == "application/json"
        data = response.get_json()
        check_schema(response.status_code, data)
        return response.status_code, data

    def run(self, source: str) -> tuple[int, dict[str, Any]]:
        """POST a script and return (status, validated body)."""
        return self.post({"script": source})

    def run_file(self, name: str, **tokens: str) -> tuple[int, dict[str, Any]]:
        """POST tests/scripts/<name>.py."""
        return self.run(script(name, **tokens))
