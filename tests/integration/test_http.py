"""Request validation and the HTTP surface: statuses, JSON bodies, limits on the body,
no internals in any error, the generic 500."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import EnvironBuilder, run_wsgi_app

import pyexec.api
from pyexec.answers import INTERNAL_MESSAGE, KIND_STATUS, Outcome
from pyexec.api import Service
from pyexec.errors import JailUsedError
from pyexec.inflight import LARGE_BYTES
from pyexec.settings import Settings
from tests.support import (
    PROJECT_DIR,
    Api,
    answer_health,
    call,
    check_schema,
    core,
    internals_in,
    script,
)


@pytest.mark.parametrize(
    ("body", "phrase"),
    [
        ([1, 2], "must be a JSON object"),
        ("just a string", "must be a JSON object"),
        ({}, 'must have a "script" field'),
        ({"script": 5}, '"script" must be a string of Python source, not a number'),
        ({"script": None}, "not null"),
        ({"script": ""}, '"script" is empty'),
        ({"script": "def main():\n    return 1\n\0"}, "null byte"),
        ({"script": "def main(): pass", "timeout": 99}, "Unknown field(s) 'timeout'"),
    ],
)
def test_invalid_requests_are_400_with_a_clear_sentence(api: Api, body: Any, phrase: str) -> None:
    status, data = api.post(body)
    assert status == 400
    assert data["kind"] == "bad_request"
    assert phrase in data["error"]


def test_script_over_the_character_limit(api: Api) -> None:
    source = "def main():\n    return 1\n" + "#" * 100_000
    status, data = api.run(source)
    assert status == 400
    assert data["kind"] == "bad_request"
    assert f"has {len(source)} characters; the limit is 100000" in data["error"]


def test_body_not_json(api: Api) -> None:
    status, data = api.post(data='{"script": ', content_type="application/json")
    assert (status, data["kind"]) == (400, "invalid_json")
    assert "not valid JSON" in data["error"]


def test_body_not_utf8(api: Api) -> None:
    status, data = api.post(data=b'{"script": "\xff"}', content_type="application/json")
    assert (status, data["kind"]) == (400, "invalid_json")


def test_a_body_of_empty_arrays_is_refused_before_it_is_parsed(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """8 MiB of ``[],`` as input: parsed, it took 3.3 s of the worker's CPU and ~190 MB
    before the input's limit refused it; now it is refused unparsed."""
    parsed: list[bytes] = []
    monkeypatch.setattr(pyexec.api, "_parse_json", lambda raw: parsed.append(raw))
    data = b'{"script": "def main(input):\n    return 1\n", "input": [' + b"[]," * 2_700_000
    status, body = api.post(data=data + b"[]]}", content_type="application/json")
    assert (status, body["kind"]) == (400, "bad_request")
    assert "JSON arrays and objects" in body["error"]
    assert parsed == []


