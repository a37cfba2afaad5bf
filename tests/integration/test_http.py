"""Request validation and the HTTP surface: statuses, JSON bodies, limits on the body."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import EnvironBuilder, run_wsgi_app

from pyexec.api import Service
from tests.support import PROJECT_DIR, Api, answer_health, call, check_schema, core


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
    environ["CONTENT_LENGTH"] = str(256 * 1024 + 1)
    environ["wsgi.input"] = Unreadable()
    chunks, status, _ = run_wsgi_app(app_client.application, environ)
    assert status.startswith("413 ")
    body = json.loads(b"".join(chunks))
    check_schema(413, body)
    assert body["kind"] == "body_too_large"
    assert "262144 bytes" in body["error"]


def test_chunked_body_over_limit_is_413(app_client: FlaskClient) -> None:
    payload = json.dumps({"script": "#" * 300_000}).encode()
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


@pytest.mark.parametrize("path", ["/", "/nope", "/execute/extra", "/favicon.ico", "/robots.txt"])
def test_unknown_path_is_json_404(app_client: FlaskClient, path: str) -> None:
    response = app_client.get(path)
    assert response.status_code == 404
    body = response.get_json()
    check_schema(404, body)
    assert body["kind"] == "not_found"


def test_healthz_reports_a_working_jail(app_client: FlaskClient) -> None:
    response = app_client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json()["status"] == "ok"
    assert app_client.post("/healthz").status_code == 405


def test_no_internals_in_any_error_body(api: Api) -> None:
    for source in ["def main(:", "import os\ndef main():\n    os._exit(1)\n", "main = 1"]:
        _, data = api.run(source)
        text = json.dumps(data)
        for secret in ("/work", "/opt/pyexec", "nsjail", "runner.py", "<string>", "/root"):
            assert secret not in text


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
