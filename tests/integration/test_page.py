"""GET / through the real app (the try-it page, pyexec/page.py): the page and its
headers, HEAD, a wrong method, the request's log line; and with PYEXEC_PAGE=off, the
real server answers / as any unknown path. Its behaviour in a browser:
tests/browser/ (make test-page)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient

from pyexec import page
from tests.live_server import LiveServer
from tests.support import check_schema


def test_get_serves_the_page_with_its_headers(app_client: FlaskClient) -> None:
    response = app_client.get("/")
    assert response.status_code == 200
    assert response.data == page.PAGE.html
    for name, value in page.PAGE.headers:
        assert response.headers[name] == value
    assert response.headers["X-Request-Id"]


def test_head_has_the_headers_and_no_body(app_client: FlaskClient) -> None:
    response = app_client.head("/")
    assert response.status_code == 200
    assert response.data == b""
    assert response.headers["Content-Length"] == str(len(page.PAGE.html))
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'; ")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_other_methods_are_405_in_json(app_client: FlaskClient, method: str) -> None:
    response = app_client.open("/", method=method)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD"
    body = response.get_json()
    check_schema(405, body)
    assert body["kind"] == "method_not_allowed"


def test_the_openapi_document_lists_the_page(app_client: FlaskClient) -> None:
    document = app_client.get("/openapi.json").get_json()
    assert list(document["paths"]["/"]["get"]["responses"]["200"]["content"]) == ["text/html"]


def test_with_pyexec_page_off_the_root_is_a_404_like_any_unknown_path(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server(PYEXEC_PAGE="off")
    for method in ("GET", "POST"):
        request = urllib.request.Request(f"{server.base}/", method=method)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 404
        body = json.load(refused.value)
        check_schema(404, body)
        assert body["kind"] == "not_found"
    assert "/" not in server.get("/openapi.json")[1]["paths"]