def test_large_bodies_are_parsed_one_at_a_time(
    app_client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large body's parse can take ~20 times its bytes and holds the GIL: two are
    never parsed at once. Small ones are not held up by it."""
    inside = 0
    most = 0
    lock = threading.Lock()

    def slow_parse(raw: bytes) -> Any:
        nonlocal inside, most
        with lock:
            inside += 1
            most = max(most, inside)
        time.sleep(0.3)
        with lock:
            inside -= 1
        return {"script": 1}  # not a string: the schema refuses it

    monkeypatch.setattr(pyexec.api, "_parse_json", slow_parse)

    def post(size: int) -> int:
        data = b'{"script": "' + b"x" * size + b'"}'
        client = app_client.application.test_client()
        response = client.post("/execute", data=data, content_type="application/json")
        return response.status_code

    with ThreadPoolExecutor(max_workers=3) as pool:
        statuses = list(pool.map(post, [LARGE_BYTES + 10] * 3))
    assert statuses == [400] * 3
    assert most == 1
    most = 0
    with ThreadPoolExecutor(max_workers=3) as pool:
        statuses = list(pool.map(post, [100] * 3))
    assert statuses == [400] * 3
    assert most > 1


def test_content_type_not_json_is_415(api: Api) -> None:
    status, data = api.post(data='{"script": "x"}', content_type="text/plain")
    assert (status, data["kind"]) == (415, "unsupported_media_type")


def test_body_over_limit_is_413_before_reading(app_client: FlaskClient) -> None:
    class Unreadable(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            raise AssertionError("the body was read")

        readline = read

    environ = EnvironBuilder(
        path="/execute", method="POST", content_type="application/json", data=b"{}"
    ).get_environ()
    environ["CONTENT_LENGTH"] = str(MAX_BODY + 1)
    environ["wsgi.input"] = Unreadable()
    chunks, status, _ = run_wsgi_app(app_client.application, environ)
    assert status.startswith("413 ")
    body = json.loads(b"".join(chunks))
    check_schema(413, body)
    assert body["kind"] == "body_too_large"
    assert f"{MAX_BODY} bytes" in body["error"]


def test_chunked_body_over_limit_is_413(app_client: FlaskClient) -> None:
    payload = json.dumps({"script": "#" * (MAX_BODY + 1)}).encode()
    response = app_client.post(
        "/execute",
        input_stream=io.BytesIO(payload),
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
    )
    assert response.status_code == 413
    assert response.get_json()["kind"] == "body_too_large"


def test_chunked_body_within_limit_runs(app_client: FlaskClient) -> None:
    payload = json.dumps({"script": "def main():\n    return 5\n"}).encode()
    response = app_client.post(
        "/execute",
        input_stream=io.BytesIO(payload),
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
    )
    assert core((response.status_code, response.get_json())) == (200, {"result": 5, "stdout": ""})


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_wrong_method_is_405_with_allow(app_client: FlaskClient, method: str) -> None:
    response = app_client.open("/execute", method=method)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    body = response.get_json()
    check_schema(405, body)
    assert body["kind"] == "method_not_allowed"


# "/" is the try-it page (tests/integration/test_page.py), unless PYEXEC_PAGE=off.
@pytest.mark.parametrize("path", ["/nope", "/execute/extra", "/favicon.ico", "/robots.txt"])
def test_unknown_path_is_json_404(app_client: FlaskClient, path: str) -> None:
    response = app_client.get(path)
    assert response.status_code == 404
    body = response.get_json()
    check_schema(404, body)
    assert body["kind"] == "not_found"


def test_healthz_reports_a_working_jail(app_client: FlaskClient) -> None:
    response = app_client.get("/healthz")
    assert response.status_code == 200
    body = response.get_json()
    check_schema(200, body, "health")
    assert body["status"] == "ok"
    assert body["limits"] == {
        "memory": "cgroup",
        "pids": "cgroup",
        "cpu_time": "cgroup",
        "cpu_share": "cgroup",
    }
    assert body["oom_priority"] is True
    assert app_client.post("/healthz").status_code == 405


def _script_body(name: str, **limits: int) -> dict[str, Any]:
    return {"json": {"script": script(name), **limits}}


# Every error the session app can be made to give: (kind, method, path, request).
MAX_BODY = Settings.max_body_bytes  # the default the app fixture runs with


ERROR_REQUESTS = [
    pytest.param(
        "invalid_json",
        "POST",
        "/execute",
        {"data": '{"script": ', "content_type": "application/json"},
        id="bad-json",
    ),
    pytest.param(
        "invalid_json",
        "POST",
        "/execute",
        {"data": b'{"script": "\xff"}', "content_type": "application/json"},
        id="not-utf8",
    ),
    pytest.param("bad_request", "POST", "/execute", {"json": {"script": 5}}, id="wrong-type"),
    pytest.param("bad_request", "POST", "/execute", {"json": [1]}, id="not-an-object"),
    pytest.param(
        "bad_request", "POST", "/execute", {"json": {"script": "x", "x": 1}}, id="unknown-field"
    ),
    pytest.param(
        "unsupported_media_type",
        "POST",
        "/execute",
        {"data": "{}", "content_type": "text/plain"},
        id="not-json",
    ),
    pytest.param(
        "body_too_large",
        "POST",
        "/execute",
        {"data": "#" * (MAX_BODY + 1), "content_type": "application/json"},
        id="too-large",
    ),
    pytest.param("not_found", "GET", "/srv/pyexec/main.py", {}, id="unknown-path"),
    pytest.param("method_not_allowed", "GET", "/execute", {}, id="wrong-method"),
    pytest.param("method_not_allowed", "POST", "/healthz", {}, id="wrong-method-healthz"),
    pytest.param("syntax_error", "POST", "/execute", _script_body("syntax_error"), id="syntax"),
    pytest.param("exception", "POST", "/execute", _script_body("exception_in_main"), id="raise"),
    pytest.param("no_main", "POST", "/execute", _script_body("no_main"), id="no-main"),
    pytest.param(
        "main_signature", "POST", "/execute", _script_body("main_needs_args"), id="signature"
    ),
    pytest.param(
        "main_not_callable", "POST", "/execute", _script_body("main_not_callable"), id="main-42"
    ),
    pytest.param("main_async", "POST", "/execute", _script_body("main_async"), id="async"),
    pytest.param("invalid_result", "POST", "/execute", _script_body("result_set"), id="result"),
    pytest.param(
        "result_too_large", "POST", "/execute", _script_body("huge_result"), id="huge-result"
    ),
    pytest.param("exited", "POST", "/execute", _script_body("os_exit"), id="exit"),
    pytest.param("crashed", "POST", "/execute", _script_body("segfault"), id="segfault"),
    pytest.param(
        "timeout",
        "POST",
        "/execute",
        _script_body("sleep_forever", timeout_seconds=1),
        id="timeout",
    ),
    pytest.param(
        "cpu_limit", "POST", "/execute", _script_body("infinite_loop", cpu_seconds=1), id="cpu"
    ),
    pytest.param(
        "memory_limit", "POST", "/execute", _script_body("memory_bomb_python"), id="memory"
    ),
    pytest.param("output_limit", "POST", "/execute", _script_body("stdout_flood"), id="flood"),
    pytest.param("file_size_limit", "POST", "/execute", _script_body("big_file"), id="big-file"),
]


def _without_the_scripts_traceback(body: dict[str, Any]) -> dict[str, Any]:
    """An exception's traceback is the script's, by contract (docs/api.md): checked to
    hold the script's frames only, then left out of the search for internals."""
    if body["kind"] != "exception":
        return body
    text = body["traceback_text"]
    frames = [line.strip() for line in text.splitlines() if line.strip().startswith("File ")]
    assert text.startswith("Traceback (most recent call last):\n")
    assert frames
    assert all(frame.startswith('File "script", line ') for frame in frames), frames
    return {key: value for key, value in body.items() if key != "traceback_text"}


@pytest.mark.parametrize(("kind", "method", "path", "request_args"), ERROR_REQUESTS)
def test_no_internals_in_any_error_body(
    app_client: FlaskClient, kind: str, method: str, path: str, request_args: dict[str, Any]
) -> None:
    """No path of the service (the checkout, the image's directories), nsjail log line
    or service traceback in any error the app gives."""
    response = app_client.open(path, method=method, **request_args)
    body = response.get_json()
    check_schema(response.status_code, body)
    assert (response.status_code, body["kind"]) == (KIND_STATUS[kind], kind)
    assert internals_in(_without_the_scripts_traceback(body)) == []


@pytest.mark.parametrize(
    "fault",
    [RuntimeError("secret /srv/pyexec detail"), JailUsedError("secret /srv/pyexec detail")],
    ids=["unexpected", "internal"],
)
def test_a_fault_of_the_service_is_a_bare_500(
    app_client: FlaskClient,
    service: Service,
    monkeypatch: pytest.MonkeyPatch,
    fault: Exception,
) -> None:
    """An exception no endpoint answers for (or one not meant for users) becomes the
    one generic 500, through the real app's routing and error handler."""

    def broken() -> Outcome:
        raise fault

    monkeypatch.setattr(service, "openapi", broken)
    response = app_client.get("/openapi.json")
    assert response.status_code == 500
    body = response.get_json()
    check_schema(500, body)
    assert body == {"error": INTERNAL_MESSAGE, "kind": "internal_error"}
    assert "secret" not in response.get_data(as_text=True)
    assert internals_in(body) == []


def test_a_broken_jail_means_503_with_cause_and_fix_never_an_unsandboxed_run(
    tmp_path: Path, make_service: Callable[..., Service]
) -> None:
    """With a jail config nsjail cannot use, nothing runs: 503 naming cause and fix."""
    broken = tmp_path / "nsjail.cfg"
    config = (PROJECT_DIR / "nsjail.cfg").read_text()
    # A mount nsjail must make but cannot: the jail fails before the runner starts.
    broken.write_text(config + '\nmount { src: "/nonexistent-pyexec" dst: "/x" is_bind: true }\n')
    marker = tmp_path / "ran-unsandboxed"
    service = make_service(PYEXEC_NSJAIL_CONFIG=str(broken), PYEXEC_POOL_SIZE="0")
    outcome = call(
        service, {"script": f"open({str(marker)!r}, 'w').close()\ndef main():\n    return 1\n"}
    )
    assert outcome.status == 503
    check_schema(503, outcome.body)
    assert outcome.body["kind"] == "sandbox_unavailable"
    assert "no script is run" in outcome.body["error"]
    assert "/nonexistent" not in outcome.body["error"]
    assert dict(outcome.headers)["Retry-After"] == "30"
    assert answer_health(service).status == 503
    assert not marker.exists()
