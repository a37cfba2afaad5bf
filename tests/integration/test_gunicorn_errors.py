"""Requests that gunicorn refuses itself, before the app runs, are answered in JSON.

gunicorn parses the request line and the headers (and decodes a chunked body) before
functions-framework's app sees anything, and answers what it cannot parse with a page
of HTML of its own. pyexec/gunicorn_worker.py makes those answers JSON of the error
schema, with a kind of their own. These tests send the bytes over a raw socket (an HTTP
client would refuse to send most of them) to the real server, scripts/serve with
gunicorn.conf.py, started once for the module and always stopped.

The same server shows how the worker ends connections that were answered: a kept-alive
connection serves the next request, and one its client closes is closed at once.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.live_server import LiveServer, serve
from tests.support import check_schema

# gunicorn.conf.py's limits (limit_request_line, limit_request_fields,
# limit_request_field_size), written out so that the tests state the numbers a
# client meets.
LINE_LIMIT = 8190
FIELDS_LIMIT = 64
FIELD_SIZE_LIMIT = 8190
# Put into the offending part of each request: no answer may echo it.
MARKER = "pyexecmarker"


@dataclass(frozen=True)
class Answer:
    """What the server sent before it closed the connection."""

    status: int
    headers: dict[str, str]
    body: Any


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    """One real server for the module (what the live_server fixture starts: the
    same ``serve``), stopped at the module's end whatever happens."""
    with serve() as live:
        yield live


def exchange(server: LiveServer, request: bytes) -> Answer:
    """Send ``request`` on a fresh connection and read until the server closes it.

    A server that kept the connection open would make ``recv`` time out, so every
    answer read here is also one after which the server closed the connection.
    """
    received = b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (x.partition(":") for x in lines)}
    assert status_line.startswith("HTTP/1.1 "), status_line
    assert headers.get("content-type") == "application/json", (status_line, headers, body[:200])
    assert headers["content-length"] == str(len(body))
    return Answer(int(status_line.split()[1]), headers, json.loads(body))


def request(line: str, *headers: str, body: bytes = b"") -> bytes:
    """A request from its request line and header lines, CRLF-terminated."""
    head = "".join(f"{part}\r\n" for part in (line, "Host: 127.0.0.1", *headers))
    return f"{head}\r\n".encode("latin-1") + body


CASES = {
    # LimitRequestLine
    "a request line over the limit": (
        request(f"GET /{MARKER}{'a' * LINE_LIMIT} HTTP/1.1"),
        414,
        "uri_too_long",
    ),
    # LimitRequestHeaders("limit request headers fields")
    "more header fields than the limit": (
        request("GET /healthz HTTP/1.1", *(f"X-{MARKER}-{n}: v" for n in range(FIELDS_LIMIT))),
        431,
        "headers_too_large",
    ),
    # LimitRequestHeaders("limit request headers fields size")
    "a header field over the size limit": (
        request("GET /healthz HTTP/1.1", f"X-Big: {MARKER}{'a' * FIELD_SIZE_LIMIT}"),
        431,
        "headers_too_large",
    ),
    # InvalidRequestLine
    "a request line that is not METHOD TARGET VERSION": (
        request(MARKER),
        400,
        "bad_request",
    ),
    # InvalidRequestLine (a target in none of the four forms)
    "a request target that is not a path": (
        request(f"GET {MARKER} HTTP/1.1"),
        400,
        "bad_request",
    ),
    # InvalidRequestMethod
    "a method in lower case": (request("get /healthz HTTP/1.1"), 400, "bad_request"),
    # InvalidHTTPVersion
    "an HTTP version gunicorn does not speak": (
        request("GET /healthz HTTP/3.0"),
        400,
        "bad_request",
    ),
    # InvalidHeaderName
    "a header name with a space": (
        request("GET /healthz HTTP/1.1", f"Bad {MARKER}: x"),
        400,
        "bad_request",
    ),
    "a header name with a character outside the token set": (
        request("GET /healthz HTTP/1.1", f"Bad@{MARKER}: x"),
        400,
        "bad_request",
    ),
    # InvalidHeader
    "a header line without a colon": (
        request("GET /healthz HTTP/1.1", f"{MARKER}"),
        400,
        "bad_request",
    ),
    "a Content-Length that is not a number": (
        request("POST /execute HTTP/1.1", f"Content-Length: {MARKER}"),
        400,
        "bad_request",
    ),
    # ExpectationFailed
    "an Expect other than 100-continue": (
        request("GET /healthz HTTP/1.1", f"Expect: {MARKER}"),
        417,
        "expectation_failed",
    ),
    # UnsupportedTransferCoding
    "a transfer coding gunicorn does not know": (
        request("POST /execute HTTP/1.1", f"Transfer-Encoding: {MARKER}"),
        501,
        "unsupported_transfer_coding",
    ),
    # InvalidChunkSize, raised while pyexec.bodylimit reads the body inside the app
    "a chunked body with a chunk size that is not hex": (
        request(
            "POST /execute HTTP/1.1",
            "Content-Type: application/json",
            "Transfer-Encoding: chunked",
            body=f"{MARKER}\r\n{{}}\r\n0\r\n\r\n".encode(),
        ),
        400,
        "bad_request",
    ),
}


@pytest.mark.parametrize(("raw", "status", "kind"), CASES.values(), ids=CASES.keys())
def test_a_request_gunicorn_refuses_gets_a_json_error_of_its_kind_and_a_closed_connection(
    server: LiveServer, raw: bytes, status: int, kind: str
) -> None:
    answer = exchange(server, raw)
    assert (answer.status, answer.body["kind"]) == (status, kind), answer.body
    check_schema(answer.status, answer.body)
    assert answer.headers["connection"] == "close"
    assert answer.headers["x-request-id"]
    assert answer.body["error"].endswith(".")
    assert MARKER not in json.dumps(answer.body)


def test_the_answer_to_a_long_request_line_names_the_limit(server: LiveServer) -> None:
    answer = exchange(server, CASES["a request line over the limit"][0])
    assert answer.body == {
        "error": f"The request line is longer than {LINE_LIMIT} bytes; "
        "send large data in the body of a POST instead.",
        "kind": "uri_too_long",
    }


@pytest.mark.parametrize(
    ("case", "sentence"),
    [
        ("more header fields than the limit", f"more than {FIELDS_LIMIT} header fields"),
        ("a header field over the size limit", f"longer than {FIELD_SIZE_LIMIT} bytes"),
    ],
)
def test_the_answer_to_large_headers_names_the_limit_that_was_passed(
    server: LiveServer, case: str, sentence: str
) -> None:
    assert sentence in exchange(server, CASES[case][0]).body["error"]


def test_the_worker_serves_normally_after_refusing_requests(server: LiveServer) -> None:
    for raw, _status, _kind in CASES.values():
        exchange(server, raw)
    assert server.get("/healthz")[0] == 200
    status, body = server.post("/execute", {"script": "def main():\n    return 7\n"})
    assert (status, body["result"]) == (200, 7)


def worker_sockets(server: LiveServer) -> int:
    """How many sockets the gunicorn worker (the master's one child) holds open."""
    master = server.process.pid
    (worker,) = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    fds = f"/proc/{worker}/fd"
    count = 0
    for name in os.listdir(fds):
        try:
            count += os.readlink(f"{fds}/{name}").startswith("socket:")
        except FileNotFoundError:  # closed while listed
            continue
    return count


def test_a_kept_alive_connection_serves_the_next_request(server: LiveServer) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        for _ in range(3):
            connection.request("GET", "/healthz")
            answer = connection.getresponse()
            assert answer.status == 200
            assert json.loads(answer.read())["status"] == "ok"
            assert answer.getheader("Connection", "").lower() != "close"
    finally:
        connection.close()


def test_connections_their_clients_close_are_closed_before_keepalive_ends(
    server: LiveServer,
) -> None:
    # gunicorn keeps an answered connection open for 5 s (keepalive in
    # gunicorn.conf.py); one its client has closed must go long before that, as
    # curl's does after every call (pyexec/gunicorn_worker.py).
    before = worker_sockets(server)
    for _ in range(20):
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        connection.request("GET", "/healthz")
        assert connection.getresponse().status == 200
        connection.close()
    deadline = time.monotonic() + 4.0
    while worker_sockets(server) > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert worker_sockets(server) <= before
